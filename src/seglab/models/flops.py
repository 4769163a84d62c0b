"""Forward FLOPs of a model, counted the way `../shared/reference/seed_models.forward_flops` does
(2 x multiply-adds of conv, transposed-conv, depthwise and dense layers), so GFLOP/s compare."""
from __future__ import annotations

import math

import keras
from keras import layers

# Layers with weights that cost no multiply-adds worth counting.
_FREE = (layers.BatchNormalization, layers.LayerNormalization, layers.Normalization, layers.Embedding)


def _layer_flops(layer) -> int | None:
    """None for a layer with weights this count does not know (a library's own block)."""
    if isinstance(layer, layers.SeparableConv2D):  # depthwise, then a 1x1 conv
        pixels, channels = math.prod(layer.output.shape[1:3]), layer.input.shape[-1] * layer.depth_multiplier
        return 2 * pixels * channels * (math.prod(layer.kernel_size) + layer.filters)
    if isinstance(layer, layers.DepthwiseConv2D):
        return 2 * math.prod(layer.output.shape[1:3]) * layer.input.shape[-1] * layer.depth_multiplier * math.prod(layer.kernel_size)
    if isinstance(layer, layers.Conv2DTranspose):  # each input pixel meets the whole kernel
        return 2 * math.prod(layer.input.shape[1:]) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, layers.Conv2D):
        return (2 * math.prod(layer.output.shape[1:3]) * layer.input.shape[-1] // layer.groups  # ConvNeXt's depthwise
                * math.prod(layer.kernel_size) * layer.filters)
    if isinstance(layer, layers.Dense):  # once per position of a sequence or feature map
        return 2 * math.prod(layer.output.shape[1:-1]) * layer.input.shape[-1] * layer.units
    # Per-channel weights only (a scale, ConvNeXt's LayerScale) are elementwise work: not counted either.
    if not isinstance(layer, _FREE) and any(len(w.shape) > 1 for w in layer.weights):
        return None
    return 0


def forward_flops(model: keras.Model) -> int | None:
    """FLOPs of one forward pass of one image through `model` (nested models included); None
    where it holds a layer this count does not know (KerasHub's transformer blocks)."""
    counts = [forward_flops(layer) if isinstance(layer, keras.Model) else _layer_flops(layer) for layer in model.layers]
    return None if None in counts else sum(counts)
