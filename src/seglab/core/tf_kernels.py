"""TensorFlow kernels seglab calls where Keras 3's generic ops are much slower, kept out of the
models, which stay on keras.ops (as `xla.py` keeps XLA out of the losses). Callers check that the
TensorFlow backend is in use."""
from __future__ import annotations


def fused_batch_norm(x, scale, offset, mean, variance, epsilon: float, training: bool):
    """Batch normalisation of NHWC `x` by TensorFlow's FusedBatchNormV3, one kernel forward and one
    backward (it reads bfloat16 and float16 directly, with float32 statistics). Training: normalises
    by the batch's statistics and returns (y, batch mean, batch variance), the variance biased as
    Keras's BatchNormalization averages it; `mean` and `variance` are not read. Inference: by
    `mean` and `variance`, returning (y, None, None)."""
    import tensorflow as tf

    if not training:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, mean=mean, variance=variance, epsilon=epsilon,
                                                  data_format="NHWC", is_training=False)
        return y, None, None
    y, batch_mean, batch_variance = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, epsilon=epsilon,
                                                                     data_format="NHWC", is_training=True)
    # The kernel returns the unbiased (n - 1) variance.
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), batch_variance.dtype)
    return y, batch_mean, batch_variance * (count - 1.0) / tf.maximum(count, 1.0)
