"""Stopping a planned run at its time budget."""
from __future__ import annotations

import time

import keras


class BudgetStop(keras.callbacks.Callback):
    """Ends training after the epoch past which another would end after `deadline`
    (time.monotonic), with `finish` seconds kept for what is written after the last epoch. The
    plan sizes the epochs to fit; this is the guard for when the machine is slower than measured.
    `stopped` says where it stopped, else stays None."""

    def __init__(self, deadline: float, finish: float = 0.0):
        super().__init__()
        self.deadline, self.finish = deadline, finish
        self.stopped: str | None = None
        self._began = None

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        took = now - self._began  # the latest epoch: the first also reads every image, the later ones are shorter
        if epoch + 1 < self.params.get("epochs", 0) and now + took + self.finish > self.deadline:
            self.model.stop_training = True
            self.stopped = (f"after epoch {epoch + 1} of {self.params['epochs']}: another {took:.0f} s epoch would end "
                            f"{now + took + self.finish - self.deadline:.0f} s past the budget")
