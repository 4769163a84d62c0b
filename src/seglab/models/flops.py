"""Forward FLOPs of a model, counted the way `../shared/reference/seed_models.forward_flops` does
(2 x multiply-adds of conv, transposed-conv, depthwise and dense layers), so GFLOP/s compare."""
from __future__ import annotations

import math

import keras
from keras import layers


def _layer_flops(layer) -> int:
    if isinstance(layer, layers.DepthwiseConv2D):
        return 2 * math.prod(layer.output.shape[1:3]) * layer.input.shape[-1] * layer.depth_multiplier * math.prod(layer.kernel_size)
    if isinstance(layer, layers.Conv2DTranspose):  # each input pixel meets the whole kernel
        return 2 * math.prod(layer.input.shape[1:]) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, layers.Conv2D):
        return 2 * math.prod(layer.output.shape[1:3]) * layer.input.shape[-1] * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, layers.Dense):
        return 2 * layer.input.shape[-1] * layer.units
    return 0


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one forward pass of one image through `model` (nested models included)."""
    return sum(forward_flops(layer) if isinstance(layer, keras.Model) else _layer_flops(layer) for layer in model.layers)
