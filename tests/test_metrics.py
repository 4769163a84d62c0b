"""The metric engine against hand-worked numbers and scikit-learn, in plain evaluation and in Keras fit."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import jaccard_score

from seglab.core.decision import decide_tensor
from seglab.scoring import metrics
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import (
    MeanDice,
    MeanIoU,
    PixelAccuracy,
    confusion_matrix,
    segmentation_metrics,
)


def onehot_logits(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[labels] * 10


def random_masks(seed, shape=(6, 24, 24), num_classes=4, ignore_fraction=0.15):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, shape).astype(np.uint8)
    truth[rng.random(shape) < ignore_fraction] = 255
    logits = rng.normal(size=(*shape, num_classes)).astype(np.float32)
    logits[..., 0] += 0.5  # an imbalanced prediction, so IoUs differ by class
    return truth, logits


def test_all_background_on_an_80_20_image_scores_accuracy_08_and_miou_04():
    truth = np.zeros((10, 10), np.uint8)
    truth[:2] = 1
    confusion = confusion_matrix(truth, np.zeros((10, 10), np.int32), 2)
    assert metrics.pixel_accuracy(confusion) == pytest.approx(0.8)
    np.testing.assert_allclose(metrics.iou(confusion), [0.8, 0.0])
    assert metrics.mean_iou(confusion) == pytest.approx(0.4)


def test_dice_of_all_ones_against_half_ones_is_two_thirds():
    confusion = confusion_matrix(np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0]), 2)
    assert metrics.dice(confusion)[1] == pytest.approx(2 / 3)


def test_a_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    confusion = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]), 3)
    class_iou = metrics.iou(confusion)
    assert math.isnan(class_iou[2])
    assert metrics.mean_iou(confusion) == pytest.approx((2 / 3 + 1 / 2) / 2)
    summary = metrics.summarize(confusion, ["a", "b", "c"])
    assert summary["iou"]["c"] is None and summary["dice"]["c"] is None
    assert summary["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2, abs=1e-6)


def test_ignore_and_out_of_range_truth_are_left_out():
    confusion = confusion_matrix(np.array([0, 1, 255, 7]), np.array([0, 1, 1, 1]), 2)
    assert confusion.dtype == "int64"
    np.testing.assert_array_equal(confusion, [[1, 0], [0, 1]])


def test_binary_logits_are_thresholded_at_probability_one_half():
    logits = np.array([[-2.0], [-1e-3], [1e-3], [3.0]], np.float32)
    np.testing.assert_array_equal(decide_tensor(logits), [0, 0, 1, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_scores_match_scikit_learn_with_ignore_pixels(seed):
    truth, logits = random_masks(seed)
    predicted = np.asarray(decide_tensor(logits))
    confusion = confusion_matrix(truth, predicted, 4)
    labelled = truth != 255
    expected = sk_confusion_matrix(truth[labelled], predicted[labelled], labels=range(4))
    np.testing.assert_array_equal(confusion, expected)
    np.testing.assert_allclose(metrics.iou(confusion), jaccard_score(truth[labelled], predicted[labelled], average=None), rtol=1e-12)
    assert metrics.mean_iou(confusion) == pytest.approx(jaccard_score(truth[labelled], predicted[labelled], average="macro"))
    assert metrics.pixel_accuracy(confusion) == pytest.approx((truth[labelled] == predicted[labelled]).mean())


def test_per_image_mean_iou_averages_each_images_own_miou():
    truth, logits = random_masks(3)
    predicted = np.asarray(decide_tensor(logits))
    per_image = confusion_matrix(truth, predicted, 4, per_image=True)
    assert per_image.shape == (6, 4, 4)
    np.testing.assert_array_equal(per_image.sum(axis=0), confusion_matrix(truth, predicted, 4))
    expected = np.mean([jaccard_score(t[t != 255], p[t != 255], average="macro", labels=np.unique(np.r_[t[t != 255], p[t != 255]]))
                        for t, p in zip(truth, predicted)])
    assert metrics.image_mean_iou(per_image) == pytest.approx(expected)
    summary = metrics.summarize(per_image.sum(axis=0), list("abcd"), per_image)
    assert summary["images"] == 6 and summary["image_miou"] == pytest.approx(expected, abs=1e-6)
    assert summary["miou"] != summary["image_miou"]


def test_streaming_over_batches_equals_one_confusion_matrix_over_all():
    truth, logits = random_masks(4)
    metric = MeanIoU(4)
    for start in range(0, 6, 2):
        metric.update_state(truth[start:start + 2], logits[start:start + 2])
    expected = metrics.mean_iou(confusion_matrix(truth, decide_tensor(logits), 4))
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    metric.reset_state()
    assert int(np.sum(metric.confusion.numpy())) == 0


def test_counts_stay_exact_past_float32_and_int32_range():
    metric = PixelAccuracy(2)
    metric.confusion.assign(np.array([[2**40, 0], [0, 0]], np.int64))
    metric.update_state(np.zeros((1, 1, 1), np.uint8), np.zeros((1, 1, 1, 2), np.float32))
    assert int(metric.confusion.numpy()[0, 0]) == 2**40 + 1


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.slow
def test_keras_fit_and_evaluate_report_the_same_scores_as_plain_evaluation(jit_compile):
    truth, _ = random_masks(5, shape=(8, 16, 16), num_classes=3)
    images = np.random.default_rng(5).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(keras.layers.Rescaling(1 / 255)(inputs)))
    model.compile(optimizer="adam", loss=make_loss("ce", 3),
                  metrics=segmentation_metrics(3), jit_compile=jit_compile)
    history = model.fit(images, truth, batch_size=3, epochs=2, validation_data=(images, truth), verbose=0).history

    logits = model.predict(images, batch_size=3, verbose=0)
    per_image = confusion_matrix(truth, decide_tensor(logits), 3, per_image=True)
    expected = metrics.summarize(per_image.sum(axis=0), ["a", "b", "c"], per_image)
    assert history["val_miou"][-1] == pytest.approx(expected["miou"], abs=1e-6)
    assert history["val_pixel_accuracy"][-1] == pytest.approx(expected["pixel_accuracy"], abs=1e-6)
    assert history["val_mean_dice"][-1] == pytest.approx(expected["mean_dice"], abs=1e-6)
    logs = model.evaluate(images, truth, batch_size=3, return_dict=True, verbose=0)
    assert logs["miou"] == pytest.approx(expected["miou"], abs=1e-6)


def test_metrics_for_a_binary_model_use_two_classes():
    truth = np.array([[[0, 1, 1, 255]]], np.uint8)
    logits = np.array([[[[-1.0], [2.0], [-3.0], [5.0]]]], np.float32)  # predicts 0, 1, 0, (ignored)
    metric = MeanDice(2)
    metric.update_state(truth, logits)
    assert float(metric.result()) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_metrics_round_trip_through_keras_serialization():
    metric = keras.metrics.deserialize(keras.metrics.serialize(MeanIoU(5, ignore_index=11)))
    assert isinstance(metric, MeanIoU) and metric.num_classes == 5 and metric.ignore_index == 11
