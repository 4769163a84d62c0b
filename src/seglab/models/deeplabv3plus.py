"""DeepLabV3+ (Chen et al., 2018, "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation") over any seglab encoder."""
from __future__ import annotations

import keras
from keras import layers, ops

from seglab.models.blocks import Upsampling, conv_bn_relu, encoder_features
from seglab.models.inputs import RGB_INPUT, ImageInput
from seglab.models.sizes import check_divisible
from seglab.models.spec import Defaults, ModelSpec

ATROUS_RATES = (6, 12, 18)  # the paper's rates for output stride 16


@keras.saving.register_keras_serializable(package="seglab")
class BroadcastLike(layers.Layer):
    """[B, 1, 1, C] -> [B, H, W, C] with the H and W of a second input: ASPP's image-level
    features spread over the feature map, for any input size (an exported model's too)."""

    def call(self, pooled, like):
        shape = ops.shape(like)
        return ops.broadcast_to(pooled, (shape[0], shape[1], shape[2], pooled.shape[-1]))

    def compute_output_shape(self, pooled_shape, like_shape):
        return (*like_shape[:3], pooled_shape[-1])


def deeplabv3plus(num_logits: int, input_size: tuple[int, int], encoder: str = "mobilenet_v2", weights="imagenet",
                  fine_tune: str | None = "all", filters: int = 256, low_level_filters: int = 48,
                  dropout: float = 0.1, image: ImageInput = RGB_INPUT) -> keras.Model:
    """ASPP (a 1x1 conv, separable 3x3 atrous convs at rates 6, 12, 18 and image pooling) on the encoder's
    stride-16 features (output stride 16: the encoder's last stage is not built), upsampled x4 and
    joined with its stride-4 features (1x1 conv to `low_level_filters`), two separable 3x3 convs, a 1x1 head,
    and x4 bilinear upsampling. Raw 0..255 RGB [B, H, W, 3] -> logits [B, H, W, num_logits]."""
    check_divisible(input_size, 32, "deeplabv3plus")
    inputs, x = image.tensors(input_size)
    features = encoder_features(x, encoder, input_size, weights, fine_tune, "deeplabv3plus", levels=("P2", "P4"))
    x = features["P4"]
    branches = [conv_bn_relu(x, filters, 1, "aspp_1x1")]
    branches += [conv_bn_relu(x, filters, 3, f"aspp_rate{rate}", dilation_rate=rate, separable=True)
                 for rate in ATROUS_RATES]
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = conv_bn_relu(pooled, filters, 1, "aspp_pool")
    branches.append(BroadcastLike(name="aspp_pool_broadcast")(pooled, x))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = conv_bn_relu(x, filters, 1, "aspp_project")
    x = layers.Dropout(dropout, name="aspp_dropout")(x) if dropout else x
    x = Upsampling(4, name="decoder_up4")(x)
    low = conv_bn_relu(features["P2"], low_level_filters, 1, "decoder_low")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn_relu(x, filters, 3, "decoder_conv1", separable=True)
    x = conv_bn_relu(x, filters, 3, "decoder_conv2", separable=True)
    x = layers.Conv2D(num_logits, 1, name="scores")(x)
    # named logits and float32, as every seglab model's last layer
    outputs = Upsampling(4, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="deeplabv3plus")


SPEC = ModelSpec("deeplabv3plus", deeplabv3plus,
                 Defaults(size=128, batch_size=16, epochs=20, learning_rate=1e-3, weights="imagenet"),
                 summary="DeepLabV3+ (Chen et al.): ASPP and a stride-4 decoder over any --encoder", pretrained=True)
