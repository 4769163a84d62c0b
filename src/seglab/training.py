"""`seglab train`: a dataset and a model name in, a complete run folder out; resumable.

Resuming reproduces the uninterrupted run: the training stream is one seeded, repeating dataset
skipped past the batches already trained, and `last.keras` holds the weights, the optimizer
state (its step count says how many epochs are done) and the random-generator state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import sys
from pathlib import Path

import keras

from seglab.checkpoint import RunCheckpoint, Samples
from seglab.config import TrainConfig, binary_head, resolve
from seglab.data import open_source
from seglab.data.check import CheckReport, validate
from seglab.data.pipeline import make_dataset
from seglab.losses import make_loss, resolve_class_weights
from seglab.metrics import segmentation_metrics
from seglab.models import build_model
from seglab.precision import precision
from seglab.runs import Run
from seglab.samples import choose
from seglab.trackers import make_trackers


class TrainingFailed(RuntimeError):
    """Training stopped on a problem (e.g. a NaN loss); the run folder keeps the last good epoch."""


def open_training_source(config: TrainConfig):
    options = {"view": config.view, "val_fraction": config.val_fraction, "seed": config.seed}
    if config.classes:
        options["classes"] = list(config.classes)
    return open_source(config.data, config.format, **options)


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    rate = config.learning_rate
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.01)
    return {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[config.optimizer](rate)


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that, on resume, takes up its best score and patience count from the
    history so far. The learning rate itself comes back with the optimizer in last.keras."""

    def __init__(self, history: list[dict], **kwargs):
        super().__init__(**kwargs)
        self.history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._set_monitor_op()
        for row in self.history:  # the same bookkeeping on_epoch_end did, without touching the rate
            if self._is_improvement(row[self.monitor], self.best):
                self.best, self.wait = row[self.monitor], 0
            else:
                self.wait = 0 if self.wait + 1 >= self.patience else self.wait + 1


def _class_stats(source, reports):
    return CheckReport(source, [r for r in reports if r.pair.split == "train"]).stats


def train(data: str = "synthetic", out=None, *, resume=None, config: TrainConfig | None = None, verbose: int | None = None,
          **options) -> Run:
    """Train a model and write its run folder; returns the Run. `options` are TrainConfig fields
    (model, size, epochs, loss, ...). `resume=RUN` continues an interrupted run instead."""
    if resume is not None:
        run = Run(resume)
        config = TrainConfig.load(run.config)
    else:
        config = (config or TrainConfig()).replace(data=str(data), **options)
        run = Run(out or Path("runs") / config.model)
        if run.path.exists() and any(run.path.iterdir()):
            raise FileExistsError(f"{run.path} already holds files. Resume it with `seglab train --resume {run.path}`, "
                                  "or give another --out.")

    source = open_training_source(config)
    reports = validate(source, ["train", "val"])  # refuses a bad dataset before anything is written
    num_classes = source.classes.num_classes
    if resume is None:
        config = resolve(config, num_classes)
        weights = resolve_class_weights(config.class_weights, num_classes, _class_stats(source, reports))
        config = config.replace(class_weights=tuple(weights) if weights else "none")

    keras.utils.set_random_seed(config.seed)
    steps = math.ceil(len(source.split("train")) / config.batch_size)
    if resume is not None and run.last.is_file():
        model = keras.models.load_model(run.last)
        initial_epoch = int(model.optimizer.iterations.numpy()) // steps
    else:
        model = _compiled_model(config, num_classes, steps)  # checks the size and options before anything is written
        initial_epoch = 0
    if resume is None:
        run.path.mkdir(parents=True, exist_ok=True)
        config.save(run.config)
        source.classes.save(run.classes)
        run.write_state(status="running", epochs_done=0)
    history = run.history()[:initial_epoch]

    train_ds = make_dataset(source, "train", size=config.size, batch_size=config.batch_size, augment=config.augment,
                            cache=config.cache, repeat=True, seed=config.seed, validate_first=False)
    val_ds = make_dataset(source, "val", size=config.size, batch_size=config.batch_size, cache=config.cache,
                          validate_first=False)
    if initial_epoch >= config.epochs:
        run.write_state(**{**run.state, "status": "complete"})
        return run
    checkpoint = RunCheckpoint(run, source.classes, _samples(source, config), history,
                               make_trackers(config, run, source.classes))
    callbacks = [checkpoint]
    if config.schedule == "plateau":
        callbacks.append(ResumablePlateau(history, monitor="val_miou", mode="max", factor=0.5, patience=3))
    try:
        with _collector_skips_what_exists():
            model.fit(train_ds.skip(initial_epoch * steps), epochs=config.epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=steps, validation_data=val_ds, callbacks=callbacks, shuffle=False,
                      verbose=(1 if sys.stderr.isatty() else 2) if verbose is None else verbose)
    except KeyboardInterrupt:
        checkpoint.close()  # the epoch being written is finished, not lost
        run.write_state(**{**run.state, "status": "interrupted"})
        raise
    checkpoint.close()
    if checkpoint.failure:
        run.write_state(**{**run.state, "status": "failed", "error": checkpoint.failure})
        raise TrainingFailed(checkpoint.failure)
    run.write_state(**{**run.state, "status": "complete"})
    return run


@contextlib.contextmanager
def _collector_skips_what_exists():
    """Python's full garbage collections walk every tracked object: with TensorFlow, Keras and a
    model loaded, about 600,000 of them, 0.2-0.45 s a time with the GIL held, stalling the steps
    the training thread hands to TensorFlow and the epoch writer alike. The objects alive when
    training starts (libraries, model, datasets) live until it ends, so they are moved out of
    the collector's view for the run (`gc.freeze`), and back afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _compiled_model(config: TrainConfig, num_classes: int, steps_per_epoch: int):
    num_logits = 1 if binary_head(config) else num_classes
    weights = None if config.class_weights == "none" else list(config.class_weights)
    with precision(config.precision):
        model = build_model(config.model, num_logits, config.size, **_model_options(config), **config.model_options)
        model.compile(optimizer=_optimizer(config, steps_per_epoch), loss=make_loss(config.loss, num_logits, weights),
                      metrics=segmentation_metrics(num_classes))
    return model


def _model_options(config: TrainConfig) -> dict:
    if config.model in ("mobilenet_unet", "fcn8s"):
        return {"weights": config.weights, "fine_tune": config.fine_tune}
    return {}


def _samples(source, config: TrainConfig) -> Samples:
    """The validation samples shown after every epoch: a draw seeded by the run's seed, so the
    same ones every epoch and after a resume."""
    pairs = source.split("val")
    chosen = [pairs[i] for i in choose(max(1, config.previews), len(pairs), config.seed)]
    subset = dataclasses.replace(source, pairs=chosen)
    ds = make_dataset(subset, "val", size=config.size, batch_size=len(chosen), validate_first=False)
    images, truths = next(iter(ds))
    return Samples([p.name for p in chosen], images.numpy(), truths.numpy())
