"""The machine a figure was measured on: CPU model, cores and the instruction sets that change
seglab's speed (training differs about 4x between AVX2-only and AVX-512 bfloat16 CPUs)."""
from __future__ import annotations

import os
from pathlib import Path

# The /proc/cpuinfo flags that change which kernels oneDNN, XLA and ONNX Runtime run.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _lines(cpuinfo: Path) -> list[str]:
    try:
        return cpuinfo.read_text().splitlines()
    except OSError:  # not Linux, or no /proc: nothing known
        return []


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """Every flag the CPU reports (empty where /proc/cpuinfo cannot be read)."""
    return {flag for line in _lines(cpuinfo) if line.startswith("flags") for flag in line.partition(":")[2].split()}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    return next((line.partition(":")[2].strip() for line in _lines(cpuinfo) if line.startswith("model name")), "unknown")


def describe() -> dict:
    """{"cpu", "cores", "cpu_flags"} for a benchmark's JSON line: the speed flags present."""
    flags = cpu_flags()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": [f for f in SPEED_FLAGS if f in flags]}
