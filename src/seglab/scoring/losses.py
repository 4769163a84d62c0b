"""Segmentation losses from logits, aware of the ignore index and of class weights.

Every loss takes `y_true` int [B, H, W] (or [B, H, W, 1]) class indices, where `ignore_index`
marks pixels to leave out, and `y_pred` logits [B, H, W, C]; C == 1 is a binary model (one
sigmoid logit, truth 0 or 1). Each returns one scalar per batch: the mean over the batch's
labelled pixels, weighted by `class_weights[truth]` where given (as PyTorch's weighted
cross-entropy does), so a batch with many ignored pixels counts its labelled ones at full weight.

`class_weights` has one value per class of the ClassSpec: 2 for a binary model (background,
foreground). `resolve_class_weights` turns 'auto' | 'none' | values into that list.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops
from keras.src.losses.loss import scale_loss_for_distribution

from seglab.core.errors import BadArgument
from seglab.core.xla import compiled
from seglab.data.classes import IGNORE_INDEX

_EPSILON = 1e-7


def _labels(y_true, y_pred, ignore_index: int):
    """-> (labels int32 [B, H, W] with ignored pixels set to 0, valid float [B, H, W])."""
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    labels = ops.cast(y_true, "int32")
    valid = ops.not_equal(labels, ignore_index)
    return ops.where(valid, labels, 0), ops.cast(valid, y_pred.dtype)


def _pixel_weights(labels, valid, class_weights):
    if class_weights is None:
        return valid
    return ops.take(ops.convert_to_tensor(class_weights, valid.dtype), labels) * valid


def _weighted_mean(values, weights):
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), _EPSILON)


def _probabilities(labels, logits):
    """-> (predicted probabilities [B, H, W, K], one-hot truth [B, H, W, K]); K = 2 for binary."""
    if logits.shape[-1] == 1:
        foreground = ops.sigmoid(logits)
        return ops.concatenate([1 - foreground, foreground], axis=-1), ops.one_hot(labels, 2, dtype=logits.dtype)
    return ops.softmax(logits, axis=-1), ops.one_hot(labels, logits.shape[-1], dtype=logits.dtype)


class _CompiledLoss(keras.losses.Loss):
    """A loss whose `loss_value` runs compiled with XLA (see `seglab.core.xla`), built on first use."""

    def call(self, y_true, y_pred):
        if getattr(self, "_compiled", None) is None:
            self._compiled = compiled(self.loss_value)
        # Under tf.distribute a replica's loss is its mean divided by the replicas in sync, so the
        # gradients the strategy sums are the mean's. Keras divides in its own reduction, which a
        # scalar, as these losses return, skips: its function does it here (a no-op on 1 replica).
        return scale_loss_for_distribution(self._compiled(y_true, y_pred))

    def loss_value(self, y_true, y_pred):
        raise NotImplementedError


class _SegmentationLoss(_CompiledLoss):
    def __init__(self, ignore_index: int = IGNORE_INDEX, class_weights: Sequence[float] | None = None,
                 name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ignore_index = int(ignore_index)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index, "class_weights": self.class_weights}

    def loss_value(self, y_true, y_pred):
        labels, valid = _labels(y_true, y_pred, self.ignore_index)
        return self.pixel_loss(labels, valid, y_pred)

    def pixel_loss(self, labels, valid, logits):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="seglab")
class CrossEntropy(_SegmentationLoss):
    """Softmax cross-entropy for C > 1 logits."""

    def __init__(self, ignore_index=IGNORE_INDEX, class_weights=None, name="ce", **kwargs):
        super().__init__(ignore_index, class_weights, name=name, **kwargs)

    def pixel_loss(self, labels, valid, logits):
        if logits.shape[-1] == 1:
            raise BadArgument("CrossEntropy needs C > 1 logits; for a binary model (1 logit) use BinaryCrossEntropy ('bce').")
        ce = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return _weighted_mean(ce, _pixel_weights(labels, valid, self.class_weights))


@keras.saving.register_keras_serializable(package="seglab")
class BinaryCrossEntropy(_SegmentationLoss):
    """Sigmoid cross-entropy for one logit; truth 0 (background) or 1 (foreground)."""

    def __init__(self, ignore_index=IGNORE_INDEX, class_weights=None, name="bce", **kwargs):
        super().__init__(ignore_index, class_weights, name=name, **kwargs)

    def pixel_loss(self, labels, valid, logits):
        if logits.shape[-1] != 1:
            raise BadArgument(f"BinaryCrossEntropy needs 1 logit; got {logits.shape[-1]}. Use CrossEntropy ('ce').")
        target = ops.cast(labels, logits.dtype)
        bce = ops.binary_crossentropy(target, logits[..., 0], from_logits=True)
        return _weighted_mean(bce, _pixel_weights(labels, valid, self.class_weights))


@keras.saving.register_keras_serializable(package="seglab")
class FocalLoss(_SegmentationLoss):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by (1 - p_truth)**gamma, so pixels the
    model already gets right count less. Class weights act as the paper's alpha. Binary or multi-class."""

    def __init__(self, gamma: float = 2.0, ignore_index=IGNORE_INDEX, class_weights=None, name="focal", **kwargs):
        super().__init__(ignore_index, class_weights, name=name, **kwargs)
        self.gamma = float(gamma)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}

    def pixel_loss(self, labels, valid, logits):
        if logits.shape[-1] == 1:
            logits = ops.concatenate([ops.zeros_like(logits), logits], axis=-1)  # sigmoid(z) == softmax([0, z])[1]
        log_p = ops.take_along_axis(ops.log_softmax(logits, axis=-1), labels[..., None], axis=-1)[..., 0]
        focal = -((1 - ops.exp(log_p)) ** self.gamma) * log_p
        return _weighted_mean(focal, _pixel_weights(labels, valid, self.class_weights))


@keras.saving.register_keras_serializable(package="seglab")
class DiceLoss(_SegmentationLoss):
    """1 - soft Dice, per class over the whole batch's labelled pixels, averaged over classes
    (weighted by class_weights if given). Binary models score both background and foreground.

    `smooth` keeps a class absent from truth and prediction at Dice 1 instead of 0/0.
    """

    def __init__(self, smooth: float = 1.0, ignore_index=IGNORE_INDEX, class_weights=None, name="dice", **kwargs):
        super().__init__(ignore_index, class_weights, name=name, **kwargs)
        self.smooth = float(smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}

    def pixel_loss(self, labels, valid, logits):
        probs, truth = _probabilities(labels, logits)
        valid = valid[..., None]
        axes = (0, 1, 2)
        intersection = ops.sum(probs * truth * valid, axis=axes)
        total = ops.sum((probs + truth) * valid, axis=axes)
        dice = (2 * intersection + self.smooth) / (total + self.smooth)
        weights = ops.ones_like(dice) if self.class_weights is None else ops.convert_to_tensor(self.class_weights, dice.dtype)
        return 1 - ops.sum(dice * weights) / ops.maximum(ops.sum(weights), _EPSILON)


@keras.saving.register_keras_serializable(package="seglab")
class SumLoss(_CompiledLoss):
    """A weighted sum of losses, e.g. SumLoss([CrossEntropy(), DiceLoss()]) for 'ce+dice'."""

    def __init__(self, losses, weights: Sequence[float] | None = None, name=None, reduction="sum_over_batch_size", dtype=None):
        self.losses = [keras.losses.deserialize(l) if isinstance(l, dict) else l for l in losses]
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.losses):
            raise BadArgument(f"SumLoss got {len(self.losses)} losses but {len(self.weights)} weights.")
        super().__init__(name=name or "_".join(l.name for l in self.losses), reduction=reduction, dtype=dtype)

    def loss_value(self, y_true, y_pred):  # one XLA computation, the parts' inside it
        return sum(w * loss.loss_value(y_true, y_pred) for w, loss in zip(self.weights, self.losses))

    def get_config(self):
        return {**super().get_config(), "losses": [keras.losses.serialize(l) for l in self.losses], "weights": self.weights}


LOSSES = {"ce": CrossEntropy, "bce": BinaryCrossEntropy, "dice": DiceLoss, "focal": FocalLoss}


def make_loss(name: str, num_logits: int, class_weights: Sequence[float] | None = None,
              ignore_index: int = IGNORE_INDEX) -> keras.losses.Loss:
    """'ce' | 'bce' | 'dice' | 'focal', or a sum of them such as 'ce+dice', for a model with
    `num_logits` outputs (1 = binary). Checks the loss fits the model."""
    parts = [part.strip() for part in name.lower().split("+")]
    unknown = [p for p in parts if p not in LOSSES]
    if unknown or not parts:
        raise BadArgument(f"Unknown loss {name!r}. Use one of {', '.join(LOSSES)} or a sum such as 'ce+dice'.")
    if "ce" in parts and num_logits == 1:
        raise BadArgument(f"Loss {name!r}: 'ce' needs a multi-class model; this one has 1 logit (binary). Use 'bce'.")
    if "bce" in parts and num_logits > 1:
        raise BadArgument(f"Loss {name!r}: 'bce' needs a binary model (1 logit); this one has {num_logits}. Use 'ce'.")
    losses = [LOSSES[p](ignore_index=ignore_index, class_weights=class_weights) for p in parts]
    return losses[0] if len(losses) == 1 else SumLoss(losses)


def resolve_class_weights(value, num_classes: int, stats=None) -> list[float] | None:
    """Class weights from 'auto' (median-frequency balancing of the training set's pixel counts,
    the numbers `seglab check` suggests; needs `stats`, a `seglab.data.stats.ClassStats`),
    'none' / None, or explicit values (a sequence or '1,2.5,1')."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str) and value.lower() == "auto":
        if stats is None:
            raise BadArgument("class_weights='auto' needs the training set's class statistics (stats=ClassStats).")
        weights = stats.median_frequency_weights()
    else:
        try:
            weights = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
        except (TypeError, ValueError):
            raise BadArgument(f"class_weights must be 'auto', 'none' or {num_classes} numbers; got {value!r}.") from None
    weights = np.asarray(weights, float)
    if weights.shape != (num_classes,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise BadArgument(f"class_weights needs {num_classes} finite non-negative values, one per class; got {value!r}.")
    return [round(float(w), 6) for w in weights]
