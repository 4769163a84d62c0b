"""FCN-8s (Long et al., 2015) on a VGG16 encoder, as the cookbook builds it."""
from __future__ import annotations

import keras
from keras import layers, ops

from seglab.models.backbones import CaffePreprocess, load_application, set_fine_tune
from seglab.models.inputs import RGB_INPUT, ImageInput
from seglab.models.sizes import check_divisible
from seglab.models.spec import Defaults, ModelSpec

FEATURE_LAYERS = {"P3": "block3_pool", "P4": "block4_pool", "P5": "block5_pool"}  # strides 8, 16, 32
WEIGHTS_EXAMPLE = "../shared/weights/vgg16_notop.weights.h5"


@keras.saving.register_keras_serializable(package="seglab")
class NearestUpsampling(keras.initializers.Initializer):
    """Kernel of a Conv2DTranspose whose kernel size equals its stride, set to copy each class
    score to its whole output block: training starts from nearest-neighbour upsampling (FCN's
    fixed-interpolation start) instead of random mixing of the class channels."""

    def __call__(self, shape, dtype=None):
        kh, kw, filters, channels = shape
        return ops.broadcast_to(ops.eye(filters, channels, dtype=dtype), (kh, kw, filters, channels))


def vgg16_encoder(input_size, weights, channels: int = 3) -> keras.Model:
    base = load_application(keras.applications.VGG16, "VGG16", weights, WEIGHTS_EXAMPLE, input_shape=(*input_size, channels))
    return keras.Model(base.input, {p: base.get_layer(n).output for p, n in FEATURE_LAYERS.items()}, name="encoder")


def fcn8s(num_logits: int, input_size: tuple[int, int], weights="imagenet", fine_tune: str | None = "all", image: ImageInput = RGB_INPUT) -> keras.Model:
    """VGG16 encoder; class scores from pool5 (7x7 conv), pool4 and pool3 (1x1 convs), brought to
    stride 8 by transposed convs and summed, then upsampled x8. Raw 0..255 RGB -> logits.

    The encoder trains by default, as in the cookbook (`fine_tune` as for mobilenet_unet). The score
    convs have no ReLU (the cookbook's do): they are logits, and clipping them at 0 discards the
    evidence against a class. At 256x256 with 3 classes: 14,793,021 parameters.
    """
    check_divisible(input_size, 32, "fcn8s")
    encoder = vgg16_encoder(input_size, weights, image.channels)
    set_fine_tune(encoder, fine_tune, weights, model_name="fcn8s")

    inputs, x = image.tensors(input_size)
    features = encoder(CaffePreprocess(name="vgg16_preprocess")(x))
    # Zero-initialised scores, as in the FCN paper: training starts from uniform logits rather than
    # from random projections of VGG features that are in the hundreds.
    score5 = layers.Conv2D(num_logits, 7, padding="same", kernel_initializer="zeros", name="score5")(features["P5"])
    score4 = layers.Conv2D(num_logits, 1, padding="same", kernel_initializer="zeros", name="score4")(features["P4"])
    score3 = layers.Conv2D(num_logits, 1, padding="same", kernel_initializer="zeros", name="score3")(features["P3"])
    up5 = _upsample(score5, num_logits, 4, "score5_up4")
    up4 = _upsample(score4, num_logits, 2, "score4_up2")
    x = layers.Add(name="fuse")([up5, up4, score3])
    outputs = _upsample(x, num_logits, 8, "logits", dtype="float32")
    return keras.Model(inputs, outputs, name="fcn8s")


def _upsample(x, num_logits: int, factor: int, name: str, **kwargs):
    return layers.Conv2DTranspose(num_logits, factor, strides=factor, use_bias=False,
                                  kernel_initializer=NearestUpsampling(), name=name, **kwargs)(x)


# VGG16 has no BatchNorm: it needs a smaller learning rate than the others.
SPEC = ModelSpec("fcn8s", fcn8s, Defaults(size=128, batch_size=8, epochs=20, learning_rate=1e-4, weights="imagenet",
                                        fine_tune="all"),
                 summary="FCN-8s (Long et al.) on a pretrained VGG16", pretrained=True)
