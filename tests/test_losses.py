"""Losses against numbers worked out by hand, with ignore pixels and class weights."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from seglab.data.stats import ClassStats
from seglab.scoring.losses import (
    BinaryCrossEntropy,
    CrossEntropy,
    DiceLoss,
    FocalLoss,
    SumLoss,
    make_loss,
    resolve_class_weights,
)

BIG = 30.0  # a logit this size makes softmax/sigmoid 0 or 1 to float32 precision


def onehot_logits(labels, num_classes):
    return (np.eye(num_classes, dtype=np.float32)[labels] * 2 - 1) * BIG


def test_cross_entropy_of_uniform_logits_is_log_c_and_ignore_pixels_do_not_count():
    labels = np.array([[[0, 1, 2, 255]]], np.uint8)
    logits = np.zeros((1, 1, 4, 3), np.float32)
    logits[0, 0, 3] = [100, -100, 0]  # the ignored pixel would cost a lot if it counted
    assert float(CrossEntropy()(labels, logits)) == pytest.approx(math.log(3), rel=1e-6)


def test_weighted_cross_entropy_is_the_weighted_mean_over_labelled_pixels():
    labels = np.array([[[0, 1, 255]]], np.uint8)
    logits = np.array([[[[0.0, 0.0], [math.log(3), 0.0], [5.0, 0.0]]]], np.float32)
    # pixel 0: -log(1/2); pixel 1 (truth 1): -log(1/4); weights 1 and 3.
    expected = (1 * math.log(2) + 3 * math.log(4)) / 4
    assert float(CrossEntropy(class_weights=[1, 3])(labels, logits)) == pytest.approx(expected, rel=1e-6)


def test_truth_with_a_channel_axis_gives_the_same_loss():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 4, 4)).astype(np.uint8)
    logits = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    assert float(CrossEntropy()(labels[..., None], logits)) == pytest.approx(float(CrossEntropy()(labels, logits)))


def test_binary_cross_entropy_at_logit_zero_is_log_2():
    labels = np.array([[[0, 1, 255]]], np.uint8)
    logits = np.zeros((1, 1, 3, 1), np.float32)
    assert float(BinaryCrossEntropy()(labels, logits)) == pytest.approx(math.log(2), rel=1e-6)


def test_dice_of_all_ones_against_half_ones_is_two_thirds():
    truth = np.array([[[1, 1, 1, 1]]], np.uint8)
    logits = np.array([[[[BIG], [BIG], [-BIG], [-BIG]]]], np.float32)  # predicts [1, 1, 0, 0]
    foreground_only = DiceLoss(smooth=0.0, class_weights=[0, 1])
    assert 1 - float(foreground_only(truth, logits)) == pytest.approx(2 / 3, abs=1e-6)


def test_multiclass_dice_averages_classes_and_skips_ignore():
    truth = np.array([[[0, 0, 1, 1, 255]]], np.uint8)
    predicted = np.array([[[0, 1, 1, 1, 0]]])
    logits = onehot_logits(predicted, 2)
    # class 0: 2*1/(1+2) = 2/3; class 1: 2*2/(3+2) = 4/5.
    assert 1 - float(DiceLoss(smooth=0.0)(truth, logits)) == pytest.approx((2 / 3 + 4 / 5) / 2, abs=1e-6)


def test_focal_loss_with_gamma_zero_is_cross_entropy_and_down_weights_easy_pixels():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (2, 8, 8)).astype(np.uint8)
    labels[0, 0] = 255
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    ce = float(CrossEntropy(class_weights=[1, 2, 3])(labels, logits))
    assert float(FocalLoss(gamma=0.0, class_weights=[1, 2, 3])(labels, logits)) == pytest.approx(ce, rel=1e-5)
    assert float(FocalLoss(gamma=2.0)(labels, logits)) < float(CrossEntropy()(labels, logits))


def test_binary_focal_with_gamma_zero_is_binary_cross_entropy():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, (2, 8, 8)).astype(np.uint8)
    logits = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    assert float(FocalLoss(gamma=0.0)(labels, logits)) == pytest.approx(float(BinaryCrossEntropy()(labels, logits)), rel=1e-5)


def test_a_batch_of_only_ignore_pixels_gives_zero_not_nan():
    labels = np.full((1, 2, 2), 255, np.uint8)
    logits = np.zeros((1, 2, 2, 3), np.float32)
    for loss in (CrossEntropy(), FocalLoss(), DiceLoss(), make_loss("ce+dice", 3)):
        assert float(loss(labels, logits)) == pytest.approx(0.0, abs=1e-6), loss.name  # XLA's divisions round


def test_make_loss_sums_and_checks_the_model_head():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (1, 4, 4)).astype(np.uint8)
    logits = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
    combined = make_loss("ce+dice", 3)
    assert isinstance(combined, SumLoss)
    assert float(combined(labels, logits)) == pytest.approx(float(CrossEntropy()(labels, logits)) + float(DiceLoss()(labels, logits)))
    with pytest.raises(ValueError, match="Use 'bce'"):
        make_loss("ce", 1)
    with pytest.raises(ValueError, match="Use 'ce'"):
        make_loss("bce+dice", 3)
    with pytest.raises(ValueError, match="Unknown loss 'lovasz'. Use one of ce, bce, dice, focal"):
        make_loss("lovasz", 3)


def test_losses_round_trip_through_keras_serialization():
    loss = make_loss("focal+dice", 3, class_weights=[1.0, 2.0, 0.5], ignore_index=7)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert [type(l) for l in restored.losses] == [FocalLoss, DiceLoss]
    assert restored.losses[0].class_weights == [1.0, 2.0, 0.5] and restored.losses[1].ignore_index == 7


def test_auto_class_weights_are_the_median_frequency_weights_check_suggests():
    stats = ClassStats(3)
    stats.update(np.array([[0, 0, 0, 0, 0, 0, 1, 1, 2, 255]], np.uint8))
    stats.update(np.array([[0, 0, 0, 1]], np.uint8))
    # freq: class 0 = 9/13, class 1 = 3/13 (both images), class 2 = 1/9 (first image only); median 3/13.
    expected = [(3 / 13) / (9 / 13), 1.0, (3 / 13) / (1 / 9)]
    assert resolve_class_weights("auto", 3, stats) == pytest.approx(expected, abs=1e-6)
    assert resolve_class_weights("auto", 3, stats) == pytest.approx(list(stats.median_frequency_weights()), abs=1e-6)


def test_explicit_and_absent_class_weights():
    assert resolve_class_weights("none", 3) is None and resolve_class_weights(None, 3) is None
    assert resolve_class_weights("1,2.5,0", 3) == [1.0, 2.5, 0.0]
    assert resolve_class_weights((1, 2), 2) == [1.0, 2.0]
    for bad in ("1,2", "1,x,3", [1, -1, 1], [1, float("nan"), 1]):
        with pytest.raises(ValueError, match="class_weights"):
            resolve_class_weights(bad, 3)
    with pytest.raises(ValueError, match="needs the training set"):
        resolve_class_weights("auto", 3)


@pytest.mark.parametrize("name, num_logits", [("ce+dice", 3), ("bce+dice", 1), ("focal", 4)])
def test_the_xla_compiled_loss_and_its_gradient_match_the_plain_ops(name, num_logits):
    import tensorflow as tf

    rng = np.random.default_rng(4)
    labels = rng.integers(0, max(num_logits, 2), (4, 16, 16)).astype(np.uint8)
    labels[0, :3] = 255
    logits = tf.constant(rng.normal(size=(4, 16, 16, num_logits)).astype(np.float32))
    loss = make_loss(name, num_logits, class_weights=[0.5, 2.0, 1.0, 1.5][: max(num_logits, 2)])

    def value_and_gradient(fn):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = fn(labels, logits)
        return float(value), tape.gradient(value, logits).numpy()

    parts, weights = (loss.losses, loss.weights) if isinstance(loss, SumLoss) else ([loss], [1.0])

    def plain(y, p):  # each part's loss_value, run op by op
        return sum(w * part.loss_value(y, p) for w, part in zip(weights, parts))

    compiled, plain = value_and_gradient(loss), value_and_gradient(plain)
    assert compiled[0] == pytest.approx(plain[0], rel=1e-5)
    np.testing.assert_allclose(compiled[1], plain[1], rtol=1e-4, atol=1e-7)
