"""The configuration of a training run: one frozen dataclass, per-model defaults, YAML round-trip.

`TrainConfig` holds what the user asked for (None = "the default for this model");
`resolve(config)` fills every default so the saved `config.yaml` says exactly what ran.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from seglab.core.errors import BadArgument, NotFound
from seglab.core.files import write_text

OPTIMIZERS = ("adam", "rmsprop")
SCHEDULES = ("cosine", "plateau", "constant")
DISTRIBUTES = ("auto", "none", "mirrored", "multi-worker")  # seglab.engines.distribute says what each means

@dataclass(frozen=True)
class TrainConfig:
    data: str = "synthetic"
    format: str | None = None
    view: str | None = None
    classes: tuple[str, ...] | None = None
    val_fraction: float = 0.2
    model: str = "unet"
    model_options: dict = field(default_factory=dict)
    size: int | None = None
    crop: int | None = None  # train on crop x crop crops at the image's own resolution (x scale); size = crop
    scale: float = 1.0  # with crop: one resize factor for every image first
    batch_size: int | None = None
    epochs: int | None = None
    optimizer: str = "adam"
    learning_rate: float | None = None
    schedule: str = "cosine"
    loss: str | None = None
    class_weights: str | tuple[float, ...] | None = None  # 'auto' until resolved; then values or None
    augment: bool = True
    weights: str | None = None
    fine_tune: str | None = None
    precision: str = "auto"
    distribute: str = "auto"  # the tf.distribute strategy: resolved to none, mirrored or multi-worker
    replicas: int | None = None  # set by training: replicas in sync; batch_size is the global batch
    replica_batch: int | None = None  # set by training: batch_size / replicas
    cache: bool = True
    previews: int = 8  # validation samples predicted, shown and logged after every epoch
    wandb: bool = False
    wandb_project: str | None = None
    tensorboard: bool = False
    seed: int = 0
    # The validation split's own seed (None: `seed`), so that a recipe can be rerun with other
    # initial weights, shuffling and augmentation and scored on the same validation images.
    split_seed: int | None = None

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def open_source(self, data: str | None = None, format: str | None = None, view: str | None = None):
        """The dataset this configuration trains on, split as it was split; or another dataset
        `data`, read as `format` with `view` (recognised and plain when None), split the same way."""
        from seglab.data import open_source

        split = {"val_fraction": self.val_fraction, "seed": self.seed if self.split_seed is None else self.split_seed}
        if data is not None:
            return open_source(data, format, view=view, **split)
        return open_source(self.data, self.format, view=self.view, classes=self.classes, **split)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict, complete: bool = False) -> "TrainConfig":
        """A TrainConfig from plain data (a parsed config.yaml), every value's type checked.
        `complete`: every key must be there, as in a config.yaml that seglab wrote."""
        if not isinstance(data, dict):
            raise BadArgument(f"expected a mapping of configuration keys; got {type(data).__name__}.")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise BadArgument(f"unknown configuration keys: {', '.join(unknown)}. Known: {', '.join(known)}.")
        missing = [k for k in known if k not in data and k not in ADDED_LATER]
        if complete and missing:
            raise BadArgument(f"missing keys: {', '.join(missing)} (seglab writes every key; restore them).")
        data = {k: _typed(k, v) for k, v in data.items()}
        return cls(**data)

    def save(self, path: Path) -> None:
        write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        """Read a run's config.yaml; any problem is a ValueError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"{path} not found: not a seglab run folder. Give the --out folder of a `seglab train` run.")
        try:
            return cls.from_dict(yaml.safe_load(path.read_text()), complete=True)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise BadArgument(f"{path}: not valid YAML{line} ({getattr(e, 'problem', None) or e}). Fix the file.") from None
        except (ValueError, TypeError) as e:
            raise BadArgument(f"{path}: {e}") from None


# Keys that runs written before them lack; a missing one takes its default.
ADDED_LATER = frozenset({"crop", "scale", "distribute", "replicas", "replica_batch", "split_seed"})

# The type of each key, for checking what a config.yaml holds. None: the key may be null.
_INT, _FLOAT, _BOOL, _STR = (int,), (float, int), (bool,), (str,)
_TYPES = {
    "data": (_STR, False), "format": (_STR, True), "view": (_STR, True), "val_fraction": (_FLOAT, False),
    "model": (_STR, False), "size": (_INT, True), "crop": (_INT, True), "scale": (_FLOAT, False),
    "batch_size": (_INT, True), "epochs": (_INT, True),
    "optimizer": (_STR, False), "learning_rate": (_FLOAT, True), "schedule": (_STR, False), "loss": (_STR, True),
    "augment": (_BOOL, False), "weights": (_STR, True), "fine_tune": (_STR, True), "precision": (_STR, False),
    "distribute": (_STR, False), "replicas": (_INT, True), "replica_batch": (_INT, True),
    "cache": (_BOOL, False), "previews": (_INT, False), "wandb": (_BOOL, False), "wandb_project": (_STR, True),
    "tensorboard": (_BOOL, False), "seed": (_INT, False), "split_seed": (_INT, True),
}
_NAMES = {_INT: "a whole number", _FLOAT: "a number", _BOOL: "true or false", _STR: "text"}


def _typed(key: str, value):
    """`value` of `key` checked against its type (lists become tuples)."""
    if key == "classes":
        if value is None or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            return None if value is None else tuple(value)
        raise BadArgument(f"classes must be a list of class names or null; got {value!r}.")
    if key == "model_options":
        if value is None or isinstance(value, dict):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in (value or {}).items()}
        raise BadArgument(f"model_options must be a mapping of option: value; got {value!r}.")
    if key == "class_weights":
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        if isinstance(value, str) and value.lower() == "auto":
            return "auto"
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)
        raise BadArgument(f"class_weights must be 'auto', null or a list of numbers; got {value!r}.")
    types, nullable = _TYPES[key]
    if value is None and nullable:
        return None
    if not isinstance(value, types) or (types is not _BOOL and isinstance(value, bool)):
        raise BadArgument(f"{key} must be {_NAMES[types]}{' or null' if nullable else ''}; got {value!r}.")
    return float(value) if types is _FLOAT else value


def resolve(config: TrainConfig, num_classes: int) -> TrainConfig:
    """Fill the model's defaults and check every value, with errors that say what is valid."""
    from seglab.models import model_options, model_spec
    from seglab.models.encoders import SCRATCH, start
    from seglab.core.precision import resolve_precision

    recipe = model_spec(config.model).recipe  # each model's defaults, declared beside its builder
    # Every option the builder takes, so config.yaml says each value used; the user's win.
    builder = {k: v for k, v in model_options(config.model).items() if k not in ("weights", "fine_tune")}
    options = {**builder, **recipe.model_options, **config.model_options}
    defaults = {key: getattr(recipe, key) for key in ("size", "batch_size", "epochs", "learning_rate", "weights", "fine_tune")}
    encoder = options.get("encoder", SCRATCH)
    if encoder != SCRATCH:  # over a keras.applications encoder: its pretrained start (unet's recipe is from scratch)
        begin = start(encoder, config.weights or recipe.weights)
        defaults.update(fine_tune=recipe.fine_tune or begin["fine_tune"], weights=recipe.weights or begin["weights"])
    if config.crop is not None:  # the model's input is the crop
        if config.size is not None and config.size != config.crop:
            raise BadArgument(f"--size {config.size} and --crop {config.crop} disagree: with --crop the model's input is "
                             "the crop. Leave out --size.")
        defaults["size"] = config.crop
    filled = {key: value for key, value in defaults.items() if getattr(config, key) is None}
    filled["model_options"] = options
    if config.loss is None:
        filled["loss"] = "bce+dice" if num_classes == 2 else "ce+dice"
    filled["precision"] = resolve_precision(config.precision)
    if config.wandb or config.wandb_project:  # naming a project asks for W&B
        filled.update(wandb=True, wandb_project=config.wandb_project or "seglab")
    config = config.replace(**filled)
    validate(config, num_classes)
    return config


def validate(config: TrainConfig, num_classes: int) -> None:
    """Check a resolved configuration, new or loaded from a run, with errors that say what is valid."""
    from seglab.models import model_spec
    from seglab.models.encoders import SCRATCH

    spec = model_spec(config.model)  # a known model
    scratch = config.model_options.get("encoder") == SCRATCH
    if (scratch or not spec.pretrained) and (config.weights or config.fine_tune):
        raise BadArgument(f"weights and fine_tune are for models with a pretrained encoder; {config.model}"
                         f"{' with its scratch encoder' if scratch else ''} trains from scratch (`seglab models` "
                         "lists which take them and the encoders).")
    if config.optimizer not in OPTIMIZERS:
        raise BadArgument(f"Unknown optimizer {config.optimizer!r}. Use one of: {', '.join(OPTIMIZERS)}.")
    if config.schedule not in SCHEDULES:
        raise BadArgument(f"Unknown schedule {config.schedule!r}. Use one of: {', '.join(SCHEDULES)}.")
    for key in ("size", "batch_size", "epochs", "previews"):
        if getattr(config, key) is None or int(getattr(config, key)) < 1:
            raise BadArgument(f"{key} must be at least 1; got {getattr(config, key)}.")
    if config.crop is not None and (config.crop < 1 or config.crop != config.size):
        raise BadArgument(f"crop must be at least 1 and equal to size (the model's input); got crop {config.crop}, size {config.size}.")
    if not (0 < config.scale <= 4 and math.isfinite(config.scale)):
        raise BadArgument(f"scale must be above 0 and at most 4; got {config.scale}.")
    if config.scale != 1 and config.crop is None:
        raise BadArgument("--scale resizes images before cropping: it needs --crop (without crops, --size sets the resize).")
    if config.learning_rate is None or not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise BadArgument(f"learning_rate must be a positive finite number; got {config.learning_rate}.")
    if not 0 < config.val_fraction < 1:
        raise BadArgument(f"val_fraction must be between 0 and 1 (exclusive); got {config.val_fraction}.")
    if config.loss is None:
        raise BadArgument("loss must be set: ce, ce+dice, focal, dice, bce or bce+dice.")
    from seglab.core.precision import PRECISIONS

    if config.precision not in PRECISIONS:
        raise BadArgument(f"Unknown precision {config.precision!r}. Use one of: {', '.join(PRECISIONS)}.")
    if config.distribute not in DISTRIBUTES:
        raise BadArgument(f"Unknown distribute {config.distribute!r}. Use one of: {', '.join(DISTRIBUTES)}.")
    if config.wandb and importlib.util.find_spec("wandb") is None:
        raise BadArgument("--wandb needs the wandb package: pip install 'seglab[wandb]'.")
    if binary_head(config) and num_classes != 2:
        raise BadArgument(f"Loss {config.loss!r} is for two-class data; this dataset has {num_classes} classes. "
                         "Use 'ce' or 'ce+dice'.")


def binary_head(config: TrainConfig) -> bool:
    """A 'bce' loss means one sigmoid logit for a two-class dataset."""
    return "bce" in config.loss.split("+")
