"""Forward FLOPs: by hand for small layers, and equal to the reference count for the four models."""
from __future__ import annotations

import importlib.util

import keras
import pytest
from keras import layers

from seglab.models import build_model, model_spec
from seglab.models.flops import forward_flops


def test_flops_of_small_layers_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)           # 2 * 64 px * 3 in * 9 * 4 out = 13,824
    x = layers.DepthwiseConv2D(3, padding="same")(x)          # 2 * 64 px * 4 ch * 9 = 4,608
    x = layers.Conv2DTranspose(2, 2, strides=2)(x)            # 2 * 64 in px * 4 ch * 4 * 2 out = 4,096
    outputs = layers.Dense(5)(layers.GlobalAveragePooling2D()(x))  # 2 * 2 * 5 = 20
    assert forward_flops(keras.Model(inputs, outputs)) == 13_824 + 4_608 + 4_096 + 20


@pytest.mark.parametrize("name, size", [("unet", 128), ("pix2pix_unet", 256), ("mobilenet_unet", 128), ("fcn8s", 256)])
def test_flops_match_the_reference_count_of_the_tutorial_models(name, size, shared_reference):
    spec = importlib.util.spec_from_file_location("seed_models", shared_reference / "seed_models.py")
    seed_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed_models)
    reference, _ = seed_models.BUILDERS[name](size=size, num_classes=3)
    options = {"weights": "none", "fine_tune": "all"} if model_spec(name).pretrained else {}
    assert forward_flops(build_model(name, 3, size, **options)) == seed_models.forward_flops(reference)
