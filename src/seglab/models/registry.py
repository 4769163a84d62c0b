"""Model names -> builders. Read-only; unknown names and options list what is valid."""
from __future__ import annotations

import copy
import functools
import importlib
import inspect
import pkgutil
from types import MappingProxyType

import keras

from seglab.core.errors import BadArgument
from seglab.models.inputs import RGB_INPUT, ImageInput
from seglab.models.sizes import parse_input_size
from seglab.models.spec import ModelSpec


def _declared_specs() -> list[ModelSpec]:
    """The `SPEC` of every module of this package that declares one: adding a model family is one
    file with a builder and its SPEC, and nothing else to edit."""
    package = importlib.import_module(__package__)  # seglab.models, still being imported: its path is set
    modules = (importlib.import_module(f"{__package__}.{info.name}") for info in pkgutil.iter_modules(package.__path__))
    return [module.SPEC for module in modules if isinstance(getattr(module, "SPEC", None), ModelSpec)]


SPECS = MappingProxyType({spec.name: spec for spec in sorted(_declared_specs(), key=lambda spec: spec.name)})
MODELS = MappingProxyType({name: spec.builder for name, spec in SPECS.items()})


def model_spec(name: str) -> ModelSpec:
    """The spec of model `name`; an unknown name is a ValueError listing the known ones."""
    if name not in SPECS:
        raise BadArgument(f"Unknown model {name!r}. Available: {', '.join(SPECS)}.")
    return SPECS[name]


def model_options(name: str) -> dict[str, object]:
    """The options `name` takes beyond num_logits and input_size, with their defaults."""
    params = inspect.signature(_builder(name)).parameters
    return {k: p.default for k, p in params.items() if k not in ("num_logits", "input_size", "image")}


def check_encoder(name: str, encoder: str) -> None:
    """A BadArgument unless model `name` can be built over `encoder`: a keras.applications encoder
    its builder takes, or its own default (unet's `scratch`). Checked without building anything,
    so a recipe search can refuse a bad space before its first trial."""
    options = model_options(name)
    if "encoder" not in options:
        raise BadArgument(f"{name} takes no encoder: its layers are its own. Models that take one: "
                          f"{', '.join(m for m in SPECS if 'encoder' in model_options(m))}.")
    if encoder != options["encoder"]:
        from seglab.models.encoders import encoder_spec

        encoder_spec(encoder)


def _builder(name: str):
    return model_spec(name).builder


def build_model(name: str, num_logits: int, input_size=None, image: ImageInput = RGB_INPUT, **options) -> keras.Model:
    """Build model `name`: raw 0..255 RGB [B, H, W, 3] -> logits [B, H, W, num_logits]; or `image`'s
    channels, stretched by its first layer (seglab.models.inputs).

    num_logits=1 gives one binary logit (sigmoid semantics). `input_size` is (H, W) or an int;
    it defaults to the size of the model's training recipe. Options are the builder's keyword arguments
    (`model_options(name)` lists them).
    """
    builder = _builder(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in valid.items())
        raise BadArgument(f"Unknown option{'s' if len(unknown) > 1 else ''} for {name}: {', '.join(unknown)}. "
                         f"Valid options: {listed}.")
    options = {key: _checked_option(name, key, value, valid[key]) for key, value in options.items()}
    if isinstance(num_logits, bool) or not isinstance(num_logits, int) or num_logits < 1:
        raise BadArgument(f"num_logits must be a positive int (1 for a binary model); got {num_logits!r}.")
    size = parse_input_size(model_spec(name).defaults.size if input_size is None else input_size)
    return builder(num_logits, size, image=image, **options)


def _kind(value) -> str | None:
    """The kind of value an option's default says it takes, for an error message."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "a comma-separated list of whole numbers"
    return None  # text, None or a mixed default: nothing to check


def _checked_option(model: str, key: str, value, default):
    """`value`, checked against the kind of its default (a ValueError naming the option); a lone
    number where a list is taken is a list of one."""
    kind = _kind(default)
    if kind == "a comma-separated list of whole numbers" and isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    ok = {None: True,
          "true or false": isinstance(value, bool),
          "a whole number": isinstance(value, int) and not isinstance(value, bool),
          "a number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "a comma-separated list of whole numbers": isinstance(value, (tuple, list)) and
          all(isinstance(v, int) and not isinstance(v, bool) for v in value)}[kind]
    if not ok:
        shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
        raise BadArgument(f"Option {key} of {model} takes {kind} (default {default!r}); got {shown!r}.")
    return value


def catalog(classes: int = 3) -> list[dict]:
    """One entry per model: its spec's summary and recipe, with the parameters and forward GFLOPs
    per image of the model built at its recipe's size for `classes` classes (random weights)."""
    return copy.deepcopy(list(_catalog(classes)))


@functools.lru_cache(maxsize=None)  # building every model takes seconds; the answer never changes
def _catalog(classes: int) -> tuple[dict, ...]:
    from seglab.models.flops import forward_flops

    entries = []
    for name, spec in SPECS.items():
        recipe = spec.defaults
        options = {**recipe.model_options, **spec.encoder_options(weights="none", fine_tune="all")}
        model = build_model(name, classes, recipe.size, **options)
        entries.append({
            "model": name, "summary": spec.summary, "parameters": int(model.count_params()),
            "gflops": None if (flops := forward_flops(model)) is None else round(flops / 1e9, 3),
            "pretrained_weights": recipe.weights,
            "size": recipe.size, "batch_size": recipe.batch_size, "epochs": recipe.epochs,
            "learning_rate": recipe.learning_rate, "weights": recipe.weights, "fine_tune": recipe.fine_tune,
            "model_options": dict(recipe.model_options),
        })
    return tuple(entries)
