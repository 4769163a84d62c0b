"""seglab's Upsampling computes what Keras's UpSampling2D computes, for sizes known only at run time."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from seglab.models.blocks import Upsampling


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (4, 4)])
def test_upsampling_matches_keras(interpolation, factor, height, width):
    x = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype(np.float32)
    expected = keras.layers.UpSampling2D(factor, interpolation=interpolation)(x)
    np.testing.assert_allclose(Upsampling(factor, interpolation)(x), expected, atol=1e-5)


def test_a_model_of_any_size_keeps_its_channels_and_saves():
    inputs = keras.Input((None, None, 5))
    model = keras.Model(inputs, Upsampling(4, name="up")(inputs))
    assert model.output.shape == (None, None, None, 5)
    x = np.random.default_rng(1).normal(size=(1, 3, 7, 5)).astype(np.float32)
    assert model(x).shape == (1, 12, 28, 5)
    restored = keras.Model.from_config(model.get_config())
    np.testing.assert_array_equal(restored(x), model(x))
