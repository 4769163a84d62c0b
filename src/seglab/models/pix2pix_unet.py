"""The pix2pix generator U-Net (Isola et al., 2017), trained from scratch, as the cookbook builds it."""
from __future__ import annotations

import math

import keras
from keras import layers

from seglab.core.errors import BadArgument
from seglab.models.blocks import (
    down_block,
    logits_head,
    pix2pix_init,
    skip_concat,
    up_block,
)
from seglab.models.inputs import RGB_INPUT, ImageInput
from seglab.models.sizes import check_divisible
from seglab.models.spec import Defaults, ModelSpec


def pix2pix_unet(num_logits: int, input_size: tuple[int, int], depth: int | None = None, filters: int = 64,
                 max_filters: int = 512, dropout: float = 0.5, image: ImageInput = RGB_INPUT) -> keras.Model:
    """`depth` strided 4x4 down blocks (filters doubling from `filters` up to `max_filters`, no
    BatchNorm on the first), transposed 4x4 up blocks back (dropout on the first three) with skip
    concatenation, and a stride-2 transposed 3x3 head. Raw 0..255 RGB [B, H, W, 3] -> logits.

    `depth` defaults to going down to about 1x1 (8 at 256x256, 7 at 128x128), at most 8. With the
    defaults at 256x256 and 3 classes: 54,423,171 parameters.
    """
    if depth is None:
        depth = min(8, int(math.log2(min(input_size))))
    if depth < 2:
        raise BadArgument(f"pix2pix_unet needs depth >= 2; got {depth}.")
    check_divisible(input_size, 2 ** depth, "pix2pix_unet")
    down_filters = [min(filters * 2 ** i, max_filters) for i in range(depth)]

    inputs, x = image.tensors(input_size)
    x = layers.Rescaling(1 / 255, name="scale")(x)
    features = {}
    for level, f in enumerate(down_filters, start=1):
        x = down_block(x, f, f"down{level}", batch_norm=level > 1)
        features[f"P{level}"] = x
    for i, level in enumerate(range(depth - 1, 0, -1)):
        x = up_block(x, down_filters[level - 1], f"up{level}", dropout=dropout if i < 3 else 0.0)
        x = skip_concat(x, features[f"P{level}"], f"up{level}")
    outputs = logits_head(x, num_logits, 3, strides=2, transpose=True, kernel_initializer=pix2pix_init())
    return keras.Model(inputs, outputs, name="pix2pix_unet")


SPEC = ModelSpec("pix2pix_unet", pix2pix_unet, Defaults(size=128, batch_size=16, epochs=30, learning_rate=1e-3),
                 summary="the pix2pix generator U-Net (Isola et al.), from scratch")
