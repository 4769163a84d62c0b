"""Pruning a trial of `seglab tune` on its validation mIoU, epoch by epoch."""
from __future__ import annotations

import math

import keras

# Trials train for different numbers of epochs (each gets the epochs its model and size fit in its
# time), so they are compared at the same share of their schedule, not at the same epoch: each
# trial reports its score at every tenth of its epochs it has passed.
STEPS = tuple(range(10, 101, 10))


def steps_passed(epoch: int, epochs: int) -> list[int]:
    """The shares of the schedule (percent, STEPS) that epoch `epoch` (0-based) of `epochs` passes
    first."""
    before, after = 100 * epoch / epochs, 100 * (epoch + 1) / epochs
    return [s for s in STEPS if before < s <= after + 1e-9]


class TrialPruning(keras.callbacks.Callback):
    """Reports val mIoU to an Optuna trial (`report(value, step)`, `should_prune()`: any object
    with those methods) and, when the study's pruner says the trial falls behind, ends training
    after the epoch, as an early stop: the run folder stays whole (best and last model, history,
    report), which Optuna's own Keras callback, raising inside `fit`, does not keep.
    `stopped` says where it stopped, else stays None."""

    def __init__(self, trial, monitor: str = "val_miou"):
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self.best = -math.inf
        self.stopped: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        # the best so far: the value a finished trial is scored by (the best epoch's model is kept)
        self.best = max(self.best, float(value))
        epochs = self.params.get("epochs", epoch + 1)
        steps = steps_passed(epoch, epochs)
        for step in steps:
            self.trial.report(self.best, step)
        if steps and epoch + 1 < epochs and self.trial.should_prune():
            self.model.stop_training = True
            self.stopped = (f"pruned after epoch {epoch + 1} of {epochs}: val mIoU {self.best:.4f} by "
                            f"{steps[-1]}% of the schedule is below the median of the trials before it there")
