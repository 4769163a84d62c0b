"""The label decision is one rule (seglab.core.decision) with three twins that must agree: NumPy
(predict, evaluate, the runtimes), Keras tensors (the metrics inside fit) and the head inside an
exported graph."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seglab.core.decision import decide, decide_tensor, logit_cut, probabilities_of
from seglab.deploy.deployable import OutputHead


def logits(channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 2, (2, 9, 7, channels)).astype(np.float32)
    values[0, 0, 0] = 0.0  # a tie between every class, and a binary logit exactly at the cut
    if channels > 1:
        values[0, 0, 1, :2] = 5.0  # a tie between the first two classes: the first wins
    return values


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_the_numpy_keras_and_graph_twins_decide_alike(channels):
    x = logits(channels)
    expected = decide(x)
    assert expected.dtype == np.uint8 and expected.shape == x.shape[:-1]
    np.testing.assert_array_equal(np.asarray(decide_tensor(x)), expected)
    np.testing.assert_array_equal(np.asarray(OutputHead("labels")(x)), expected)
    # and on probabilities, what tiles and TTA average
    np.testing.assert_array_equal(decide(probabilities_of(x), "probabilities"), expected)


def test_ties_go_to_the_first_class_and_one_logit_needs_to_be_above_the_cut():
    x = logits(3)
    assert decide(x)[0, 0, 0] == 0 and decide(x)[0, 0, 1] == 0
    assert decide(np.zeros((1, 1, 1), np.float32))[0] == 0  # probability 0.5 is not above 0.5


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.9])
def test_a_threshold_means_the_same_on_logits_and_probabilities(threshold):
    assert logit_cut(threshold) == pytest.approx(math.log(threshold / (1 - threshold)))
    x = logits(1, seed=3)
    expected = decide(x, "logits", threshold)
    np.testing.assert_array_equal(decide(probabilities_of(x), "probabilities", threshold), expected)
    np.testing.assert_array_equal(np.asarray(decide_tensor(x, threshold)), expected)
