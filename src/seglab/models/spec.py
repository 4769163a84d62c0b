"""What seglab knows about a model family, declared once beside its builder: the training recipe
`seglab train` starts from, whether it takes encoder weights, and a line for listings. The
registry, the configuration defaults and the command line all read these, so adding a model is
one file with a `SPEC`."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping


@dataclass(frozen=True)
class Defaults:
    """The defaults `seglab train` uses for a model where the user gives none."""

    size: int
    batch_size: int
    epochs: int
    learning_rate: float
    weights: str | None = None  # "imagenet" for a pretrained encoder
    fine_tune: str | None = None  # see backbones.set_fine_tune; None over an --encoder: that encoder's default
    model_options: Mapping[str, object] = field(default_factory=dict)  # builder options that differ from its defaults

    def __post_init__(self):
        object.__setattr__(self, "model_options", MappingProxyType(dict(self.model_options)))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable  # (num_logits, input_size, **options) -> keras.Model
    defaults: Defaults  # the recipe values `seglab train` starts from for this model
    summary: str  # one line: what it is, for `seglab models` and help texts
    pretrained: bool = False  # takes `weights` and `fine_tune` (a keras.applications encoder)

    def encoder_options(self, weights=None, fine_tune=None) -> dict:
        """The builder's `weights` and `fine_tune` keywords where the model takes them (the one
        place that rule lives); a model trained from scratch takes neither. None values are left out."""
        if not self.pretrained:
            return {}
        return {k: v for k, v in (("weights", weights), ("fine_tune", fine_tune)) if v is not None}
