"""The `seglab` command line: one Typer app; each verb is a thin call into a module."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

from seglab.core.errors import OutputError, SeglabError
from seglab.core.files import disk_full
from seglab.core.quiet import load_tensorflow
from seglab.data.bands import band_list
from seglab.engines.distribute import is_chief
from seglab.inference.tiling import TTA_HELP

# TensorFlow's C++ info and warning lines are noise for seglab's users (errors still show); the
# commands that run a model load it through `load_tensorflow`, which drops its absl start-up lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Names and paths are printed as they are: no markup, no emoji codes (`:x:` in a file name is not ❌).
console = Console(soft_wrap=True, emoji=False)  # lines are never broken inside a path or a number; the terminal wraps them
err = Console(stderr=True, soft_wrap=True, emoji=False)

# Exit codes: 1 bad data or a failed run, 2 bad arguments or an unusable path (each SeglabError
# says which), 70 an internal error (a bug: BSD's EX_SOFTWARE), 130 Ctrl-C, 143 SIGTERM during training.
INTERNAL_ERROR = 70


class _Commands(typer.core.TyperGroup):
    """seglab's one error handler: its own errors become one-line messages and exit codes; anything
    else is a bug, reported as an internal error with its traceback kept."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SeglabError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM during training (core.errors.Terminated: 143)
            _fail(f"interrupted. {e}".strip(), getattr(e, "exit_code", 130))
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except OSError as e:
            if not disk_full(e):
                _internal_error(e)
            # Every file seglab writes goes under a temporary name first: what exists is whole.
            _fail(f"{f'{e.filename}: ' if e.filename else ''}cannot be written: {e.strerror or e} (the disk or quota is "
                  "full). Files written before it are complete and kept. Free space, or write elsewhere (--out), and run "
                  "again.", OutputError.exit_code)
        except Exception as e:  # noqa: BLE001  (the one place every other exception is caught: a bug)
            _internal_error(e)


def _internal_error(error: Exception):
    """A bug in seglab or a library, not the user's input: the traceback goes to a file (and to
    stderr with --debug or SEGLAB_DEBUG=1), and the message says where, so nothing is hidden."""
    trace = "".join(traceback.format_exception(error))
    where = None
    try:
        folder = Path(os.environ.get("SEGLAB_ERROR_DIR") or Path(tempfile.gettempdir()) / "seglab-errors")
        folder.mkdir(parents=True, exist_ok=True)
        where = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        where.write_text(f"seglab {' '.join(sys.argv[1:])}\n\n{trace}")
    except OSError:
        pass  # the traceback is printed below instead
    if _debug() or where is None:
        err.print(trace, markup=False, highlight=False, soft_wrap=True)
    summary = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}"
    kept = (f"The traceback is in {where}; please attach it to a bug report." if where is not None
            else "The traceback is above; please attach it to a bug report.")
    _fail(f"internal error (a bug in seglab or a library it uses, not a problem with your input): {summary}. {kept}"
          + ("" if _debug() else " Run with --debug (or SEGLAB_DEBUG=1) to print it here."), INTERNAL_ERROR)


def _debug() -> bool:
    return os.environ.get("SEGLAB_DEBUG", "").strip() not in ("", "0")


class _DefaultRun(_Commands):
    """`seglab instances IMAGES...` runs the `run` sub-command; `seglab instances eval` its own."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_Commands,
    help="Train, evaluate and run image-segmentation models.\n\nStart with `seglab demo`, or `seglab check PATH` on your data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal brackets: pip install 'seglab[wandb]'
)

RUNTIME_HELP = ("keras (default for a run), onnx, litert or saved_model: other than keras, the run's export folder "
                "(RUN/export/FORMAT/) is used, exported first if needed. An export folder runs on its own.")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Print the traceback of an internal error (also SEGLAB_DEBUG=1).")):
    """Train, evaluate and run image-segmentation models."""
    if debug:
        os.environ["SEGLAB_DEBUG"] = "1"


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # no breaks inside paths
    raise typer.Exit(code)


def _help(name: str) -> str:
    """The help text configuration field `name` is declared with."""
    from seglab.core.schema import options_of
    from seglab.runs.config import SECTIONS, section_of

    return options_of(SECTIONS[section_of(name)])[name].help


def _field(name: str, *aliases: str, default=...):
    """The `seglab train` option of configuration field `name`: its flag, default and help text as
    `seglab.runs.config` declares them (`default` overrides where the command line parses text)."""
    from seglab.core.schema import options_of
    from seglab.data.augment import Augment
    from seglab.runs.config import SECTIONS, cli_flag, section_of

    kind = Augment if name.startswith("augment_") else SECTIONS[section_of(name)]
    key = name.removeprefix("augment_")
    opt = options_of(kind)[key]
    field = next(f for f in dataclasses.fields(kind) if f.name == key)
    help = opt.help
    if opt.choices and not all(str(choice) in help for choice in opt.choices):
        help += f" One of: {', '.join(map(str, opt.choices))}."
    if default is ...:
        default = None if kind is Augment else field.default
    if kind is Augment:  # None on the command line: the recipe's value
        value = field.default
        help += f" Default: {','.join(map(str, value)) if isinstance(value, tuple) else value}."
    return typer.Option(default, cli_flag(key, opt, augment=kind is Augment), *aliases, help=help)


@app.command()
def check(
    path: str = typer.Argument("synthetic", help="Dataset folder, or 'synthetic' for the built-in dataset."),
    format: Optional[str] = _field("format", "-f"),
    view: Optional[str] = _field("view"),
    classes: Optional[str] = _field("classes"),
    val_fraction: float = _field("val_fraction"),
    seed: int = typer.Option(0, help="Seed of that split."),
    bands: Optional[str] = typer.Option(None, help="Bands to select, in order, by name (B03,B04,B08: band files' "
                                        "names or a TIFF's band descriptions) or number (1,2,3): an image lacking one "
                                        "is a problem. Default: every band, alike in every image."),
    write_classes: bool = typer.Option(False, "--write-classes", help="Write a classes.json of the classes found "
                                       "(colour masks: their colours, most common first) for you to name; beside "
                                       "an existing classes.json it is written as classes.suggested.json."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
):
    """Check a dataset before training: pairs per split, every problem with its file, class balance,
    and each band's value range. Colour masks without a colour table: the colours they hold.

    Exits 0 when the dataset is clean, 1 when any file has a problem.

    Example: seglab check ../shared/data/oxford-pets
    """
    from seglab.data import check as run_check
    from seglab.data import open_source
    from seglab.data.classes import suggest_classes
    from seglab.data.formats.folder import ColorTableMissing
    from seglab.report.check_tables import print_check, print_colors

    def opened():
        return open_source(path, format, view=view, val_fraction=val_fraction, seed=seed, classes=_class_names(classes))

    try:
        source = opened()
    except ColorTableMissing as e:
        from seglab.data.masks import mask_colors

        colors = mask_colors(e.masks)
        if not write_classes:
            print_colors(colors, console, str(e))
            raise typer.Exit(1)
        written = suggest_classes(Path(path), [c for c, _ in colors])
        console.print(f"Wrote {written} with the {len(colors)} colours of the masks; rename the classes there.", markup=False)
        source = opened()
    else:
        if write_classes:
            written = suggest_classes(source.root, list(source.classes.colors), list(source.classes.names))
            console.print(f"Wrote {written} with the {source.classes.num_classes} classes found; rename them there.",
                          markup=False)
    report = run_check(source, bands=band_list(bands))
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_check(report, console)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def plan(
    path: str = typer.Argument("synthetic", help="Dataset folder, or 'synthetic' for the built-in dataset."),
    budget: str = typer.Option("15m", help="Time the training may take, start to end: 15m, 2h, 900s."),
    format: Optional[str] = _field("format", "-f"),
    view: Optional[str] = _field("view"),
    classes: Optional[str] = _field("classes"),
    bands: Optional[str] = _field("bands"),
    val_fraction: float = _field("val_fraction"),
    weights: Optional[str] = typer.Option(None, help="MobileNetV2 encoder weights to plan with: a .weights.h5 file, "
                                          "imagenet or none. Default: found (see docs/planning.md)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as one JSON object."),
):
    """Plan a recipe for a dataset on this machine within a time budget, with the reason for each
    value: from the dataset's fingerprint (sizes, bands, class shares, object sizes, thin strokes)
    and a measured step time. `seglab train DATA --budget B` runs it.

    Example: seglab plan ../shared/data/camvid --budget 20m
    """
    started = time.monotonic()  # the budget is the command's: TensorFlow's import is part of it
    load_tensorflow()
    from seglab.commands.planning import Planner, parse_budget
    from seglab.commands.training import checked_source
    from seglab.report.plan_tables import print_plan
    from seglab.runs.config import TrainConfig

    seconds = parse_budget(budget)
    names = _class_names(classes)
    config = TrainConfig.of(path=path, format=format, view=view, val_fraction=val_fraction,
                            classes=names.names if names else None, bands=band_list(bands))
    source = config.open_source()
    reports = checked_source(source, config)
    given = {"weights": weights} if weights else {}
    result = Planner(source, reports, seconds, given, base=config, started=started).plan()
    if as_json:
        print(json.dumps(result.to_json()), flush=True)
        return
    print_plan(result, path, console)


@app.command()
def synthetic(
    out: Path = typer.Argument(..., help="Folder to write (images/, masks/, classes.json)."),
    count: int = typer.Option(200, help="Number of image/mask pairs."),
    size: int = typer.Option(128, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same pixels."),
):
    """Write the built-in shapes dataset to a folder, in the `folder` layout.

    Example: seglab synthetic data/shapes --count 500 --size 256
    """
    from seglab.data import synthetic as synth

    if count < 1 or size < 16:
        _fail(f"--count must be at least 1 and --size at least 16; got {count} and {size}.")
    path = synth.write(out, seed=seed, count=count, size=size)
    console.print(f"Wrote {count} pairs of {size}x{size} to {path}", markup=False)


def _parse_options(pairs: list[str]) -> dict:
    """`--option filters=16,32,64` -> {"filters": (16, 32, 64)}: YAML scalars, commas make tuples."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--option takes KEY=VALUE; got {pair!r}.")
        try:
            parsed = [yaml.safe_load(v) for v in value.split(",")]
        except yaml.YAMLError:
            _fail(f"--option {pair}: the value is not a number, word or comma-separated list of them.")
        options[key.strip()] = tuple(parsed) if len(parsed) > 1 else parsed[0]
    return options


def _check_takes_encoder(model: str) -> None:
    from seglab.models import SPECS, model_options

    if model in SPECS and "encoder" not in model_options(model):
        takes = ", ".join(name for name in SPECS if "encoder" in model_options(name))
        _fail(f"--encoder is for the models built over any encoder ({takes}); {model}'s encoder is fixed.")


def _class_names(classes: str | None):
    """`--classes a,b,c` -> a ClassSpec (None when not given): the one type from here on."""
    from seglab.data.classes import ClassSpec

    return ClassSpec(tuple(c.strip() for c in classes.split(","))) if classes else None


def _class_weights(value: str):
    """`--class-weights auto|none|1,2,1` -> 'auto', None or a tuple of floats."""
    if value.strip().lower() in ("auto", "none"):
        return None if value.strip().lower() == "none" else "auto"
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        _fail(f"--class-weights takes auto, none or one number per class (1,2.5,1); got {value!r}.")


@app.command()
def train(
    context: typer.Context,
    data: str = typer.Argument("synthetic", help="Dataset folder (any format `seglab check` reads), or 'synthetic'."),
    model: str = _field("model", "-m"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder to write. Default: runs/MODEL."),
    resume: Optional[Path] = typer.Option(None, help="Continue the interrupted run in this folder (other options are read from it)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Start from this configuration file: a run's "
                                          "config.yaml, or the best.yaml `seglab tune` writes; the options typed here "
                                          "change it, the data argument included."),
    format: Optional[str] = _field("format", "-f"),
    view: Optional[str] = _field("view"),
    classes: Optional[str] = _field("classes"),
    bands: Optional[str] = _field("bands"),
    val_fraction: float = _field("val_fraction"),
    size: Optional[int] = _field("size"),
    crop: Optional[int] = _field("crop"),
    scale: float = _field("scale"),
    batch_size: Optional[int] = _field("batch_size", "-b"),
    epochs: Optional[int] = _field("epochs", "-e"),
    optimizer: str = _field("optimizer"),
    learning_rate: Optional[float] = _field("learning_rate", "--lr"),
    schedule: str = _field("schedule"),
    loss: Optional[str] = _field("loss"),
    class_weights: Optional[str] = _field("class_weights"),
    augment: bool = typer.Option(True, help="Paired augmentation of training batches; the --augment-* options set each "
                                 "operation's strength (0 turns one off)."),
    augment_flip: Optional[float] = _field("augment_flip"),
    augment_vflip: Optional[float] = _field("augment_vflip"),
    augment_zoom: Optional[str] = _field("augment_zoom"),
    augment_brightness: Optional[float] = _field("augment_brightness"),
    augment_contrast: Optional[float] = _field("augment_contrast"),
    weights: Optional[str] = _field("weights"),
    fine_tune: Optional[str] = _field("fine_tune"),
    encoder: Optional[str] = typer.Option(None, help="Encoder of unet, fpn or deeplabv3plus: a keras.applications network (`seglab models --encoders` lists them) or unet's own 'scratch'. Default: the model's."),
    option: list[str] = typer.Option([], "--option", help="Model option KEY=VALUE, repeatable: --option filters=16,32,64,128."),
    precision: str = _field("precision"),
    distribute: str = _field("distribute"),
    worker_timeout: int = _field("worker_timeout"),
    jit: Optional[bool] = _field("jit"),
    previews: int = _field("previews"),
    display_bands: Optional[str] = _field("display_bands"),
    wandb: bool = _field("wandb"),
    wandb_project: Optional[str] = _field("wandb_project"),
    tensorboard: bool = _field("tensorboard"),
    seed: int = _field("seed"),
    split_seed: Optional[int] = _field("split_seed"),
    budget: Optional[str] = typer.Option(None, help="Plan the recipe for this dataset and machine so the whole command "
                                         "ends within this time (15m, 2h, 900s; `seglab plan` shows the plan and "
                                         "why); the recipe options given win over the plan's. Default: no plan, the "
                                         "model's recipe."),
):
    """Train a model and write its run folder (config, best and last model, history, curves, previews).

    Example: seglab train ../shared/data/oxford-pets --model mobilenet_unet --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5

    Planned: seglab train ../shared/data/camvid --budget 15m (runs/planned unless --out)

    Killed or interrupted, `seglab train --resume runs/NAME` continues from the last finished epoch.

    Every option is a field of config.yaml (docs/training.md lists them). On several machines:
    run the same command on every worker, with TF_CONFIG set on each and --out on storage they
    all see (docs/scale.md); the chief writes the run.
    """
    started = time.monotonic()  # a --budget is the command's: TensorFlow's import is part of it
    if resume is not None and budget is not None:
        _fail("--budget plans a new run; --resume continues a run with the epochs it planned. Leave out one of them.")
    if resume is not None and config is not None:
        _fail("--config starts a new run; --resume continues a run with its own config.yaml. Leave out one of them.")
    load_tensorflow()
    from seglab.commands.training import train as run_train

    if resume is not None:
        call = lambda: run_train(resume=resume, distribute=distribute, worker_timeout=worker_timeout)  # noqa: E731  (the rest comes from the run)
    else:
        names = _class_names(classes)
        given = dict(format=format, view=view, size=size, crop=crop, batch_size=batch_size, epochs=epochs,
                     learning_rate=learning_rate, loss=loss, weights=weights, fine_tune=fine_tune,
                     classes=names.names if names else None, split_seed=split_seed, bands=band_list(bands),
                     display_bands=band_list(display_bands, "--display-bands"),
                     class_weights=_class_weights(class_weights) if class_weights is not None else None)
        options = {k: v for k, v in given.items() if v is not None}
        options.update(model=model, optimizer=optimizer, schedule=schedule, seed=seed, precision=precision,
                       previews=previews, wandb=wandb, wandb_project=wandb_project, tensorboard=tensorboard,
                       val_fraction=val_fraction, scale=scale, distribute=distribute, worker_timeout=worker_timeout, jit=jit,
                       model_options=_parse_options(option), augment=_augmentation(
                           augment, flip=augment_flip, vflip=augment_vflip, zoom=augment_zoom,
                           brightness=augment_brightness, contrast=augment_contrast))
        if encoder is not None:
            _check_takes_encoder(model)
            options["model_options"]["encoder"] = encoder
        seconds, start = None, None
        if budget is not None:
            from seglab.commands.planning import parse_budget

            seconds = parse_budget(budget)
            options = _typed_recipe(context, options)
        if config is not None:
            from seglab.runs.config import TrainConfig

            start = TrainConfig.from_file(config)
            options = _typed(context, options)
            if "model_options" in options:  # --option and --encoder change the file's model options, one by one
                options["model_options"] = {**start.recipe.model_options, **options["model_options"]}
            if _typed_names(context).isdisjoint({"data"}):
                data = start.data.path
        call = lambda: run_train(data, out, config=start, budget=seconds, started=started, **options)  # noqa: E731
    try:
        run = call()
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the same kind, with what to do next
        raise type(e)(f"{e} Continue with: seglab train --resume {resume or out or 'runs/' + model}".strip()) from None
    if distribute != "none" and not is_chief():  # a multi-worker job's other workers write nothing
        console.print(f"Training finished on this worker; the chief writes the run folder {run.path}.", markup=False)
        return
    state = run.state
    console.print(f"Run complete: {run.path}  best val mIoU {state.get('best_val_miou')} at epoch {state.get('best_epoch')}", markup=False)


# `seglab train` parameters that set a recipe field, where the names differ
_RECIPE_PARAMS = {"option": "model_options", "encoder": "model_options", "learning_rate": "learning_rate",
                  "augment": "augment", "augment_flip": "augment", "augment_vflip": "augment", "augment_zoom": "augment",
                  "augment_brightness": "augment", "augment_contrast": "augment"}


def _typed_names(context: typer.Context) -> set[str]:
    """The parameters the user typed (configuration field names), not left at their defaults."""
    # by the source's name: Typer may bring its own copy of click, whose ParameterSource is another enum
    return {_RECIPE_PARAMS.get(name, name) for name in context.params
            if getattr(context.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}


def _typed(context: typer.Context, options: dict) -> dict:
    """With --config: only the options typed, which change the file's values."""
    typed = _typed_names(context)
    kept = {k: v for k, v in options.items() if k in typed}
    if kept.get("augment") == {}:
        kept.pop("augment")
    return kept


def _typed_recipe(context: typer.Context, options: dict) -> dict:
    """With --budget: the options without the recipe values the user did not type, which the plan
    chooses instead of the command line's defaults."""
    from seglab.runs.config import section_of

    typed = _typed_names(context)
    kept = {}
    for key, value in options.items():
        if section_of(key) != "recipe" or key in typed:
            kept[key] = value
    if "augment" in kept and kept["augment"] == {}:
        kept.pop("augment")
    if not kept.get("model_options"):
        kept.pop("model_options", None)
    return kept


def _augmentation(on: bool, **strengths):
    """--no-augment: none; else the --augment-* strengths given (the rest keep their defaults)."""
    if not on:
        given = [f"--augment-{k}" for k, v in strengths.items() if v is not None]
        if given:
            _fail(f"--no-augment turns augmentation off; leave out {', '.join(given)} or drop --no-augment.")
        return False
    if strengths["zoom"] is not None:
        try:
            strengths["zoom"] = [float(v) for v in strengths["zoom"].split(",")]
        except ValueError:
            _fail(f"--augment-zoom takes two numbers, lo,hi (0.75,1.5); got {strengths['zoom']!r}.")
    return {k: v for k, v in strengths.items() if v is not None}


SPACE_EXAMPLE = """model: [deeplabv3plus/mobilenet_v2, unet/mobilenet_v2]
size: [224, 256, 288]
learning_rate: {low: 0.0002, high: 0.003, log: true}
epochs: auto
augment: {zoom: [[0.85, 1.25], [0.75, 1.5]], brightness: {low: 0, high: 0.3}}"""


@app.command()
def tune(
    data: str = typer.Argument("synthetic", help="Dataset folder (any format `seglab check` reads), or 'synthetic'."),
    budget: Optional[str] = typer.Option(None, help="Wall-clock time this worker searches for: 2h, 90m, 1h30m. A trial "
                                         "is not started when it cannot end within it."),
    trials: Optional[int] = typer.Option(None, min=1, help="Finished trials (complete or pruned) the study stops at, "
                                         "counted over every worker. Default: as many as the budget allows."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Study folder: trials/NNNN run folders, study.db, "
                                       "tune.html, best.yaml. Default: runs/tune-DATASET."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage several workers share: sqlite:///PATH, "
                                          "postgresql://USER:PASSWORD@HOST/DB, mysql+pymysql://..., or journal:PATH "
                                          "(a file on a shared file system). Default: sqlite:///OUT/study.db."),
    study: Optional[str] = typer.Option(None, help="Study name in the storage. Default: seglab-DATASET."),
    space: Optional[Path] = typer.Option(None, help="YAML file narrowing or widening the default search space, key "
                                         "by key (docs/tuning.md). Example:\n\n" + SPACE_EXAMPLE.replace("\n", "\n\n")),
    trial_time: Optional[str] = typer.Option(None, help="Each trial's share of the time with `epochs: auto`. Default: "
                                             "the budget / 6. Set by the study's first worker."),
    sampler: str = typer.Option("tpe", help="tpe (Optuna's TPE, modelling the study from the plan on, without "
                                "random start-up trials) or random."),
    weights: Optional[str] = typer.Option(None, help="MobileNetV2 encoder weights to plan with: a .weights.h5 file, "
                                          "imagenet or none. Default: found (docs/planning.md)."),
    format: Optional[str] = _field("format", "-f"),
    view: Optional[str] = _field("view"),
    classes: Optional[str] = _field("classes"),
    bands: Optional[str] = _field("bands"),
    val_fraction: float = _field("val_fraction"),
    precision: str = _field("precision"),
    seed: int = _field("seed"),
    report_only: Optional[Path] = typer.Option(None, "--report", help="Write tune.html and best.yaml of the study in "
                                               "this folder as it stands (another worker may still run), and exit."),
):
    """Search for the best recipe with Optuna: trial 0 is `seglab plan`'s recipe, the others are
    drawn around it; trials falling behind are pruned on val mIoU. Each trial is a run folder.

    Example: seglab tune ../shared/data/oxford-pets --budget 2h

    Several workers, one study: run the same command with the same --storage on each machine
    (docs/tuning.md). Killed, rerun the command: the study continues.
    """
    if report_only is not None:
        from seglab.commands.tuning import report

        result = report(report_only, storage=storage, study=study)
        _tune_summary(result)
        return
    if budget is None:
        _fail("--budget is needed: the wall-clock time to search for (2h, 90m). With --report DIR, the report of a study.")
    load_tensorflow()
    from seglab.commands.planning import parse_budget
    from seglab.commands.tuning import tune as run_tune

    seconds = parse_budget(budget)
    share = parse_budget(trial_time) if trial_time is not None else None
    names = _class_names(classes)
    result = run_tune(data, seconds, out, trials=trials, storage=storage, study=study, space=space, trial_time=share,
                      sampler=sampler, weights=weights, format=format, view=view,
                      classes=names.names if names else None, bands=band_list(bands), val_fraction=val_fraction,
                      precision=precision, seed=seed)
    _tune_summary(result)


def _tune_summary(result) -> None:
    console.print(f"Study {result.study} ({result.storage}): {result.finished} finished trials; {result.ended}.", markup=False)
    if result.best is None:
        console.print("No trial has finished yet.", markup=False)
    else:
        console.print(f"Best: trial {result.best['number']}, val mIoU {result.best['value']:.4f}, run {result.best['run']}",
                      markup=False)
        console.print(f"Train it again: {result.command}", markup=False)
        console.print(f"            or: seglab train --config {result.config}", markup=False)
    if result.report is not None:
        console.print(f"Report: {result.report}", markup=False)


TILE_NOTE = "a multiple of the model's stride; after the run's --scale"
OVERLAP_HELP = "With --tile: how much neighbouring tiles overlap, as a share of the tile (0 to 0.9); overlaps are blended."


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `seglab train`."),
    data: Optional[str] = typer.Option(None, help="Score on another dataset with the run's classes. Default: the run's."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="With --data: its format. " + _help("format")),
    view: Optional[str] = typer.Option(None, help="With --data: its class view ('binary', 'road')."),
    split: str = typer.Option("val", help="Split to score: train, val or test."),
    full_res: bool = typer.Option(False, "--full-res", help="Resize predictions to each image's original size and score there."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Default: the run's."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the outputs. Default: the run folder "
                                       "(with --data, RUN/eval-DATANAME/)."),
    runtime: Optional[str] = typer.Option(None, help=RUNTIME_HELP),
    tile: Optional[int] = typer.Option(None, help="Score at full resolution, predicting by sliding TILE x TILE windows (" + TILE_NOTE + ")."),
    overlap: float = typer.Option(0.25, help=OVERLAP_HELP),
    tta: Optional[str] = typer.Option(None, help="Test-time augmentation: " + TTA_HELP + "."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object instead of lines."),
):
    """Score a run's best model: metrics.json, confusion_matrix.png, best.png and worst.png in the run folder.

    Examples: seglab evaluate runs/pets --split test --full-res
              seglab evaluate runs/camvid --tile 256 --tta flip
    """
    load_tensorflow()
    from seglab.commands.evaluation import evaluate as run_evaluate

    metrics = run_evaluate(run, data, split, full_res, batch_size, format=format, view=view, out=out, runtime=runtime,
                           tile=tile, overlap=overlap, tta=tta)
    if as_json:
        print(json.dumps(metrics), flush=True)  # machine output: one line, never wrapped by the console
        return
    where = (f"full resolution, {metrics['tile']}px tiles overlapping {metrics['overlap']:g}" if metrics["tile"]
             else "full resolution" if metrics["full_res"]
             else f"{metrics['size']}px {'centre crops' if metrics['crop'] else 'resized'}")
    where += f", TTA {metrics['tta']}" if metrics["tta"] else ""
    console.print(f"{metrics['images']} images, {metrics['pixels']:,} labelled pixels ({split}, {where})", markup=False)
    console.print(f"pixel accuracy {metrics['pixel_accuracy']:.4f}   mIoU {metrics['miou']:.4f} (dataset-level)   "
                  f"per-image mIoU {metrics['image_miou']:.4f}   mean Dice {metrics['mean_dice']:.4f}")
    for name, value in metrics["iou"].items():
        console.print(f"  IoU {name:<20} {'-' if value is None else f'{value:.4f}'}", markup=False)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder written by `seglab train`, or a folder written by `seglab export`."),
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for masks/, overlays/ and predictions.json."),
    threshold: float = typer.Option(0.5, help="Binary models: foreground where its probability is above this."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Images (or tiles, with --tile) per model call."),
    tile: Optional[int] = typer.Option(None, help="Predict by sliding TILE x TILE windows over each image at its own resolution (" + TILE_NOTE + "). Default: the run's --crop for a run trained on crops; 0 resizes whole images to the model's size."),
    overlap: float = typer.Option(0.25, help=OVERLAP_HELP),
    tta: Optional[str] = typer.Option(None, help="Test-time augmentation: " + TTA_HELP + "."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any file failed (default: 0 when at least one image was predicted)."),
    runtime: Optional[str] = typer.Option(None, help=RUNTIME_HELP),
    engine: str = typer.Option("local", help="local (this process) or ray: a pool of Ray Data actors, on this machine or, with --address, a Ray cluster (pip install 'seglab[ray]'). The outputs are the same files."),
    address: Optional[str] = typer.Option(None, help="With --engine ray: the cluster to join (ray://HEAD:10001 or HEAD:6379). Default: start Ray on this machine only."),
    actors: int = typer.Option(1, help="With --engine ray: actors in the pool, each loading the model once."),
    cpus_per_actor: Optional[float] = typer.Option(None, help="With --engine ray: CPUs each actor reserves. Default: the cluster's CPUs shared out among the actors."),
    gpus_per_actor: float = typer.Option(0, help="With --engine ray: GPUs each actor reserves (1 for one GPU each)."),
    display_bands: Optional[str] = typer.Option(None, help="A model trained on bands: the bands its overlays show as "
                                                "red, green and blue (or one, grey). Default: the run's --display-bands."),
):
    """Predict masks at each image's original resolution, with overlays and predictions.json.

    A model trained on bands (--bands) reads those bands of each image by name, a folder holding a
    file per band being one image; a GeoTIFF's mask is also written as masks/NAME.tif, georeferenced.

    A file that cannot be read or written is named on stderr, skipped and counted; the others are
    all predicted. Exit code 0 when any image was predicted (1 with --strict when any failed).

    Examples: seglab predict runs/pets photos/ --out predictions/
              seglab predict runs/pets/export/onnx photos/ --out predictions/
              seglab predict runs/camvid street.jpg --out predictions/ --tile 256 --tta flip
              seglab predict runs/pets archive/ --out predictions/ --engine ray --address ray://head:10001 --actors 8
    """
    load_tensorflow()
    from seglab.commands.prediction import predict as run_predict
    from seglab.engines.ray_engine import RayOptions

    if engine != "ray" and (address or actors != 1 or cpus_per_actor or gpus_per_actor):
        _fail("--address, --actors, --cpus-per-actor and --gpus-per-actor are for --engine ray.")
    summary = run_predict(run, inputs, out, threshold, batch_size, runtime=runtime, tile=tile, overlap=overlap, tta=tta,
                          engine=engine, ray=RayOptions(address, actors, cpus_per_actor, gpus_per_actor),
                          display_bands=band_list(display_bands, "--display-bands"))
    for failure in summary["failed"]:
        err.print(f"[yellow]skipped[/] {escape(failure['file'])}: {escape(failure['message'])}", highlight=False, soft_wrap=True)
    skipped, failed = len(summary["skipped_non_images"]), len(summary["failed"])
    seconds = summary["seconds"]
    console.print(f"Predicted {summary['predicted']} image(s) into {out}; {failed} failed and skipped"
                  + (f"; {skipped} non-image file(s) ignored" if skipped else "")
                  + f". {seconds['total']:.1f} s on {summary['runtime']}{' with Ray' if engine == 'ray' else ''} "
                  f"(model {seconds.get('model', seconds.get('actors: model', 0)):.1f} s; "
                  "predictions.json has the rest).", soft_wrap=True, markup=False)
    if failed:
        err.print(f"{failed} file(s) failed; see predictions.json for each one's reason.", highlight=False, markup=False)
    raise typer.Exit(1 if not summary["predicted"] or (strict and failed) else 0)


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run folder written by `seglab train`."),
    format: str = typer.Option(..., "--format", "-f", help="onnx, saved_model or litert."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder to write. Default: RUN/export/FORMAT/."),
    output: str = typer.Option("logits", help="What the exported graph returns: logits, probabilities or labels "
                               "(argmax, or probability > 0.5 for a binary model)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Run the parity check against Keras (default)."),
    min_agreement: Optional[float] = typer.Option(None, help="Parity check: least share of validation pixels whose "
                                                  "label must agree. Default 0.999, 0.99 with --quantize int8."),
    quantize: Optional[str] = typer.Option(None, help="int8: ONNX Runtime static quantization, calibrated on the run's "
                                           "training images (--format onnx; written to RUN/export/onnx-int8/)."),
    as_json: bool = typer.Option(False, "--json", help="Print export.json's content as one JSON object instead of lines."),
):
    """Export the run's best model to ONNX, a TensorFlow SavedModel or LiteRT, and check it gives Keras's labels.

    Writes the model file, classes.json and export.json (input and output specification, source
    checkpoint, versions, parity result). The parity check runs the file in its own runtime on
    the run's validation images; under --min-agreement the export fails and nothing is kept.

    Example: seglab export runs/pets --format onnx
    """
    load_tensorflow()
    from seglab.commands.exporting import export as run_export

    meta = run_export(run, format, out, output=output, verify=verify, min_agreement=min_agreement, quantize=quantize)
    if as_json:
        print(json.dumps(meta), flush=True)
        return
    where = Path(out) if out is not None else Path(run) / "export" / (f"{format}-{quantize}" if quantize else format)
    size = (f"any height and width that are multiples of {meta['input']['multiple_of']}" if meta["input"]["height"] is None
            else f"fixed {meta['input']['height']}x{meta['input']['width']}")
    console.print(f"Exported {where / meta['file']} ({meta['output']['kind']}; input {size}).", soft_wrap=True, markup=False)
    check = meta["parity"]
    if check["verified"]:
        diff = f"largest difference {check['max_abs_diff']:.2e}, " if "max_abs_diff" in check else ""
        console.print(f"Parity with Keras on {check['images']} validation images: {diff}labels agree on "
                      f"{check['label_agreement']:.4%} of pixels.", markup=False, soft_wrap=True)
        if "val_miou" in check:
            console.print(f"Validation mIoU: Keras float32 {check['val_miou']['keras_fp32']:.4f}, "
                          f"exported {check['val_miou']['exported']:.4f}.", markup=False)
    else:
        console.print("Parity check skipped (--no-verify).", markup=False)


@app.command()
def report(run: Path = typer.Argument(..., help="Run folder written by `seglab train`.")):
    """Write RUN/report.html: configuration, curves, metrics, confusion matrix and previews, in one offline file.

    Example: seglab report runs/pets
    """
    from seglab.report.html import write_report

    path = write_report(run)
    console.print(f"Report: {path} ({path.stat().st_size / 1024:.0f} KB)", markup=False)


instances_app = typer.Typer(
    cls=_DefaultRun, no_args_is_help=True, rich_markup_mode=None,
    help="""Instance segmentation with a pretrained Mask R-CNN: each object's box, label, score and mask.

    seglab instances photos/ --out instances/    overlays, results.json (COCO results), instances.json

    seglab instances eval --annotations A.json --images DIR    COCO box and mask AP (AP, AP50, AP75)

    The default model downloads from TF Hub on first use (pip install 'seglab[instances]').""")
app.add_typer(instances_app, name="instances")

MODEL_HELP = ("SavedModel folder or .tar.gz, or a TF Hub handle. Default: the cookbook's Mask R-CNN "
              "(Inception-ResNet-v2, COCO), downloaded on first use.")


def _segment_instances(*args, **kwargs):
    load_tensorflow()
    from seglab.instances.segment import (
        segment_instances,  # imports TensorFlow: only when a model runs
    )

    return segment_instances(*args, **kwargs)


@instances_app.command("run")
def instances_run(
    inputs: list[str] = typer.Argument(..., help="Images or folders of images."),
    out: Path = typer.Option(Path("instances"), "--out", "-o", help="Output folder (overlays/, masks/, results.json)."),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    min_score: float = typer.Option(0.3, help="Keep detections scoring at least this."),
    max_detections: int = typer.Option(100, help="Keep at most this many detections per image."),
    masks: bool = typer.Option(False, "--masks", help="Also write one mask PNG per instance."),
    annotations: Optional[Path] = typer.Option(None, help="COCO instances JSON: take the image ids for results.json from it."),
):
    """Detect and segment every object of each image (also `seglab instances IMAGES...`).

    Example: seglab instances photos/ --out instances/
    """
    summary = _segment_instances(inputs, out, model, min_score=min_score, max_detections=max_detections,
                                 save_masks=masks, annotations=annotations)
    for failure in summary["failed"]:
        err.print(f"[yellow]skipped[/] {escape(failure['file'])}: {escape(failure['message'])}", highlight=False, soft_wrap=True)
    console.print(f"{summary['detections']} instance(s) in {len(summary['images'])} image(s) into {out} "
                  f"(results.json, overlays/); {len(summary['failed'])} failed and skipped.", soft_wrap=True, markup=False)
    raise typer.Exit(0 if summary["images"] else 1)


@instances_app.command("eval")
def instances_eval(
    annotations: Path = typer.Option(..., help="COCO instances JSON: the ground truth."),
    images: Optional[Path] = typer.Option(None, help="The folder of the annotated images: run the model on them."),
    results: Optional[Path] = typer.Option(None, help="Score this COCO results JSON instead of running a model."),
    out: Path = typer.Option(Path("instances"), "--out", "-o", help="With --images: the model's output folder."),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    min_score: float = typer.Option(0.3, help="With --images: keep detections scoring at least this."),
    max_detections: int = typer.Option(100, help="With --images: keep at most this many detections per image."),
    ground_truth_as_results: bool = typer.Option(False, "--ground-truth-as-results",
                                                 help="Score the annotations against themselves (checks the evaluation: every AP 1.0)."),
):
    """COCO box and mask AP (AP, AP50, AP75, by object size) of a model or of existing results, as one JSON line.

    Example: seglab instances eval --annotations ann.json --results results.json
    """
    from seglab.instances.coco_eval import evaluate_results, ground_truth_results

    if ground_truth_as_results:
        scored = ground_truth_results(annotations)
    elif results is not None:
        scored = results
    elif images is not None:
        summary = _segment_instances([images], out, model, min_score=min_score, max_detections=max_detections,
                                     annotations=annotations)
        scored = out / "results.json"
        err.print(f"Ran the model on {len(summary['images'])} image(s); results in {scored}", markup=False)
    else:
        _fail("`seglab instances eval` needs --images DIR (to run the model), --results R.json or --ground-truth-as-results.")
    scores = evaluate_results(annotations, scored, warn=lambda text: err.print(f"[yellow]warning:[/] {escape(text)}"))
    print(json.dumps(scores), flush=True)  # machine output: one line, never wrapped by the console


@app.command()
def view(
    run: Path = typer.Argument(..., help="Run folder written by `seglab train`."),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the viewer in the default browser."),
):
    """Write RUN/viewer.html, the interactive mask viewer, and open it: each validation sample with its
    predicted and true masks as layers, every class switchable, epoch by epoch. Works offline, from disk.

    Example: seglab view runs/pets
    """
    import webbrowser

    from seglab.report.viewer import write_viewer

    path = write_viewer(run)
    console.print(f"Viewer: {path} ({path.stat().st_size / 1024:.0f} KB)", soft_wrap=True, markup=False)
    if open_browser and not webbrowser.open(path.resolve().as_uri()):
        console.print("No browser found here: open that file in any browser (it needs no server and no network).")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run folder (replaced if it holds a finished demo)."),
    epochs: int = typer.Option(32, help="Training epochs (fewer for a quick look)."),
):
    """Train a small U-Net on the built-in synthetic dataset and say where the run is and its validation mIoU.

    Example: seglab demo
    """
    import shutil
    import time

    load_tensorflow()
    from seglab.commands.evaluation import evaluate as run_evaluate
    from seglab.commands.training import train as run_train
    from seglab.report.html import write_report
    from seglab.runs import Run

    if Run(out).exists() and Run(out).state.get("status") == "complete":
        shutil.rmtree(out)  # a finished demo is cheap to redo; anything else in the folder is kept
    start = time.perf_counter()
    run = run_train("synthetic", out, epochs=epochs, verbose="bar", **DEMO)  # the history keeps each epoch
    metrics = run_evaluate(run.path)
    page = write_report(run.path)
    console.print(f"Demo run: {run.path}  validation mIoU {metrics['miou']:.3f} (dataset-level; per-image "
                  f"{metrics['image_miou']:.3f}), pixel accuracy {metrics['pixel_accuracy']:.3f}, "
                  f"{time.perf_counter() - start:.0f} s. Open {page}", soft_wrap=True)


# Small enough for 2 CPU cores in about two minutes, enough to segment the shapes well. Without
# augmentation: the 160 training shapes are varied already, and 32 epochs are 640 steps to fit them.
# On 2 AMD EPYC cores (float32), train + evaluate with these filters: 129 s at 0.908 val mIoU for
# 32 epochs (the default), 156 s at 0.918 for 34, 213 s at 0.915 for 40; a step costs ~17 ms per
# image whatever the batch. 16-32-64-128 filters took 459 s for 60 epochs (0.945) and 219 s for 25
# (0.899). XLA for the whole step (`seglab.engines.jit`; off by default on CPUs, where larger
# models lose with it): on 2 AVX-512 bfloat16 cores, 66 s of training at 0.901 against 77 s at
# 0.907 without, epochs of 1.55 s against 2.2 s; on 2 AVX2-only cores (float32), 2.3 s against
# 3.4 s, the whole demo 114 s at 0.907. Shorter recipes (20-22 epochs at 4e-3) take 64-77 s at
# this seed's 0.91 but 0.80-0.87 at seeds 1 and 2, against 0.880-0.884 (docs/benchmarks.md).
DEMO = {"model": "unet", "size": 64, "batch_size": 8, "learning_rate": 3e-3, "augment": False, "jit": True,
        "model_options": {"filters": (8, 16, 32, 64), "batch_norm": True}}


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
           encoders: bool = typer.Option(False, "--encoders", help="List the encoders (--encoder) instead, with their "
                                                                   "parameters and GFLOPs at 128x128.")):
    """List the models `seglab train --model` takes: what each is, its parameters and forward GFLOPs
    per image at its default size (3 classes), the pretrained weights it starts from, and the
    training recipe. With --encoders: the keras.applications encoders unet, fpn and deeplabv3plus take."""
    load_tensorflow()
    from seglab.models.encoders import encoder_catalog
    from seglab.models.registry import catalog
    from seglab.report.tables import print_table

    entries = encoder_catalog() if encoders else catalog()
    if as_json:
        for entry in entries:
            print(json.dumps(entry), flush=True)
        return
    if encoders:
        columns = {"encoder": "encoder", "keras.applications": "application", "parameters": "parameters",
                   "GFLOPs": "gflops", "features": "features", "weights": "pretrained_weights", "trains": "fine_tune"}
    else:
        columns = {"model": "model", "parameters": "parameters", "GFLOPs": "gflops", "starts from": "pretrained_weights",
                   "size": "size", "batch": "batch_size", "epochs": "epochs", "lr": "learning_rate"}
    numeric = {"parameters", "GFLOPs", "size", "batch", "epochs", "lr"}
    shown = {"parameters": "{:,}".format, "gflops": lambda v: "-" if v is None else f"{v:.2f}", "learning_rate": "{:g}".format,
             "features": " ".join, "pretrained_weights": lambda v: v or "random"}
    rows = [[shown.get(key, str)(e[key]) for key in columns.values()] for e in entries]
    print_table(console, list(columns), rows, numeric)
    if not encoders:
        console.print()
        for e in entries:
            console.print(f"{e['model']}: {e['summary']}", highlight=False, markup=False)
        console.print("\nGFLOPs: 2 x the multiply-adds of the conv and dense layers; - where a model holds blocks this "
                      "count does not know (SegFormer's attention).", highlight=False)
        console.print("\nunet, fpn and deeplabv3plus take --encoder (`seglab models --encoders` lists them).",
                      highlight=False, markup=False)


@app.command()
def bench(
    mode: str = typer.Argument("all", help="train, predict, or all (both, in one process)."),
    model: str = typer.Option("unet", "--model", "-m", help="Model name (`seglab models` lists them)."),
    data: str = typer.Option("synthetic", help="Dataset folder the training pipeline reads, or 'synthetic'."),
    size: int = typer.Option(128, help="Square image side in pixels."),
    batch: int = typer.Option(32, help="Batch size."),
    steps: int = typer.Option(10, help="Timed training steps (after 2 warm-up steps)."),
    weights: str = typer.Option("none", help="Encoder weights for a model with a pretrained encoder: imagenet, none or a file."),
    jit: bool = typer.Option(False, help="Compile with XLA."),
    precision: str = _field("precision"),
    runtime: str = typer.Option("keras", help="predict: keras, or onnx, litert or saved_model (the model exported, float32)."),
    quantize: Optional[str] = typer.Option(None, help="With --runtime onnx: int8 (static, calibrated on the dataset's images)."),
):
    """Time training and inference of a model; prints one JSON line (images/s, GFLOP/s, peak memory).

    Timed as ../shared/reference/bench_seed.py times the tutorials' models, so the two can be run
    alternately and compared by ratio; benchmarks/bench_models.py does that.

    Example: seglab bench train --model unet --data ../shared/data/oxford-pets --size 128 --batch 32
    """
    load_tensorflow()
    from seglab.commands.bench import bench as run_bench
    from seglab.models import model_spec

    options = model_spec(model).encoder_options(weights=weights)
    result = run_bench(mode, model, data, size, batch, steps=steps, jit=jit, precision=precision, runtime=runtime,
                       quantize=quantize, **options)
    print(json.dumps(result), flush=True)


def main():
    app()


if __name__ == "__main__":
    main()
