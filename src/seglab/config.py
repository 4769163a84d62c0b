"""The configuration of a training run: one frozen dataclass, per-model defaults, YAML round-trip.

`TrainConfig` holds what the user asked for (None = "the default for this model");
`resolve(config)` fills every default so the saved `config.yaml` says exactly what ran.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import yaml

OPTIMIZERS = ("adam", "rmsprop")
SCHEDULES = ("cosine", "plateau", "constant")

# Per-model defaults that train a good model on 2 CPU cores in minutes and on a GPU in seconds.
# VGG16 (fcn8s) has no BatchNorm: it needs a smaller learning rate than the others.
MODEL_DEFAULTS = {
    # BatchNorm in the U-Net (the tutorial has none): on Oxford-IIIT Pet, 0.612 vs 0.489 val mIoU
    # after 30 epochs from scratch.
    "unet": {"size": 128, "batch_size": 16, "epochs": 30, "learning_rate": 1e-3, "model_options": {"batch_norm": True}},
    "pix2pix_unet": {"size": 128, "batch_size": 16, "epochs": 30, "learning_rate": 1e-3},
    # On Oxford-IIIT Pet, 20 epochs (benchmarks/train_vs_reference.py): training MobileNetV2 from
    # block_6 on (BatchNorm kept frozen) beat the frozen encoder, 0.726 vs 0.716 val mIoU. The
    # half-width decoder (3.8M instead of 6.5M parameters, half the FLOPs) gave 0.726 vs 0.728 and
    # brings the run under the tutorial recipe's time on 2 CPU cores (the full one took 1.04-1.23x).
    "mobilenet_unet": {"size": 128, "batch_size": 16, "epochs": 20, "learning_rate": 1e-3, "weights": "imagenet",
                       "fine_tune": "block_6",
                       "model_options": {"decoder_filters": (256, 128, 64, 32)}},
    "fcn8s": {"size": 128, "batch_size": 8, "epochs": 20, "learning_rate": 1e-4, "weights": "imagenet", "fine_tune": "all"},
}


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
    batch_size: int | None = None
    epochs: int | None = None
    optimizer: str = "adam"
    learning_rate: float | None = None
    schedule: str = "cosine"
    loss: str | None = None
    class_weights: str | tuple[float, ...] = "none"
    augment: bool = True
    weights: str | None = None
    fine_tune: str | None = None
    precision: str = "auto"
    cache: bool = True
    previews: int = 8  # validation samples predicted, shown and logged after every epoch
    wandb: bool = False
    wandb_project: str | None = None
    tensorboard: bool = False
    seed: int = 0

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown configuration keys: {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


def resolve(config: TrainConfig, num_classes: int) -> TrainConfig:
    """Fill the model's defaults and check every value, with errors that say what is valid."""
    from seglab.models import MODELS
    from seglab.precision import resolve_precision

    if config.model not in MODELS:
        raise ValueError(f"Unknown model {config.model!r}. Available: {', '.join(sorted(MODELS))}.")
    defaults = MODEL_DEFAULTS[config.model]
    filled = {key: defaults.get(key) for key in ("size", "batch_size", "epochs", "learning_rate", "weights", "fine_tune")
              if getattr(config, key) is None}
    filled["model_options"] = {**defaults.get("model_options", {}), **config.model_options}  # the user's win
    if config.loss is None:
        filled["loss"] = "bce+dice" if num_classes == 2 else "ce+dice"
    filled["precision"] = resolve_precision(config.precision)
    if config.wandb or config.wandb_project:  # naming a project asks for W&B
        filled.update(wandb=True, wandb_project=config.wandb_project or "seglab")
    config = config.replace(**filled)
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}. Use one of: {', '.join(OPTIMIZERS)}.")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {config.schedule!r}. Use one of: {', '.join(SCHEDULES)}.")
    for key in ("size", "batch_size", "epochs", "previews"):
        if int(getattr(config, key)) < 1:
            raise ValueError(f"{key} must be at least 1; got {getattr(config, key)}.")
    if not config.learning_rate > 0:
        raise ValueError(f"learning_rate must be positive; got {config.learning_rate}.")
    if config.wandb and importlib.util.find_spec("wandb") is None:
        raise ValueError("--wandb needs the wandb package: pip install 'seglab[wandb]'.")
    if binary_head(config) and num_classes != 2:
        raise ValueError(f"Loss {config.loss!r} is for two-class data; this dataset has {num_classes} classes. "
                         "Use 'ce' or 'ce+dice'.")
    return config


def binary_head(config: TrainConfig) -> bool:
    """A 'bce' loss means one sigmoid logit for a two-class dataset."""
    return "bce" in config.loss.split("+")
