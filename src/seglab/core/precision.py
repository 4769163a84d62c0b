"""Numeric precision of training and inference: float32, or mixed precision where the hardware
computes bfloat16 natively.

`auto` picks `mixed_float16` where TensorFlow sees a GPU: tensor cores run float16 matmuls and
convolutions at several times their float32 rate, and Keras wraps the optimizer in a
`LossScaleOptimizer` for this policy, so small float16 gradients are scaled up instead of lost.
On CPUs with native bfloat16 instructions (AVX512_BF16, AMX) it picks `mixed_bfloat16`, where
oneDNN runs the convolutions in bfloat16: on 2 such cores `unet` trained 1.4-2.5x faster than in
float32 (`seglab bench train --precision ...`), `mobilenet_unet` about as fast. Elsewhere it picks
float32: without those instructions bfloat16 is emulated and slower. The weights, the logits and
the losses stay float32 in every mode; a saved model keeps its layers' precision, so evaluate and
predict run it as it was trained.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from seglab.core.errors import BadArgument
from seglab.core.machine import cpu_flags

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    return bool(cpu_flags(cpuinfo) & _BF16_FLAGS)


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(name: str) -> str:
    """'auto' -> the policy for this machine; other names are checked and returned."""
    if name not in PRECISIONS:
        raise BadArgument(f"Unknown precision {name!r}. Use one of: {', '.join(PRECISIONS)}.")
    if name != "auto":
        return name
    if _has_gpu():
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


@contextlib.contextmanager
def precision(name: str):
    """Build models under the dtype policy `name` (resolved); the previous global policy comes back after."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolve_precision(name))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
