"""XLA for the per-pixel arithmetic of losses and metrics.

A training step spends most of its time in convolutions, which TensorFlow runs through oneDNN,
but the loss and the metrics run dozens of small element-wise ops over every pixel of the logits,
each a separate kernel with its own pass over memory. Compiled with XLA they fuse into a few
loops: on 2 CPU cores, for a batch of 32 128x128 3-class logits, the 'ce+dice' loss with its
gradient takes 16 ms of CPU instead of 62, and a confusion-matrix update 1.2 ms instead of 28
(about a tenth of `mobilenet_unet`'s training step). The model itself is left as it is: XLA's
CPU convolutions are slower than oneDNN's.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import keras


def compiled(fn: Callable) -> Callable:
    """`fn` compiled with XLA under the TensorFlow backend (a nested XLA cluster when called from
    a traced train step; compiled once per input shape and dtype when called eagerly); `fn`
    itself under other backends. For fixed-shape, per-batch work only: a call per odd image
    size would compile per size."""
    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    xla_fn = tf.function(fn, jit_compile=True, autograph=False)  # plain tensor code: nothing to convert

    @functools.wraps(fn)
    def call(*args, **kwargs):
        # Inside a step XLA compiles as a whole (`seglab train`'s default), `fn` is part of that
        # computation already. A tf.function nested there recompiled the step at every call
        # (the first epoch of the demo took 793 s instead of 15), so it is called as plain code.
        return (fn if inside_xla() else xla_fn)(*args, **kwargs)

    return call


def inside_xla() -> bool:
    """Whether the code being traced now is part of an XLA computation (a jit_compile=True
    tf.function, or one nested in it)."""
    import tensorflow as tf
    from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext

    return not tf.executing_eagerly() and GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
