"""FPN for semantic segmentation (Lin et al., 2017, "Feature Pyramid Networks"; the segmentation
head of Kirillov et al., 2019, "Panoptic Feature Pyramid Networks") over any seglab encoder."""
from __future__ import annotations

import keras
from keras import layers

from seglab.models.blocks import Upsampling, conv_bn_relu, encoder_features
from seglab.models.inputs import RGB_INPUT, ImageInput
from seglab.models.sizes import check_divisible
from seglab.models.spec import Defaults, ModelSpec


def fpn(num_logits: int, input_size: tuple[int, int], encoder: str = "mobilenet_v2", weights="imagenet",
        fine_tune: str | None = "all", pyramid_filters: int = 256, segmentation_filters: int = 128,
        dropout: float = 0.2, image: ImageInput = RGB_INPUT) -> keras.Model:
    """A top-down pyramid over the encoder's P2..P5 (1x1 laterals to `pyramid_filters`, nearest x2
    upsampling and addition), each level brought to stride 4 by 3x3 conv + BN + ReLU blocks with x2
    bilinear upsampling between them, summed, then a 1x1 head and x4 bilinear upsampling.
    Raw 0..255 RGB [B, H, W, 3] -> logits [B, H, W, num_logits]."""
    check_divisible(input_size, 32, "fpn")
    inputs, x = image.tensors(input_size)
    features = encoder_features(x, encoder, input_size, weights, fine_tune, "fpn", levels=("P2", "P3", "P4", "P5"))
    pyramid, x = {}, None
    for level in (5, 4, 3, 2):
        lateral = layers.Conv2D(pyramid_filters, 1, name=f"lateral{level}")(features[f"P{level}"])
        x = lateral if x is None else layers.Add(name=f"top_down{level}")(
            [Upsampling(2, "nearest", name=f"top_down{level}_up")(x), lateral])
        pyramid[level] = x
    merged = []
    for level, x in pyramid.items():
        for step in range(max(1, level - 2)):  # P2 gets one block; each coarser level one more, each doubling
            x = conv_bn_relu(x, segmentation_filters, 3, f"seg{level}_{step}")
            if level > 2:
                x = Upsampling(2, name=f"seg{level}_{step}_up")(x)
        merged.append(x)
    x = layers.Add(name="merge")(merged)
    x = layers.SpatialDropout2D(dropout, name="merge_dropout")(x) if dropout else x
    x = layers.Conv2D(num_logits, 1, name="scores")(x)
    # named logits and float32, as every seglab model's last layer
    outputs = Upsampling(4, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="fpn")


SPEC = ModelSpec("fpn", fpn, Defaults(size=128, batch_size=16, epochs=20, learning_rate=1e-3, weights="imagenet"),
                 summary="FPN (Lin et al.; Kirillov et al.'s segmentation head) over any --encoder", pretrained=True)
