"""Building blocks shared by the models: conv blocks, pix2pix down/up blocks, the logits head."""
from __future__ import annotations

import keras
from keras import layers, ops

from seglab.core.errors import BadArgument
from seglab.models.batch_norm import FusedBatchNormalization

# PyTorch's default (0.1 there): moving statistics that catch up within an epoch or two of a small
# dataset. Keras' 0.99 lags for hundreds of steps, and inference-mode scores suffer meanwhile.
BN_MOMENTUM = 0.9


def pix2pix_init():
    # pix2pix initialises every conv from N(0, 0.02) (Isola et al., 2017).
    return keras.initializers.RandomNormal(0.0, 0.02)


def conv_block(x, filters: int, name: str, batch_norm: bool = False, dropout: float = 0.0):
    """Two 3x3 convs with ReLU (each optionally batch-normalised), then optional dropout."""
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def down_block(x, filters: int, name: str, kernel_size: int = 4, batch_norm: bool = True):
    """pix2pix downsample: strided conv (halves H and W), BatchNorm, LeakyReLU."""
    x = layers.Conv2D(filters, kernel_size, strides=2, padding="same", use_bias=False,
                      kernel_initializer=pix2pix_init(), name=f"{name}_conv")(x)
    if batch_norm:
        x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def up_block(x, filters: int, name: str, kernel_size: int = 4, dropout: float = 0.0):
    """pix2pix upsample: strided transposed conv (doubles H and W), BatchNorm, optional dropout, ReLU."""
    x = layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same", use_bias=False,
                               kernel_initializer=pix2pix_init(), name=f"{name}_deconv")(x)
    x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def skip_concat(x, skip, name: str):
    return layers.Concatenate(name=f"{name}_concat")([x, skip])


def logits_head(x, num_logits: int, kernel_size: int = 1, strides: int = 1, transpose: bool = False, **kwargs):
    """The last layer, named `logits`: [B, H, W, num_logits], float32 even under mixed precision
    so losses and argmax see full-precision scores."""
    conv = layers.Conv2DTranspose if transpose else layers.Conv2D
    return conv(num_logits, kernel_size, strides=strides, padding="same", dtype="float32", name="logits", **kwargs)(x)


def conv_bn_relu(x, filters: int, kernel_size: int, name: str, dilation_rate: int = 1, separable: bool = False):
    """Conv (no bias; depthwise separable if `separable`), BatchNorm, ReLU: the unit of the
    DeepLab and FPN heads."""
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def encoder_features(inputs, encoder_name: str, input_size, weights, fine_tune, model_name: str,
                     levels=("P1", "P2", "P3", "P4", "P5")) -> dict:
    """Raw 0..255 RGB `inputs` through the encoder `encoder_name` (seglab.models.encoders), with
    its own preprocessing and `fine_tune` applied: {"P1": ..., "P5": ...} (the `levels` asked for)."""
    from seglab.models.backbones import set_fine_tune
    from seglab.models.encoders import build_encoder

    preprocess, encoder = build_encoder(encoder_name, input_size, weights, levels, channels=inputs.shape[-1])
    set_fine_tune(encoder, fine_tune, weights, model_name=model_name)
    return encoder(preprocess(inputs) if preprocess is not None else inputs)


@keras.saving.register_keras_serializable(package="seglab")
class Upsampling(layers.Layer):
    """Upsampling by an integer factor, nearest or bilinear, computing what UpSampling2D does
    (bilinear: TensorFlow's half-pixel centres, edges clamped) for feature maps whose height and
    width are known only at run time, as in a dynamic-size export. Keras's UpSampling2D needs them
    static, and in a LiteRT graph it lost the channel count, leaving the next convolution to
    TensorFlow's Flex delegate. Built from shifts, weighted sums and reshapes: every runtime has them."""

    def __init__(self, factor: int, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in ("nearest", "bilinear"):
            raise BadArgument(f"interpolation must be 'nearest' or 'bilinear'; got {interpolation!r}.")
        self.factor, self.interpolation = int(factor), interpolation

    def call(self, x):
        return self._along(self._along(x, axis=1), axis=2)

    def _along(self, x, axis: int):
        k = self.factor
        if self.interpolation == "nearest":
            phases = [x] * k  # not ops.repeat: its graph forgets the channel count
        else:
            length = ops.shape(x)[axis]
            first, last = ops.take(x, [0], axis=axis), ops.take(x, [length - 1], axis=axis)
            before = ops.concatenate([first, ops.take(x, ops.arange(length - 1), axis=axis)], axis=axis)  # x[i-1], clamped
            after = ops.concatenate([ops.take(x, ops.arange(1, length), axis=axis), last], axis=axis)  # x[i+1], clamped
            phases = []
            for r in range(k):  # output k*i + r samples the input at i + d
                d = (r + 0.5) / k - 0.5
                phases.append((1 - abs(d)) * x + abs(d) * (before if d < 0 else after))
        stacked = ops.stack(phases, axis=axis + 1)  # [..., length, k, ...]
        shape = ops.shape(x)
        channels = x.shape[-1] if x.shape[-1] is not None else shape[3]  # a static count stays static
        return ops.reshape(stacked, [shape[0], -1, shape[2], channels] if axis == 1 else [shape[0], shape[1], -1, channels])

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        scale = (lambda n: None if n is None else n * self.factor)
        return (batch, scale(height), scale(width), channels)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "interpolation": self.interpolation}
