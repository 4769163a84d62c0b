"""What `seglab train` writes after each epoch, written off the training thread.

The training thread only checks the epoch's numbers and copies the weights and optimizer state
(tens of milliseconds). A background thread loads them into a shadow copy of the model and, while
the next epoch trains, predicts the fixed validation samples with it and writes the epoch's files.
That work takes a core from the training step on a 2-core machine, so it is kept small: the model
file from the snapshot's bytes (`runs.saving.SnapshotWriter`, 0.1 s where Keras's `model.save`
takes 1 s for MobileNetV2 U-Net) and the curves on one figure redrawn (`report.curves.Curves`).
One epoch is written at a time, in a fixed order, so a run killed at any moment is consistent
(see `RunCheckpoint`).
"""
from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor

import keras
import numpy as np

from seglab.core.decision import decide_tensor
from seglab.core.errors import TrainingFailed
from seglab.data.classes import ClassSpec
from seglab.report.curves import Curves
from seglab.report.mosaic import mosaic
from seglab.runs import Run, atomic_path, link_or_copy
from seglab.runs.samples import Epoch, SampleLog, Samples
from seglab.runs.saving import SnapshotWriter, snapshot, variables
from seglab.scoring.metrics import per_class_iou


class ShadowModel:
    """A second copy of the model, built from its config with the same compile settings, into
    which an epoch's weights and optimizer state are copied so they can be saved and used for the
    sample predictions while the live model trains on."""

    def __init__(self, model: keras.Model, images: np.ndarray):
        shadow = keras.models.clone_model(model)
        shadow.compile_from_config(model.get_compile_config())
        shadow.optimizer.build(shadow.trainable_variables)
        # Trace the sample prediction now, so the writing thread only runs it: Keras and TensorFlow
        # do not build or trace models safely beside a step traced on another thread.
        shadow.predict_on_batch(images)
        self.model = shadow
        self.writer = SnapshotWriter()

    def matches(self, live: keras.Model) -> bool:
        """Whether the variables line up one to one (same paths and shapes, same order) with `live`'s."""
        def layout(model):
            return [(v.path, tuple(v.shape)) for v in variables(model)]
        return layout(self.model) == layout(live)

    def load(self, arrays: list[np.ndarray]) -> keras.Model:
        for variable, value in zip(variables(self.model), arrays):
            variable.assign(value)
        return self.model

    def save(self, arrays: list[np.ndarray], path) -> None:
        """Save the state `load` loaded (`arrays`) to `path`."""
        self.writer.write(self.model, arrays, path)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch, in this order: history.csv, curves.png, the samples and preview mosaic, the
    trackers, model.keras (when val_miou improves), last.keras, then state.json. A NaN
    loss stops training before anything of that epoch is written. Each epoch is written while the
    next one trains, and training waits for the previous write to finish before it hands over
    the next. A model that cannot be cloned is written from the live model, in the training thread."""

    def __init__(self, run: Run, classes: ClassSpec, samples: Samples, history: list[dict], trackers=()):
        super().__init__()
        self.run, self.classes, self.samples, self.history = run, classes, samples, history
        self.trackers = list(trackers)
        self.sample_log = SampleLog(run.path)
        self.curves = Curves()
        self.best = max((row.get("val_miou", -1.0) for row in history), default=-1.0)
        self.started = time.perf_counter()
        self.failure: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seglab-checkpoint")
        self._pending: Future | None = None
        self._shadow: ShadowModel | None = None  # None: write from the live model, in this thread

    def on_train_begin(self, logs=None):
        # Built here, on the training thread, before the first step is traced. It was once built on
        # the writing thread while the first epoch traced its step, to use the core tracing leaves
        # idle; the test suite once died that way, of a segmentation fault inside TensorFlow.
        # The live model's optimizer is built by now (engines.distribute.build_for_fit), so the
        # shadow is used only where its variables line up with it one to one.
        try:
            shadow = ShadowModel(self.model, self.samples.images)
            self._shadow = shadow if shadow.matches(self.model) else None
        except Exception:  # noqa: BLE001  (a model that cannot be cloned is written from the live copy)
            self._shadow = None
        self.sample_log.start(self.samples.names, self.samples.pictures, self.samples.truths, self.classes)
        self.sample_log.keep_epochs(len(self.history))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self.failure = non_finite(epoch, logs)
        if self.failure:
            self.model.stop_training = True
            return
        self.wait()  # the previous epoch's files first
        row = {"epoch": epoch + 1, **{k: round(float(v), 6) for k, v in logs.items()},
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "seconds": round(time.perf_counter() - self.started, 2)}
        self.started = time.perf_counter()  # so waits for writing count in the next epoch's seconds
        self.history.append(row)
        if self._shadow is None:
            self._write_epoch(row, list(self.history), self.model)
        else:
            self._pending = self._pool.submit(self._write_epoch, row, list(self.history), snapshot(self.model))

    def on_train_end(self, logs=None):
        self.wait()

    def close(self) -> None:
        """Finish writing, then close the trackers (also after an interruption or a failure)."""
        try:
            self.wait()
        finally:
            for tracker in self.trackers:
                tracker.close()
            self._pool.shutdown()

    def wait(self) -> None:
        """Block until the epoch being written is on disk; re-raise what went wrong writing it."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_epoch(self, row: dict, history: list[dict], state) -> None:
        """`state`: a snapshot to load into the shadow model, or the live model itself.

        The checkpoint lands last (then state.json): resume counts the epochs done from
        last.keras, so an epoch killed while its files were written is trained and written again
        in full, and the previews and samples never lag the checkpoint."""
        try:
            self._write_epoch_files(row, history, state)
        except OSError as e:  # a full disk, a quota, a folder removed: the user's to fix, then resume
            where = f" ({e.filename})" if e.filename else ""
            kept = f"epoch {row['epoch'] - 1}" if row["epoch"] > 1 else "no finished epoch"
            raise TrainingFailed(f"{self.run.path}: writing epoch {row['epoch']} failed: {e.strerror or e}{where}. The run "
                                 f"keeps {kept}; free space (or fix the folder), then `seglab train --resume "
                                 f"{self.run.path}`.") from e

    def _write_epoch_files(self, row: dict, history: list[dict], state) -> None:
        model = state if isinstance(state, keras.Model) else self._shadow.load(state)
        predictions = np.asarray(decide_tensor(model.predict_on_batch(self.samples.images)))
        sampled = Epoch(row["epoch"], predictions, per_class_iou(self.samples.truths, predictions, self.classes))
        self.run.write_history(history)
        with atomic_path(self.run.curves_path) as tmp:
            self.curves.draw(history, tmp)
        self.sample_log.add(sampled, self.classes)
        self._preview(sampled)
        for tracker in self.trackers:
            tracker.log_epoch(row, self.samples, sampled)
        with atomic_path(self.run.last_path) as last:
            if model is state:
                model.save(last)
            else:
                self._shadow.save(state, last)
            if row.get("val_miou", -1.0) > self.best:  # model.keras goes first: it must never lag last.keras
                self.best = row["val_miou"]
                with atomic_path(self.run.model_path) as best:
                    link_or_copy(last, best)
        best = max(history, key=lambda r: r.get("val_miou", -1.0))
        self.run.write_state(status="running", epochs_done=row["epoch"], best_epoch=best["epoch"],
                             best_val_miou=best.get("val_miou"))

    def _preview(self, sampled: Epoch) -> None:
        self.run.previews_path.mkdir(exist_ok=True)
        captions = [f"{name}  mIoU {_mean(iou)}" for name, iou in zip(self.samples.names, sampled.iou)]
        picture = mosaic(self.samples.pictures, self.samples.truths, sampled.predictions, self.classes,
                         title=f"epoch {sampled.epoch}: image | truth | prediction", captions=captions)
        with atomic_path(self.run.previews_path / f"epoch_{sampled.epoch:03d}.png") as tmp:
            picture.save(tmp)


def non_finite(epoch: int, logs: dict) -> str | None:
    """Why training must stop after `epoch` (0-based), when a figure in its logs is NaN or infinite."""
    bad = [k for k, v in logs.items() if not math.isfinite(v)]
    if not bad:
        return None
    kept = f"The run keeps epoch {epoch} (last.keras)." if epoch else "No epoch finished, so the run holds no model."
    return (f"epoch {epoch + 1}: {', '.join(bad)} became NaN or infinite. {kept} "
            "Lower --learning-rate, or check the data with `seglab check`.")


class StopWhereTheChiefStops(keras.callbacks.Callback):
    """What a worker other than the chief does after each epoch: nothing written, but it stops
    where the chief's RunCheckpoint stops (the logs are the same on every worker), since a worker
    that trained on alone would wait for the others' gradients for ever."""

    failure: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.failure = non_finite(epoch, dict(logs or {}))
        if self.failure:
            self.model.stop_training = True

    def close(self) -> None:
        pass


def _mean(values) -> str:
    present = [v for v in values if v is not None]
    return f"{sum(present) / len(present):.2f}" if present else "–"
