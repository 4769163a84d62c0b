"""The metric engine: a streaming int64 confusion matrix and the scores read from it.

Conventions, the same in Keras `fit` and in plain evaluation:
- `confusion[t, p]` counts pixels of true class t predicted as p. Pixels whose truth is
  `ignore_index` (or any value outside 0..num_classes-1) are left out of every score.
- Predictions are `seglab.core.decision.decide_tensor` of the logits: the argmax, or for a
  binary model (one logit, num_classes = 2) foreground where its probability is above 0.5.
- IoU_c = TP / (TP + FP + FN) and Dice_c = 2 TP / (2 TP + FP + FN). A class absent from both the
  truth and the prediction has no IoU or Dice (NaN) and is left out of the means, rather than
  counted as a perfect 1 or a failed 0.
- Dataset-level mean IoU (`miou`), the headline, reads one confusion matrix summed over all
  images, as public benchmarks (PASCAL VOC, Cityscapes) define it. Per-image mean IoU
  (`image_miou`) is the average over images of each image's own mean IoU; it weighs small
  objects and small images more, and is reported beside the headline under its own name.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from seglab.core.decision import decide_tensor
from seglab.core.xla import compiled
from seglab.data.classes import IGNORE_INDEX


def confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int = IGNORE_INDEX,
                     per_image: bool = False) -> np.ndarray:
    """Confusion matrix of class indices `y_true` and `y_pred` (int arrays of the same shape):
    int64 [K, K], or [B, K, K] with `per_image` (one per leading index)."""
    return ops.convert_to_numpy(_confusion(y_true, y_pred, num_classes, ignore_index, per_image))


def per_class_iou(truths, predictions, classes) -> list[list[float | None]]:
    """Each image's IoU per class of the ClassSpec `classes`, [N][K] for labels [N, H, W]; None
    where a class is in neither the image's truth nor its prediction."""
    scores = iou(confusion_matrix(truths, predictions, classes.num_classes, classes.ignore_index, per_image=True))
    return [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in scores]


def _confusion(y_true, y_pred, num_classes: int, ignore_index: int, per_image: bool = False):
    """`confusion_matrix` as a backend tensor, for use inside a compiled train step."""
    k = int(num_classes)
    batch = ops.shape(y_true)[0] if per_image else 1
    y_true = ops.reshape(ops.cast(y_true, "int32"), (batch, -1))
    y_pred = ops.reshape(ops.cast(y_pred, "int32"), (batch, -1))
    valid = (y_true >= 0) & (y_true < k) & (y_true != ignore_index)
    # Left-out pixels go to an extra last bin, dropped below. A segment sum with a number of
    # segments fixed by the shapes compiles under XLA; bincount's data-dependent size does not.
    bins = k * k + 1
    index = ops.where(valid, y_true * k + y_pred, k * k) + ops.arange(batch, dtype="int32")[:, None] * bins
    index = ops.reshape(index, (-1,))
    counts = ops.segment_sum(ops.ones_like(index), index, num_segments=batch * bins)
    counts = ops.reshape(ops.cast(counts, "int64"), (batch, bins))[:, : k * k]
    counts = ops.reshape(counts, (batch, k, k))
    return counts if per_image else counts[0]


def _scores(confusion):
    """confusion [..., K, K] -> (pixel accuracy [...], IoU [..., K], Dice [..., K]), NaN where undefined."""
    confusion = ops.cast(confusion, "float64")
    tp = ops.diagonal(confusion, axis1=-2, axis2=-1)
    truth, predicted = ops.sum(confusion, axis=-1), ops.sum(confusion, axis=-2)
    union = truth + predicted - tp
    nan = ops.full_like(tp, float("nan"))
    iou = ops.where(union > 0, tp / ops.maximum(union, 1), nan)
    dice = ops.where(union > 0, 2 * tp / ops.maximum(truth + predicted, 1), nan)
    labelled = ops.sum(truth, axis=-1)
    accuracy = ops.where(labelled > 0, ops.sum(tp, axis=-1) / ops.maximum(labelled, 1), ops.full_like(labelled, float("nan")))
    return accuracy, iou, dice


def _nanmean(values, axis=-1):
    present = ops.logical_not(ops.isnan(values))
    total = ops.sum(ops.where(present, values, 0), axis=axis)
    count = ops.sum(ops.cast(present, values.dtype), axis=axis)
    return ops.where(count > 0, total / ops.maximum(count, 1), ops.full_like(total, float("nan")))


def pixel_accuracy(confusion) -> float:
    return float(ops.convert_to_numpy(_scores(confusion)[0]))


def iou(confusion) -> np.ndarray:
    """float [K] per-class IoU, NaN for a class absent from truth and prediction."""
    return ops.convert_to_numpy(_scores(confusion)[1])


def dice(confusion) -> np.ndarray:
    """float [K] per-class Dice, NaN for a class absent from truth and prediction."""
    return ops.convert_to_numpy(_scores(confusion)[2])


def mean_iou(confusion) -> float:
    """Mean IoU over the classes present; with a [K, K] dataset confusion matrix, the dataset-level mIoU."""
    return float(ops.convert_to_numpy(_nanmean(_scores(confusion)[1])))


def image_mean_iou(confusions) -> float:
    """Per-image mean IoU: the mean over images of each one's mIoU, from [N, K, K] matrices.
    Images with no labelled pixel are left out."""
    return float(ops.convert_to_numpy(_nanmean(_nanmean(_scores(confusions)[1]), axis=0)))


def _none_if_nan(value: float):
    return None if np.isnan(value) else round(float(value), 6)


def summarize(confusion, class_names: Sequence[str], image_confusions=None) -> dict:
    """Every score as plain JSON-ready values; absent classes have None. `image_confusions`
    [N, K, K] adds `image_miou` and `images`."""
    confusion = np.asarray(confusion, np.int64)
    accuracy, class_iou, class_dice = _scores(confusion)
    result = {
        "pixel_accuracy": _none_if_nan(ops.convert_to_numpy(accuracy)),
        "miou": _none_if_nan(ops.convert_to_numpy(_nanmean(class_iou))),
        "mean_dice": _none_if_nan(ops.convert_to_numpy(_nanmean(class_dice))),
        "iou": {name: _none_if_nan(v) for name, v in zip(class_names, ops.convert_to_numpy(class_iou))},
        "dice": {name: _none_if_nan(v) for name, v in zip(class_names, ops.convert_to_numpy(class_dice))},
        "pixels": int(confusion.sum()),
        "confusion_matrix": confusion.tolist(),
    }
    if image_confusions is not None:
        result["image_miou"] = _none_if_nan(image_mean_iou(np.asarray(image_confusions, np.int64)))
        result["images"] = len(image_confusions)
    return result


def _squeezed(y_true, logits):
    return ops.squeeze(y_true, axis=-1) if len(y_true.shape) == len(logits.shape) else y_true


@compiled
def _batch_confusion(y_true, logits, num_classes: int, ignore_index: int):
    """The metrics' per-batch update: truth [B, H, W(, 1)] and logits -> int64 [K, K]."""
    return _confusion(_squeezed(y_true, logits), decide_tensor(logits), num_classes, ignore_index)


class ConfusionMatrixMetric(keras.metrics.Metric):
    """Streams an int64 confusion matrix over batches of (truth [B, H, W] or [B, H, W, 1], logits
    [B, H, W, C]); subclasses read one score from it. `num_classes` counts the ClassSpec's
    classes (2 for a binary model). int64 because float32 counts stop being exact past 2**24
    pixels, fewer than a thousand 128x128 images."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.confusion = self.add_variable((self.num_classes, self.num_classes), initializer="zeros",
                                           dtype="int64", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.confusion.assign_add(_batch_confusion(y_true, y_pred, self.num_classes, self.ignore_index))

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_index": self.ignore_index}


@keras.saving.register_keras_serializable(package="seglab")
class PixelAccuracy(ConfusionMatrixMetric):
    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, name="pixel_accuracy", dtype=None):
        super().__init__(num_classes, ignore_index, name=name, dtype=dtype)

    def result(self):
        return ops.cast(_scores(self.confusion)[0], "float32")


@keras.saving.register_keras_serializable(package="seglab")
class MeanIoU(ConfusionMatrixMetric):
    """Dataset-level mean IoU over the batches seen (what picks the best checkpoint as `val_miou`)."""

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, name="miou", dtype=None):
        super().__init__(num_classes, ignore_index, name=name, dtype=dtype)

    def result(self):
        return ops.cast(_nanmean(_scores(self.confusion)[1]), "float32")


@keras.saving.register_keras_serializable(package="seglab")
class MeanDice(ConfusionMatrixMetric):
    def __init__(self, num_classes, ignore_index=IGNORE_INDEX, name="mean_dice", dtype=None):
        super().__init__(num_classes, ignore_index, name=name, dtype=dtype)

    def result(self):
        return ops.cast(_nanmean(_scores(self.confusion)[2]), "float32")


def segmentation_metrics(num_classes: int, ignore_index: int = IGNORE_INDEX) -> list[keras.metrics.Metric]:
    """The metrics seglab compiles models with: pixel accuracy, dataset-level mIoU, mean Dice."""
    return [PixelAccuracy(num_classes, ignore_index), MeanIoU(num_classes, ignore_index), MeanDice(num_classes, ignore_index)]
