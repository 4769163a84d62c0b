"""The configuration of a training run, declared once (`seglab.core.schema`): three sections, each a
frozen dataclass whose fields carry their type, default, valid values, help text, command-line flag
and the value a config.yaml written before them takes.

- `data`: what to learn from (the dataset, its classes, the validation split);
- `recipe`: how the model learns (model, size or crops, batch, epochs, optimizer, schedule, loss,
  class weights, augmentation, pretrained start): what a planner or a search chooses;
- `setup`: where and how it runs (precision, strategy, cache, trackers, previews, seed), which
  changes no recipe.

`TrainConfig.of(**values)` takes any field by its own name (`model=`, `size=`, `augment=`) and
puts it in its section. A recipe holds None for "the model's default" until `resolve` fills every
value, so config.yaml says exactly what ran. `seglab.cli`'s `train` options and the option table
in docs/training.md are read from these declarations (tests/test_config.py checks both).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from seglab.core.errors import BadArgument, NotFound
from seglab.core.files import write_text
from seglab.core.precision import PRECISIONS
from seglab.core.schema import from_plain, option, options_of, to_plain
from seglab.data.augment import Augment

OPTIMIZERS = ("adam", "rmsprop")
SCHEDULES = ("cosine", "plateau", "constant")
DISTRIBUTES = ("auto", "none", "mirrored", "multi-worker")  # seglab.engines.distribute says what each means
LOSSES = ("ce", "ce+dice", "focal", "dice", "bce", "bce+dice")  # seglab.scoring.losses.make_loss builds them


@dataclass(frozen=True)
class DataConfig:
    """What the model learns from."""

    path: str = option("synthetic", "Dataset folder (any format `seglab check` reads), or 'synthetic'.", "str", flag=None)
    format: str | None = option(None, "Dataset format: oxford-pets, camvid, cityscapes-pairs, coco, folder, synthetic. "
                                "Default: recognised from the folder.", "str", nullable=True)
    view: str | None = option(None, "Class view: 'binary' (oxford-pets), 'road' (camvid, cityscapes-pairs).", "str",
                              nullable=True)
    classes: tuple[str, ...] | None = option(None, "Class names in index order (folder format); on the command line "
                                             "comma-separated.", "names", nullable=True)
    bands: tuple[str, ...] | None = option(
        None, "Bands of multi-band images the model takes, in this order, by name (a band file's stem, a TIFF's band "
        "description) or number (1,2,3); on the command line comma-separated. Default: every band of the images "
        "(R,G,B for photos); config.yaml records the bands trained on, which predict then requires.", "names",
        nullable=True, legacy=None)
    band_adaptation: str | None = option(
        None, "How a pretrained RGB encoder was adapted to the bands (set by training): 'cyclic' is "
        "segmentation_models.pytorch's rule, band i taking RGB channel i mod 3's kernel scaled by 3/C (one band: their "
        "sum); null where none was (8-bit RGB, 3 bands, or no pretrained weights).", "str", nullable=True, flag=None,
        legacy=None)
    val_fraction: float = option(0.2, "Share held out for validation where the dataset has no val split.", "float",
                                 minimum=0.001, maximum=0.999)
    # Its own seed, so a recipe can be rerun with other weights and draws on the same validation images.
    split_seed: int | None = option(None, "Seed of the validation split alone. Default: --seed. Keep it to rerun a recipe "
                                    "with another --seed on the same validation images.", "int", nullable=True,
                                    legacy=None)


@dataclass(frozen=True)
class Recipe:
    """How the model learns: what a planner or a search may choose. None: the model's default."""

    model: str = option("unet", "Model name; `seglab models` lists them with their defaults.", "str")
    model_options: dict = option(dict, "Builder options (--option KEY=VALUE, repeatable; --encoder for the encoder).",
                                 "mapping", flag=None)
    size: int | None = option(None, "Square input size in pixels. Default: the model's (128).", "int", nullable=True,
                              minimum=1)
    crop: int | None = option(None, "Train on random CROP x CROP crops at each image's own resolution instead of resizing "
                              "whole images to --size (large images; validation scores centre crops).", "int",
                              nullable=True, minimum=1, legacy=None)
    scale: float = option(1.0, "With --crop: resize every image by this factor first (0.5 halves 960x720 to 480x360).",
                          "float", minimum=0.01, maximum=4, legacy=1.0)
    batch_size: int | None = option(None, "Batch size (the global batch over every replica). Default: the model's.",
                                    "int", nullable=True, minimum=1)
    epochs: int | None = option(None, "Epochs. Default: the model's.", "int", nullable=True, minimum=1)
    optimizer: str = option("adam", "Optimizer.", "str", choices=OPTIMIZERS)
    learning_rate: float | None = option(None, "Initial learning rate. Default: the model's.", "float", nullable=True)
    schedule: str = option("cosine", "Learning-rate schedule: cosine, plateau (halve when val mIoU stalls) or constant.",
                           "str", choices=SCHEDULES)
    loss: str | None = option(None, "Loss. Default: ce+dice (bce+dice for 2 classes).", "str", nullable=True,
                              choices=LOSSES)
    class_weights: str | tuple[float, ...] | None = option(
        None, "Per-class loss weights: auto (median frequency), none, or one value per class (1,2.5,1).", "weights",
        nullable=True)
    weights: str | None = option(None, "Encoder weights (models with a pretrained encoder): imagenet, none, or a "
                                 ".weights.h5 file.", "str", nullable=True)
    fine_tune: str | None = option(None, "Encoder layers to train: none, all, or from a block (block_13, block4).", "str",
                                   nullable=True)
    augment: Augment = option(Augment, "Paired augmentation of training batches (--no-augment: none).", "section",
                              flag=None, legacy=Augment)


@dataclass(frozen=True)
class Setup:
    """Where and how the run executes; none of it changes what the recipe is."""

    precision: str = option("auto", "auto (mixed_float16 on a GPU, mixed_bfloat16 on CPUs with native bfloat16, else "
                            "float32), float32, mixed_bfloat16 or mixed_float16.", "str", choices=PRECISIONS)
    distribute: str = option("auto", "tf.distribute strategy, also with --resume: auto (multi-worker when TF_CONFIG names "
                             "several workers, mirrored over several GPUs, else none), none, mirrored (this machine's "
                             "GPUs) or multi-worker (the workers TF_CONFIG names).", "str", choices=DISTRIBUTES,
                             legacy="auto")
    worker_timeout: int = option(300, "Seconds a multi-worker job's worker waits for the others TF_CONFIG names to start "
                                 "before it gives up with one line naming them (also with --resume).", "int", minimum=1,
                                 legacy=300)
    jit: bool | None = option(None, "Compile the whole training and validation step with XLA. Default: on with a GPU, off "
                              "on CPUs (slower there with seglab's models; docs/benchmarks.md); config.yaml records "
                              "what ran, off where XLA refused the model.", "bool", nullable=True,
                              flag="--jit/--no-jit", legacy=False)
    replicas: int | None = option(None, "Replicas in sync (set by training).", "int", nullable=True, flag=None, legacy=None)
    replica_batch: int | None = option(None, "batch_size / replicas (set by training).", "int", nullable=True, flag=None,
                                       legacy=None)
    cache: bool = option(True, "Keep decoded samples in memory after the first epoch.", "bool", flag=None)
    previews: int = option(8, "Validation samples predicted after every epoch, for the previews and `seglab view`.",
                           "int", minimum=1)
    wandb: bool = option(False, "Also log to Weights & Biases (pip install 'seglab[wandb]'; WANDB_MODE=offline works).",
                         "bool")
    wandb_project: str | None = option(None, "W&B project (implies --wandb). Default: seglab.", "str", nullable=True)
    tensorboard: bool = option(False, "Also write TensorBoard scalars and overlay images to RUN/tensorboard.", "bool")
    display_bands: tuple[str, ...] | None = option(
        None, "Bands shown as red, green and blue (or one, grey) in previews, the viewer and the report, each "
        "stretched between its 2nd and 98th percentiles. Default: R,G,B or B04,B03,B02 where the bands have them, "
        "else the first three.", "names", nullable=True, legacy=None)
    seed: int = option(0, "Seed of the split, the initial weights, shuffling and augmentation.", "int")


@dataclass(frozen=True)
class PlanRecord:
    """What `seglab train --budget` planned (seglab.commands.planning): empty for a run without one."""

    budget: float | None = option(None, "Seconds the run was planned to take (--budget; null: not planned). The "
                                  "recipe's values are the plan's, except those in user_set.", "float", nullable=True,
                                  minimum=1, flag=None, legacy=None)
    user_set: tuple[str, ...] | None = option(None, "Recipe fields the user gave, which won over the plan's values.",
                                              "names", nullable=True, flag=None, legacy=None)
    reasons: dict = option(dict, "Why the plan chose each value.", "mapping", flag=None, legacy=dict)
    estimate: dict = option(dict, "The plan's estimate of the time, in seconds: setup, reading, per epoch, total.",
                            "mapping", flag=None, legacy=dict)
    inference: dict = option(dict, "How the plan scores and predicts (seglab evaluate and predict options) and its "
                             "cost per image.", "mapping", flag=None, legacy=dict)


SECTIONS = {"data": DataConfig, "recipe": Recipe, "setup": Setup, "plan": PlanRecord}
OPTIONAL_SECTIONS = ("plan",)  # absent from runs written before it


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    setup: Setup = dataclasses.field(default_factory=Setup)
    plan: PlanRecord = dataclasses.field(default_factory=PlanRecord)

    @classmethod
    def of(cls, **values) -> "TrainConfig":
        """A TrainConfig from fields named on their own (`model="unet", size=64, seed=1`)."""
        return cls().replace(**values)

    def replace(self, **values) -> "TrainConfig":
        """A copy with fields changed, each named on its own; `augment` takes an Augment, True, False
        or a mapping of its fields to change."""
        changes = {name: {} for name in SECTIONS}
        for name, value in values.items():
            section = section_of(name)
            if name == "augment":
                value = _augment(self.recipe.augment, value)
            else:  # checked as a config.yaml value is: the same rules for Python, the command line and files
                value = options_of(SECTIONS[section])[name].check(name, value)
            changes[section][name] = value
        return dataclasses.replace(self, **{s: dataclasses.replace(getattr(self, s), **c) for s, c in changes.items() if c})

    def get(self, name: str):
        """The value of field `name`, whichever section holds it."""
        return getattr(getattr(self, section_of(name)), name)

    @property
    def split_seed(self) -> int:
        """The seed of the validation split: its own, else the run's."""
        return self.setup.seed if self.data.split_seed is None else self.data.split_seed

    def open_source(self, data: str | None = None, format: str | None = None, view: str | None = None):
        """The dataset this configuration trains on, split as it was split; or another dataset
        `data`, read as `format` with `view` (recognised and plain when None), split the same way."""
        from seglab.data import open_source
        from seglab.data.bands import RGB8, choose_bands

        split = {"val_fraction": self.data.val_fraction, "seed": self.split_seed}
        if data is not None:
            source = open_source(data, format, view=view, **split)
        else:
            source = open_source(self.data.path, self.data.format, view=self.data.view, classes=self.data.classes, **split)
        # Another dataset is read with the bands the run was trained on: a run of 8-bit RGB (bands
        # null in its config.yaml) reads it as 8-bit RGB, whatever bands its files hold.
        source.bands = RGB8 if data is not None and self.data.bands is None else choose_bands(source, self.data.bands)
        return source

    def to_dict(self) -> dict:
        return {name: to_plain(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: dict, complete: bool = False) -> "TrainConfig":
        """A TrainConfig from plain data (a parsed config.yaml), every value checked against its
        declaration. `complete`: every key must be there, as in a config.yaml seglab wrote. The flat
        layout of runs written before the sections existed is read too."""
        if not isinstance(data, dict):
            raise BadArgument(f"expected a mapping of configuration keys; got {type(data).__name__}.")
        if _flat(data):
            data = _sectioned(data)
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise BadArgument(f"unknown section(s) {', '.join(unknown)}. Known: {', '.join(SECTIONS)}.")
        missing = set(SECTIONS) - set(data) - set(OPTIONAL_SECTIONS)
        if complete and missing:
            raise BadArgument(f"missing section(s) {', '.join(sorted(missing))} (seglab writes every "
                              "section; restore them).")
        return cls(**{name: from_plain(kind, data.get(name) or {}, complete, f"{name}.") for name, kind in SECTIONS.items()})

    def save(self, path: Path) -> None:
        write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        """Read a run's config.yaml; any problem is a BadArgument naming the file."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"{path} not found: not a seglab run folder. Give the --out folder of a `seglab train` run.")
        return cls._read(path, complete=True)

    @classmethod
    def from_file(cls, path: Path) -> "TrainConfig":
        """A configuration file to start a run from (`seglab train --config`): a run's config.yaml,
        `seglab tune`'s best.yaml, or one written by hand with only some keys (the rest default)."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"--config {path}: no such file. Give a run's config.yaml or the best.yaml of `seglab tune`.")
        return cls._read(path, complete=False)

    @classmethod
    def _read(cls, path: Path, complete: bool) -> "TrainConfig":
        try:
            return cls.from_dict(yaml.safe_load(path.read_text()), complete=complete)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise BadArgument(f"{path}: not valid YAML{line} ({getattr(e, 'problem', None) or e}). Fix the file.") from None
        except BadArgument as e:
            raise BadArgument(f"{path}: {e}") from None


def section_of(name: str) -> str:
    """The section that holds field `name`; an unknown name lists the known ones."""
    for section, kind in SECTIONS.items():
        if name in options_of(kind):
            return section
    known = sorted(n for kind in SECTIONS.values() for n in options_of(kind))
    raise BadArgument(f"Unknown configuration field {name!r}. Known: {', '.join(known)}.")


def _augment(current: Augment, value) -> Augment:
    if isinstance(value, Augment):
        return value
    if isinstance(value, bool):
        return Augment() if value else Augment.off()
    if isinstance(value, dict):
        return from_plain(Augment, {**to_plain(current), **value}, where="augment.")
    raise BadArgument(f"augment takes true, false, an Augment or a mapping of its fields; got {value!r}.")


def _flat(data: dict) -> bool:
    """Whether `data` is the flat config.yaml of a run written before the sections existed."""
    return "model" in data or isinstance(data.get("data"), str)


def _sectioned(flat: dict) -> dict:
    """The flat layout (every field at the top, `data` the path, `augment` a bool) in sections."""
    data = {name: {} for name in SECTIONS}
    for key, value in flat.items():
        if key == "data":
            data["data"]["path"] = value
        elif key == "augment":
            data["recipe"]["augment"] = to_plain(Augment() if value is not False else Augment.off())
        else:
            try:
                data[section_of(key)][key] = value
            except BadArgument:
                data.setdefault(key, value)  # reported as unknown by from_dict
    return data


def resolve(config: TrainConfig, num_classes: int) -> TrainConfig:
    """Fill the model's defaults and check every value, with errors that say what is valid."""
    from seglab.core.precision import resolve_precision
    from seglab.models import model_options, model_spec
    from seglab.models.encoders import SCRATCH, start

    recipe, setup = config.recipe, config.setup
    spec = model_spec(recipe.model).defaults  # each model's defaults, declared beside its builder
    # Every option the builder takes, so config.yaml says each value used; the user's win.
    builder = {k: v for k, v in model_options(recipe.model).items() if k not in ("weights", "fine_tune")}
    options = {**builder, **spec.model_options, **recipe.model_options}
    defaults = {key: getattr(spec, key) for key in ("size", "batch_size", "epochs", "learning_rate", "weights", "fine_tune")}
    encoder = options.get("encoder", SCRATCH)
    if encoder != SCRATCH:  # over a keras.applications encoder: its pretrained start (unet's recipe is from scratch)
        begin = start(encoder, recipe.weights or spec.weights)
        defaults.update(fine_tune=spec.fine_tune or begin["fine_tune"], weights=spec.weights or begin["weights"])
    if recipe.crop is not None:  # the model's input is the crop
        if recipe.size is not None and recipe.size != recipe.crop:
            raise BadArgument(f"--size {recipe.size} and --crop {recipe.crop} disagree: with --crop the model's input is "
                              "the crop. Leave out --size.")
        defaults["size"] = recipe.crop
    filled = {key: value for key, value in defaults.items() if getattr(recipe, key) is None}
    filled["model_options"] = options
    if recipe.loss is None:
        filled["loss"] = "bce+dice" if num_classes == 2 else "ce+dice"
    filled["precision"] = resolve_precision(setup.precision)
    if setup.wandb or setup.wandb_project:  # naming a project asks for W&B
        filled.update(wandb=True, wandb_project=setup.wandb_project or "seglab")
    config = config.replace(**filled)
    validate(config, num_classes)
    return config


def validate(config: TrainConfig, num_classes: int) -> None:
    """Check what the declarations cannot: how values fit together and with the dataset, for a
    resolved configuration, new or loaded from a run."""
    from seglab.models import model_spec
    from seglab.models.encoders import SCRATCH

    recipe = config.recipe
    spec = model_spec(recipe.model)  # a known model
    scratch = recipe.model_options.get("encoder") == SCRATCH
    if (scratch or not spec.pretrained) and (recipe.weights or recipe.fine_tune):
        raise BadArgument(f"weights and fine_tune are for models with a pretrained encoder; {recipe.model}"
                          f"{' with its scratch encoder' if scratch else ''} trains from scratch (`seglab models` "
                          "lists which take them and the encoders).")
    for key in ("size", "batch_size", "epochs", "learning_rate", "loss"):
        if getattr(recipe, key) is None:
            raise BadArgument(f"{key} must be set after resolving; got null.")
    if recipe.crop is not None and recipe.crop != recipe.size:
        raise BadArgument(f"crop must equal size (the model's input); got crop {recipe.crop}, size {recipe.size}.")
    if recipe.scale != 1 and recipe.crop is None:
        raise BadArgument("--scale resizes images before cropping: it needs --crop (without crops, --size sets the resize).")
    if not (math.isfinite(recipe.learning_rate) and recipe.learning_rate > 0):
        raise BadArgument(f"learning_rate must be a positive finite number; got {recipe.learning_rate}.")
    if config.setup.wandb and importlib.util.find_spec("wandb") is None:
        raise BadArgument("--wandb needs the wandb package: pip install 'seglab[wandb]'.")
    if binary_head(config) and num_classes != 2:
        raise BadArgument(f"Loss {recipe.loss!r} is for two-class data; this dataset has {num_classes} classes. "
                          "Use 'ce' or 'ce+dice'.")


def binary_head(config: TrainConfig) -> bool:
    """A 'bce' loss means one sigmoid logit for a two-class dataset."""
    return "bce" in config.recipe.loss.split("+")


def options_table() -> str:
    """The Markdown table of every configuration field: docs/training.md holds it (a test checks)."""
    rows = ["| section | key | `seglab train` option | default | valid values | what it is |", "| --- | --- | --- | --- | --- | --- |"]
    sections = [(name, kind) for name, kind in SECTIONS.items()] + [("recipe.augment", Augment)]
    for section, kind in sections:
        for name, opt in options_of(kind).items():
            if opt.kind == "section":
                continue
            flag = cli_flag(name, opt, augment=kind is Augment)
            default = dataclasses.fields(kind)[list(options_of(kind)).index(name)].default
            shown = ("{}" if default is dataclasses.MISSING else "null" if default is None else ",".join(map(str, default))
                     if isinstance(default, tuple) else str(default).lower() if isinstance(default, bool) else default)
            rows.append(f"| {section} | `{name}` | {f'`{flag}`' if flag else '-'} | {shown} | {opt.describe()} | {opt.help} |")
    return "\n".join(rows) + "\n"


def cli_flag(name: str, opt, augment: bool = False) -> str | None:
    """The `seglab train` flag of a field: its Option's, else --name-with-dashes (--augment-NAME for
    the augmentation's fields); None where the field is no option."""
    if opt.flag is None:
        return None
    return opt.flag or ("--augment-" if augment else "--") + name.replace("_", "-")
