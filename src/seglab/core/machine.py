"""The machine seglab runs on: CPU model, cores and the instruction sets that change seglab's speed
(training differs about 4x between AVX2-only and AVX-512 bfloat16 CPUs), and the memory free."""
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


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory a new allocation can take without swapping (the kernel's MemAvailable);
    None where it is not known."""
    for line in _lines(meminfo):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # the kernel writes kB
    return None


def describe() -> dict:
    """{"cpu", "cores", "cpu_flags"} for a benchmark's JSON line: the speed flags present."""
    flags = cpu_flags()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": [f for f in SPEED_FLAGS if f in flags]}
