"""keras.applications encoders give features P1..P5 at strides 2..32 from raw 0..255 RGB, at any
size divisible by 32, with clear errors for unknown names and weights made for another network."""
from __future__ import annotations

import numpy as np
import pytest

from seglab.models.encoders import STRIDES, build_encoder

FAST = ["mobilenet_v2", "mobilenet_v3_small", "vgg16"]  # the rest, a few seconds each, with `make test`
# One of each other family with `make test`; their larger siblings (ResNet101, EfficientNetV2 B1-B3
# and S, ConvNeXt Small) take the same code path and would cost the suite a minute. All 14 passed
# when this was written.
SLOW = ["convnext_tiny", "efficientnetv2_b0", "mobilenet_v3_large", "resnet50"]


def features_of(name, size=(64, 96)):
    preprocess, encoder = build_encoder(name, size, weights="none")
    x = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    return encoder(preprocess(x) if preprocess is not None else x)


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_features_have_the_documented_strides(name):
    features = features_of(name)
    expected = [level for level in STRIDES if not (name.startswith("convnext") and level == "P1")]  # ConvNeXt starts at 4
    assert list(features) == expected
    for level, feature in features.items():
        assert tuple(feature.shape[1:3]) == (64 // STRIDES[level], 96 // STRIDES[level]), (level, feature.shape)


@pytest.mark.slow
def test_layer_names_do_not_matter_two_builds_give_the_same_taps():
    # MobileNetV3's layer names carry Keras's global counters: the rule finds the same layers anyway
    first, second = features_of("mobilenet_v3_small"), features_of("mobilenet_v3_small")
    assert [f.shape for f in first.values()] == [f.shape for f in second.values()]


def test_an_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown encoder 'resnet5'. Available: convnext_small, .*resnet50"):
        build_encoder("resnet5", (64, 64), weights="none")


def test_a_weights_file_for_another_network_is_refused_clearly(shared_weights):
    with pytest.raises(ValueError, match="does not fit ResNet50"):
        build_encoder("resnet50", (64, 64), weights=str(shared_weights / "mobilenet_v2_1.0_notop.weights.h5"))


@pytest.mark.slow
def test_levels_choose_the_features_and_the_rest_of_the_network_is_left_out():
    _, whole = build_encoder("mobilenet_v2", (64, 64), weights="none")
    _, cut = build_encoder("mobilenet_v2", (64, 64), weights="none", levels=("P2", "P4"))
    assert list(cut.output) == ["P2", "P4"] and cut.count_params() < whole.count_params()
    with pytest.raises(ValueError, match="Unknown feature levels"):
        build_encoder("mobilenet_v2", (64, 64), weights="none", levels=("P6",))
