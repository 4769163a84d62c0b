"""What `seglab train` writes after each epoch, written off the training thread.

The training thread only checks the epoch's numbers, predicts the fixed validation samples and
copies the weights (tens of milliseconds). A background thread then writes the epoch's files while
the next epoch trains: saving a model, drawing curves and mosaics and logging to trackers cost
about a second per epoch, a fifth of a small model's epoch on 2 CPU cores. One epoch is written at
a time, in a fixed order, so a run killed at any moment is consistent (see `RunCheckpoint`).
"""
from __future__ import annotations

import math
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import keras
import numpy as np

from seglab.data.classes import ClassSpec
from seglab.metrics import predict_labels
from seglab.report.curves import plot_curves
from seglab.report.mosaic import mosaic
from seglab.runs import Run, atomic_path
from seglab.samples import Epoch, SampleLog, per_class_iou


@dataclass
class Samples:
    """The fixed validation samples predicted after every epoch."""
    names: list[str]
    images: np.ndarray  # float32 [N, H, W, 3], 0..255
    truths: np.ndarray  # uint8 [N, H, W]


class ModelWriter:
    """Saves the model as it was at an epoch's end, from a copy of its variables, while training
    goes on. It saves through a second model loaded from the first checkpoint, which therefore
    has exactly the live model's structure, compile settings and optimizer variables."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.shadow: keras.Model | None = None

    def snapshot(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([v.numpy() for v in self.model.weights],
                [np.array(keras.ops.convert_to_numpy(v)) for v in self.model.optimizer.variables])

    def save(self, path, snapshot) -> None:
        weights, slots = snapshot
        if self.shadow is None:  # the first save: training waits for it, so the live model is still as snapshot
            self.model.save(path)
            self.shadow = keras.models.load_model(path)
            return
        for variable, value in zip(self.shadow.weights, weights):
            variable.assign(value)
        for variable, value in zip(self.shadow.optimizer.variables, slots):
            variable.assign(value)
        self.shadow.save(path)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch, in this order: history.csv, model.keras (when val_miou improves),
    last.keras, curves.png, the samples and preview mosaic, the trackers, then state.json. A NaN
    loss stops training before anything of that epoch is written. The first epoch is written
    before the second starts (it creates the model used for later saves); later epochs are
    written while the next one trains, and training waits for the previous write to finish."""

    def __init__(self, run: Run, classes: ClassSpec, samples: Samples, history: list[dict], trackers=()):
        super().__init__()
        self.run, self.classes, self.samples, self.history = run, classes, samples, history
        self.trackers = list(trackers)
        self.sample_log = SampleLog(run.path)
        self.best = max((row.get("val_miou", -1.0) for row in history), default=-1.0)
        self.started = time.perf_counter()
        self.failure: str | None = None
        self._writer: ModelWriter | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seglab-checkpoint")
        self._pending: Future | None = None

    def on_train_begin(self, logs=None):
        self._writer = ModelWriter(self.model)
        self.sample_log.start(self.samples.names, self.samples.images, self.samples.truths, self.classes)
        self.sample_log.keep_epochs(len(self.history))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            self.failure = (f"epoch {epoch + 1}: {', '.join(bad)} became NaN or infinite. The run keeps epoch {epoch} "
                            "(last.keras). Lower --learning-rate, or check the data with `seglab check`.")
            self.model.stop_training = True
            return
        self.wait()  # the previous epoch's files first
        row = {"epoch": epoch + 1, **{k: round(float(v), 6) for k, v in logs.items()},
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "seconds": round(time.perf_counter() - self.started, 2)}
        self.started = time.perf_counter()  # so waits for writing count in the next epoch's seconds
        self.history.append(row)
        predictions = np.asarray(predict_labels(self.model.predict_on_batch(self.samples.images)))
        sampled = Epoch(epoch + 1, predictions, per_class_iou(self.samples.truths, predictions, self.classes))
        first = self._writer.shadow is None
        self._pending = self._pool.submit(self._write_epoch, row, list(self.history), self._writer.snapshot(), sampled)
        if first:
            self.wait()

    def on_train_end(self, logs=None):
        self.wait()

    def wait(self) -> None:
        """Block until the epoch being written is on disk; re-raise what went wrong writing it."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_epoch(self, row: dict, history: list[dict], snapshot, sampled: Epoch) -> None:
        self.run.write_history(history)
        with atomic_path(self.run.last) as last:
            self._writer.save(last, snapshot)
            if row.get("val_miou", -1.0) > self.best:  # model.keras goes first: it must never lag last.keras
                self.best = row["val_miou"]
                with atomic_path(self.run.model) as best:
                    shutil.copyfile(last, best)  # a copy is ten times faster than saving twice
        with atomic_path(self.run.curves) as tmp:
            plot_curves(history, tmp)
        self.sample_log.add(sampled, self.classes)
        self._preview(sampled)
        for tracker in self.trackers:
            tracker.log_epoch(row, self.samples, sampled)
        best = max(history, key=lambda r: r.get("val_miou", -1.0))
        self.run.write_state(status="running", epochs_done=row["epoch"], best_epoch=best["epoch"],
                             best_val_miou=best.get("val_miou"))

    def _preview(self, sampled: Epoch) -> None:
        self.run.previews.mkdir(exist_ok=True)
        captions = [f"{name}  mIoU {_mean(iou)}" for name, iou in zip(self.samples.names, sampled.iou)]
        picture = mosaic(self.samples.images, self.samples.truths, sampled.predictions, self.classes,
                         title=f"epoch {sampled.epoch}: image | truth | prediction", captions=captions)
        with atomic_path(self.run.previews / f"epoch_{sampled.epoch:03d}.png") as tmp:
            picture.save(tmp)


def _mean(values) -> str:
    present = [v for v in values if v is not None]
    return f"{sum(present) / len(present):.2f}" if present else "–"
