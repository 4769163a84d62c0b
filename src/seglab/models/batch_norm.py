"""BatchNormalization on TensorFlow's fused kernel, for every BatchNorm seglab builds.

Keras 3 computes BatchNormalization from generic ops: the input cast to float32, `moments`
(a mean, a squared difference, another mean), a multiply-add and a cast back, each a pass over the
whole feature map, and as many again in the gradient. Keras 2 called TensorFlow's
`FusedBatchNormV3`, one kernel forward and one backward, which also reads bfloat16 directly.
On 2 CPU cores it cuts a DeepLabV3+ (MobileNetV2, 320 px, batch 16, mixed_bfloat16) training step's CPU
time by about 30% (benchmarks/bench_batch_norm.py).

`FusedBatchNormalization` is Keras's layer with only `call` replaced: the same weights, config,
moving-statistics update (the batch's biased variance, as Keras uses) and results, to float
rounding. Where the fused kernel does not apply (another backend, a mask, synchronised statistics
across replicas, renormalisation, an input that is not [B, H, W, C]) it is Keras's own code.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from seglab.core.tf_kernels import fused_batch_norm

_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="seglab")
class FusedBatchNormalization(layers.BatchNormalization):
    """keras.layers.BatchNormalization computed by TensorFlow's FusedBatchNormV3 where it applies."""

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        scale = self.gamma if self.scale else ops.ones([channels])
        offset = self.beta if self.center else ops.zeros([channels])
        train = bool(training and self.trainable)
        y, mean, variance = fused_batch_norm(x, scale, offset, self.moving_mean, self.moving_variance, self.epsilon,
                                             training=train)
        if train:
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return y

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (keras.backend.backend() == "tensorflow" and mask is None and rank == 4
                and self.axis in (-1, rank - 1) and not self.synchronized and not self.renorm
                and keras.backend.standardize_dtype(self.compute_dtype) in _FUSED_DTYPES
                and keras.backend.standardize_dtype(self.variable_dtype) == "float32")


def with_fused_batch_norm(model: keras.Model) -> keras.Model:
    """`model` (a functional model such as a keras.applications network), its Keras
    BatchNormalization layers turned into FusedBatchNormalization in place, and returned.

    In place, not as a copy: a copy's new layers would draw their initial weights from Keras's
    global seed generator, so every seeded run's decoder would start from other weights than before,
    and the copy would cost a rebuild of the network. FusedBatchNormalization adds no state to
    the Keras layer, only another `call`, so changing the class of a built layer is sound."""
    for layer in model.layers:
        if type(layer) is layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
    return model
