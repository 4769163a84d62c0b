"""`seglab train`: a dataset and a model name in, a complete run folder out; resumable.

Resuming reproduces the uninterrupted run: the training stream is one seeded, repeating dataset
skipped past the batches already trained, and `last.keras` holds the weights, the optimizer
state (its step count says how many epochs are done) and the random-generator state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import keras

from seglab.callbacks.budget import BudgetStop
from seglab.callbacks.checkpoint import RunCheckpoint, StopWhereTheChiefStops
from seglab.callbacks.trackers import make_trackers
from seglab.commands.compiled import compiled_model, image_input
from seglab.commands.planning import Planner
from seglab.core.errors import (
    BadArgument,
    RunExists,
    Terminated,
    TrainingFailed,
    WorkerLost,
)
from seglab.core.files import write_text
from seglab.core.progress import EpochBar
from seglab.data.check import CheckReport
from seglab.data.check import validate as validate_source
from seglab.data.pipeline import make_dataset
from seglab.engines.distribute import (
    Cluster,
    build_for_fit,
    distributed_dataset,
    lost_peer,
    synchronize_batch_norm,
)
from seglab.engines.distribute import start as start_cluster
from seglab.engines.jit import choose as choose_jit
from seglab.engines.jit import compile_steps
from seglab.models import model_spec
from seglab.models.inputs import ImageInput
from seglab.report.plan_tables import print_plan_summary
from seglab.runs import Run, check_output_dir
from seglab.runs.config import (
    PlanRecord,
    Setup,
    TrainConfig,
    resolve,
    section_of,
    validate,
)
from seglab.runs.samples import Samples
from seglab.scoring.losses import resolve_class_weights


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau on a score to maximise that, on resume, takes up its best score and
    patience count from the history so far. The learning rate itself comes back with the
    optimizer in last.keras."""

    def __init__(self, history: list[dict], **kwargs):
        super().__init__(mode="max", **kwargs)
        self.history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for row in self.history:  # the bookkeeping on_epoch_end does (no cooldown), without touching the rate
            score = row[self.monitor]
            if self.best is None or score - self.min_delta > self.best:
                self.best, self.wait = score, 0
            else:
                self.wait = 0 if self.wait + 1 >= self.patience else self.wait + 1


def train(data: str = "synthetic", out=None, *, resume=None, config: TrainConfig | None = None,
          verbose: int | str | None = None, budget: float | None = None, deadline: float | None = None,
          started: float | None = None, callbacks: Sequence[keras.callbacks.Callback] = (), **options) -> Run:
    """Train a model and write its run folder; returns the Run. `options` are TrainConfig fields
    (model, size, epochs, loss, ...). `resume=RUN` continues an interrupted run instead.

    `budget` (seconds): plan the recipe from the dataset's fingerprint and a measured step time so
    that the whole call ends within it (`seglab.commands.planning`); the recipe `options` given
    win over the plan's values, and config.yaml's `plan` section says which they were.
    `deadline` (time.monotonic): stop after the last epoch that ends before it, whatever the
    epochs planned (a search's shared budget). `callbacks`: more Keras callbacks, after the run's
    own; one that stops training early says why in its `stopped` attribute, which state.json
    records (a pruned trial of `seglab tune`).
    `verbose`: Keras's 0, 1 or 2 (None: 1 on a terminal, else 2), or 'bar' for one progress bar
    over the epochs instead of a log line each.

    `distribute` (an option, also on resume; default auto) picks the tf.distribute strategy
    (`seglab.engines.distribute`). In a multi-worker job every worker calls this with the same
    arguments; only the chief writes the run folder.

    Everything that can be refused (options, dataset, model) is refused before the run folder is
    written, and one process at a time writes a run folder (`Run.lock`)."""
    # a budget counts from here (planning and reading the data are part of it), or from `started`
    # (time.monotonic) where the caller spent part of it first: the command line, importing TensorFlow
    started = time.monotonic() if started is None else started
    # First: a multi-worker strategy must start before any other TensorFlow work.
    distribute, timeout = options.pop("distribute", None), options.get("worker_timeout")
    given = config if resume is None else None
    cluster = start_cluster(distribute or (given.setup.distribute if given else "auto"),
                            timeout or (given.setup.worker_timeout if given else Setup.worker_timeout))
    if resume is not None:
        run = Run.open(resume)
        with _writer(run, cluster):
            return _fit(run, *_resumed(run, cluster), cluster=cluster, verbose=verbose)
    # a new run's plan section is its own --budget's: a config.yaml started from keeps its recipe, not its plan
    config = dataclasses.replace(config or TrainConfig(), plan=PlanRecord()).replace(path=dataset_path(data), **options)
    if budget is not None and out is None:
        out = Path("runs") / "planned"  # the model is the plan's, not known yet
    run = Run(out or Path("runs") / config.recipe.model)
    if cluster.chief:
        _refuse_existing(run)
        check_output_dir(run.path)
    given = {k: v for k, v in options.items() if section_of(k) == "recipe"} if budget is not None else {}
    source, config, model, plan = prepare(config, cluster, budget, given, started, quiet=verbose == 0)
    if not cluster.chief:
        return _fit(run, config, source, model, 0, cluster=cluster, verbose=verbose)
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        _refuse_existing(run)  # another process may have started here meanwhile
        config.save(run.config_path)
        source.classes.save(run.classes_path)
        if plan is not None:
            write_text(run.plan_path, json.dumps(plan.to_json(), indent=2) + "\n")
        run.write_state(status="running", epochs_done=0)
        if budget is not None:
            deadline = min(started + budget, deadline or math.inf)
        return _fit(run, config, source, model, 0, cluster=cluster, verbose=verbose, deadline=deadline,
                    extra=callbacks)


def _writer(run: Run, cluster: Cluster):
    """The run folder's writer lock, held by the chief; the other workers of a job only read."""
    return run.lock() if cluster.chief else contextlib.nullcontext()


def dataset_path(data) -> str:
    """The dataset as config.yaml keeps it: an absolute path, so the run works from any folder."""
    path = Path(str(data)).expanduser()
    return str(data) if str(data) == "synthetic" and not path.exists() else str(path.resolve())


def _refuse_existing(run: Run) -> None:
    if run.path.is_dir() and any(p.name != ".lock" for p in run.path.iterdir()):
        raise RunExists(f"{run.path} already holds files. Resume it with `seglab train --resume {run.path}`, "
                              "or give another --out.")


def prepare(config: TrainConfig, cluster: Cluster, budget: float | None = None, given: dict | None = None,
            started: float | None = None, quiet: bool = False):
    """The source, resolved config, compiled model and plan (None without a budget) of a new run:
    all checked, nothing written."""
    source = config.open_source()
    reports = checked_source(source, config)
    plan = None
    if budget is not None:
        plan = Planner(source, reports, budget, given, base=config, started=started).plan()
        if cluster.chief and not quiet:
            print_plan_summary(plan, sys.stderr)
        config = config.replace(**plan.values, budget=budget, user_set=plan.user_set, reasons=plan.reasons,
                                estimate=plan.estimate, inference=plan.inference)
    config = resolve(config, source.classes.num_classes)
    config = config.replace(class_weights=_class_weights(config, source, reports), **_distribution(config, cluster),
                            bands=None if source.bands.rgb else source.bands.names,
                            band_adaptation=_band_adaptation(config, source.bands))
    keras.utils.set_random_seed(config.setup.seed)  # the initial weights, and every draw of the run after them
    model = compiled_model(config, source.classes.num_classes, _steps(source, config), cluster,
                           image_input(source, reports))
    return source, config, model, plan


def _distribution(config: TrainConfig, cluster: Cluster) -> dict:
    """What config.yaml records of the strategy (its name, replicas and per-replica batch), and
    whether the steps are compiled with XLA, which depends on it."""
    jit, refused = choose_jit(config.setup.jit, cluster.distributed)
    if refused and cluster.chief:
        print(f"Training without XLA: {refused}.", file=sys.stderr)
    return {"distribute": cluster.name, "replicas": cluster.replicas, "replica_batch": cluster.replica_batch(config.recipe.batch_size),
            "jit": jit}


def _resumed(run: Run, cluster: Cluster):
    """The config, source, model and finished epochs of an interrupted run, checked against
    what it was trained with."""
    config, trained = run.config, run.classes
    source = config.open_source()
    reports = checked_source(source, config)
    num_classes = source.classes.num_classes
    try:
        validate(config, num_classes)
    except ValueError as e:
        raise BadArgument(f"{run.config_path}: {e} Fix the file to resume.") from None
    if source.classes.names != trained.names:
        raise BadArgument(f"{config.data.path} now has the classes {', '.join(source.classes.names)}, but {run.path} was "
                         f"trained on {', '.join(trained.names)}. Resume with the run's data, or start a new run.")
    distribution = _distribution(config, cluster)
    moved = any(config.get(k) != v for k, v in distribution.items())
    config = config.replace(**distribution)
    if moved and cluster.chief:  # resumed on other replicas: the global batch, so each step's samples, are the same
        config.save(run.config_path)
    if config.recipe.class_weights == "auto":
        config = config.replace(class_weights=_class_weights(config, source, reports))
    steps = _steps(source, config)
    if run.last_path.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a frozen encoder without weights warns; only its layout is used
            fresh = compiled_model(config.replace(weights="none"), num_classes, steps, cluster, image_input(source, reports))
        keras.utils.set_random_seed(config.setup.seed)  # after the throwaway model: the run's draws are as they were
        with cluster.scope():
            model = run.load_model("last")
        synchronize_batch_norm(model, cluster)
        _refuse_edits(run, fresh, model)
        initial_epoch = int(model.optimizer.iterations.numpy()) // steps
    else:  # killed before its first epoch ended: nothing trained yet, start afresh
        keras.utils.set_random_seed(config.setup.seed)
        model = compiled_model(config, num_classes, steps, cluster, image_input(source, reports))
        initial_epoch = 0
    if cluster.chief:
        run.remove_stale_temporaries()
    return config, source, model, initial_epoch


def _refuse_edits(run: Run, fresh: keras.Model, model: keras.Model) -> None:
    """The weights in last.keras (`model`) belong to the model, loss and optimizer they were
    trained with: a config.yaml edited since then, whose model is `fresh`, is refused rather than
    silently ignored."""
    layout = lambda m: [(w.path, tuple(w.shape)) for w in m.weights]  # noqa: E731
    checks = [("model, model_options or size", layout(fresh) == layout(model) and fresh.input_shape == model.input_shape),
              ("loss or class_weights", keras.losses.serialize(fresh.loss) == keras.losses.serialize(model.loss)),
              ("optimizer", type(fresh.optimizer) is type(model.optimizer))]
    changed = [what for what, same in checks if not same]
    if changed:
        raise BadArgument(f"{run.config_path}: {' and '.join(changed)} differ from what {run.last_path.name} was trained with. "
                         "Undo the edit to resume, or start a new run with the new settings.")


def checked_source(source, config: TrainConfig):
    """Refuse a dataset with problems, or without pairs to train or validate on; the reports."""
    reports = validate_source(source, ["train", "val"])
    counts = source.splits
    empty = [split for split in ("train", "val") if not counts.get(split)]
    if empty:
        found = ", ".join(f"{n} {k}" for k, n in counts.items()) or "none"
        hint = (f" The validation split is a seeded {config.data.val_fraction:.0%} of the pairs by name: add images, or "
                "raise --val-fraction." if "val" in empty and source.format in ("folder", "synthetic", "coco", "oxford-pets")
                else " Add the missing split's pairs.")
        raise BadArgument(f"{source.root}: training needs pairs in both train and val; found {found} pair(s).{hint}")
    return reports


def _band_adaptation(config: TrainConfig, bands) -> str | None:
    """What config.yaml records of the pretrained kernels' adaptation (models.backbones.adapt_to_bands)."""
    weights = config.recipe.weights
    pretrained = model_spec(config.recipe.model).pretrained and weights is not None and str(weights).lower() != "none"
    return "cyclic" if pretrained and bands.channels != 3 else None


def _class_weights(config: TrainConfig, source, reports):
    stats = CheckReport(source, [r for r in reports if r.pair.split == "train"]).stats
    weights = resolve_class_weights(config.recipe.class_weights, source.classes.num_classes, stats)
    return tuple(weights) if weights else None


def _steps(source, config: TrainConfig) -> int:
    return math.ceil(len(source.split("train")) / config.recipe.batch_size)


def _fit(run: Run, config: TrainConfig, source, model, initial_epoch: int, cluster: Cluster,
         verbose: int | None = None, deadline: float | None = None, extra: Sequence = ()) -> Run:
    """Train from `initial_epoch` to `config.recipe.epochs`, writing each epoch into the run folder (the
    chief of a multi-worker job; the other workers write nothing). `deadline` (time.monotonic):
    stop after the last epoch that ends before it (a planned run's budget)."""
    steps = _steps(source, config)
    history = run.history()[:initial_epoch]
    if initial_epoch >= config.recipe.epochs:
        _set_status(run, cluster, "complete")
        return run
    train_ds, val_ds = fit_datasets(source, config, model, cluster, initial_epoch)
    build_for_fit(model, cluster, config.recipe.batch_size, config.recipe.size)
    config = _with_xla(run, config, model, cluster, train_ds, val_ds, len(source.split("val")))
    if cluster.distributed:
        print(f"Training data-parallel, {cluster.describe()}: global batch {config.recipe.batch_size} = {cluster.replicas} x "
              f"{config.setup.replica_batch}.", file=sys.stderr)
    if cluster.chief:
        samples = Samples.draw(source, config.setup.previews, config.recipe.size, config.setup.seed,
                               crop=config.recipe.crop, scale=config.recipe.scale,
                               display_bands=config.setup.display_bands)
        checkpoint = RunCheckpoint(run, source.classes, samples, history, make_trackers(config, run, source.classes))
    else:
        checkpoint = StopWhereTheChiefStops()
    callbacks = [checkpoint]
    budget_stop = BudgetStop(deadline, config.plan.estimate.get("finish", 0.0)) if deadline is not None else None
    if budget_stop is not None:
        callbacks.append(budget_stop)
    bar = None
    if verbose == "bar":
        bar, verbose = EpochBar(config.recipe.epochs, initial_epoch), 0
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: bar.advance(logs or {})))
    if config.recipe.schedule == "plateau":  # on every worker: the rate is the same everywhere
        callbacks.append(ResumablePlateau(history, monitor="val_miou", factor=0.5, patience=3))
    callbacks += extra
    try:
        with _collector_skips_what_exists(), _sigterm_interrupts():
            model.fit(train_ds, epochs=config.recipe.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                      validation_data=val_ds, callbacks=callbacks, shuffle=False,
                      verbose=(1 if sys.stderr.isatty() else 2) if verbose is None else verbose)
    except KeyboardInterrupt:
        checkpoint.close()  # the epoch being written is finished, not lost
        _set_status(run, cluster, "interrupted")
        raise
    except TrainingFailed as e:  # an epoch's files could not be written (a full disk): the run says so
        with contextlib.suppress(Exception):
            checkpoint.close()
        try:
            _set_status(run, cluster, "failed", error=str(e))
        except OSError as again:
            raise TrainingFailed(f"{e} state.json could not say so either ({again.strerror or again}).") from e
        raise
    except Exception as e:
        if not lost_peer(e, cluster):
            raise
        checkpoint.close()
        lost = WorkerLost(f"worker {cluster.worker} of {cluster.workers} lost contact with the others ({lost_peer(e, cluster)}): "
                          f"a worker stopped or the network failed. {run.path} keeps the last finished epoch; restart "
                          f"every worker with `seglab train --resume {run.path}`.")
        _set_status(run, cluster, "interrupted", error=str(lost))
        raise lost from None
    finally:
        if bar is not None:
            bar.close()
    checkpoint.close()
    if checkpoint.failure:
        _set_status(run, cluster, "failed", error=checkpoint.failure)
        raise TrainingFailed(checkpoint.failure)
    stopped = {}
    if budget_stop is not None and budget_stop.stopped:
        if verbose != 0:
            print(f"Stopped at the budget: {budget_stop.stopped}", file=sys.stderr)
        stopped["budget_stop"] = budget_stop.stopped
    early = [c.stopped for c in extra if getattr(c, "stopped", None)]
    if early:
        stopped["stopped"] = early[0]
    _set_status(run, cluster, "complete", **stopped)
    return run


def fit_datasets(source, config: TrainConfig, model, cluster: Cluster, initial_epoch: int = 0):
    """(the training stream, the validation set) that `model` fits on: the training stream one
    seeded, repeating, augmented dataset that starts at `initial_epoch`'s first batch (so a resumed
    run sees the batches the uninterrupted one would); validation centre crops where training crops
    (see README, "Large images")."""
    recipe = config.recipe
    crops = {"crop": recipe.crop, "scale": recipe.scale}
    span = ImageInput.of_model(model).span
    train_ds = distributed_dataset(cluster, lambda shard: make_dataset(
        source, "train", size=recipe.size, batch_size=recipe.batch_size, augment=recipe.augment, cache=config.setup.cache,
        repeat=True, seed=config.setup.seed, validate_first=False, start_batch=initial_epoch * _steps(source, config),
        shard=shard, span=span, **crops), recipe.batch_size)
    val_ds = distributed_dataset(cluster, lambda shard: make_dataset(
        source, "val", size=recipe.size, batch_size=recipe.batch_size, cache=config.setup.cache, validate_first=False,
        shard=shard, **crops), recipe.batch_size)
    return train_ds, val_ds


def _with_xla(run: Run, config: TrainConfig, model, cluster: Cluster, train_ds, val_ds,
              val_samples: int) -> TrainConfig:
    """Compile the steps with XLA where config.yaml asks for it (`seglab.engines.jit`); where XLA
    refuses the model, train without it, say why in one line and record jit: false."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's own warning for a layer without XLA; said below in seglab's words
        model.jit_compile = config.setup.jit  # a loaded model (resume) comes back with its own setting
    if not config.setup.jit:
        return config
    refused = (compile_steps(model, train_ds, val_ds, config.recipe.batch_size, val_samples) if model.jit_compile
               else "a layer of the model declares that XLA cannot compile it")
    if refused is None:
        return config
    print(f"Training without XLA, which refused {config.recipe.model} under {config.setup.precision}: {refused}",
          file=sys.stderr)
    config = config.replace(jit=False)
    if cluster.chief:
        config.save(run.config_path)
    return config


def _set_status(run: Run, cluster: Cluster, status: str, **extra) -> None:
    """Record the run's status in state.json: the chief's job, the other workers write nothing."""
    if cluster.chief:
        run.write_state(**{**run.state, "status": status, **extra})


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM during `fit` raises `Terminated`, a KeyboardInterrupt, so the run stops as Ctrl-C
    stops it: the epoch being written is finished and state.json says `interrupted`. Signal
    handlers belong to the main thread; elsewhere (a caller's worker thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated("stopped by SIGTERM.")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
