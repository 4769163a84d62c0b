"""What `seglab tune` searches: the recipe part of the configuration (`runs.config.Recipe`), each
field fixed, one of a list, or a range, with the reason for its default.

The default space is built around a plan (`commands.planning`): the plan's value is always
inside it, so the plan itself can be the study's first trial. A YAML file (`--space`) narrows or
widens it, key by key, in the same words:

    model: [deeplabv3plus/mobilenet_v2, unet/mobilenet_v2]   # a list: one of these
    size: [224, 256, 288]
    learning_rate: {low: 0.0002, high: 0.003, log: true}       # a range (log: sampled on a log scale)
    batch_size: 16                                             # a value: fixed
    epochs: auto                                               # as many as fit each trial's time
    augment:
      zoom: [[0.85, 1.25], [0.75, 1.5]]
      brightness: {low: 0, high: 0.3}

Optuna's parameters carry these names (`augment.zoom`); choices that are not plain numbers or
words (zoom pairs, class weights) are offered to Optuna as text ("0.75,1.5") and turned back here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seglab.core.errors import BadArgument

AUTO = "auto"  # epochs: as many as fit the trial's share of the budget (the planner's rule)
AUGMENT_KEYS = ("flip", "vflip", "zoom", "brightness", "contrast")
KEYS = ("model", "model_options", "weights", "fine_tune", "size", "crop", "scale", "batch_size", "epochs",
        "optimizer", "learning_rate", "schedule", "loss", "class_weights") + tuple(f"augment.{k}" for k in AUGMENT_KEYS)
PAIRS = ("augment.zoom", "class_weights")  # values that are tuples of numbers, offered to Optuna as text
ZOOMS = ((0.85, 1.25), (0.75, 1.5), (0.7, 1.6))


@dataclass(frozen=True)
class Dimension:
    """One recipe field's place in the space: `value` (fixed), `choices`, or `low`..`high`."""

    name: str
    value: object = None  # fixed: the value; searched: the plan's, which `null` in a space file fixes
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    why: str = ""

    @property
    def kind(self) -> str:
        return "choice" if self.choices is not None else "range" if self.low is not None else "fixed"

    def suggest(self, trial):
        """The value an Optuna trial draws (as Optuna keeps it: text for tuples)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, [_text(c) for c in self.choices])
        if self.kind == "range":
            if isinstance(self.low, int) and isinstance(self.high, int):
                return trial.suggest_int(self.name, self.low, self.high, log=self.log)
            return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)
        return self.value

    def holds(self, value) -> bool:
        if self.kind == "choice":
            return _text(value) in [_text(c) for c in self.choices]
        if self.kind == "range":
            return isinstance(value, (int, float)) and self.low <= value <= self.high
        return _text(value) == _text(self.value)

    def to_plain(self):
        if self.kind == "choice":
            return [_plain(c) for c in self.choices]
        if self.kind == "range":
            return {"low": self.low, "high": self.high, **({"log": True} if self.log else {})}
        return _plain(self.value)


@dataclass
class SearchSpace:
    dimensions: dict[str, Dimension] = field(default_factory=dict)

    def searched(self) -> list[Dimension]:
        return [d for d in self.dimensions.values() if d.kind != "fixed"]

    def sample(self, trial) -> dict:
        """Draw every searched dimension from an Optuna trial: its params, by name."""
        return {d.name: d.suggest(trial) for d in self.searched()}

    def recipe(self, params: dict) -> dict:
        """The TrainConfig fields of a trial whose searched dimensions took `params`: model and
        encoder split, tuples read back, `epochs: auto` left out (the trial's planner fills it)."""
        values, augment = {}, {}
        for name, dim in self.dimensions.items():
            value = params.get(name, dim.value) if dim.kind != "fixed" else dim.value
            value = _untext(name, value)
            if name.startswith("augment."):
                augment[name.removeprefix("augment.")] = value
            elif name == "model":
                model, _, encoder = str(value).partition("/")
                values["model"] = model
                if encoder:
                    values.setdefault("model_options", {})["encoder"] = encoder
            elif name == "model_options":
                values["model_options"] = {**(value or {}), **values.get("model_options", {})}
            elif name == "epochs" and value == AUTO:
                continue
            else:
                values[name] = value
        if augment:
            values["augment"] = augment
        return values

    def fixed_recipe(self) -> dict:
        """The TrainConfig fields this space fixes to a value (not `null`, the plan's): what the
        plan of a study's first trial must keep."""
        return SearchSpace({k: d for k, d in self.dimensions.items()
                            if d.kind == "fixed" and d.value is not None}).recipe({})

    def auto_epochs(self) -> bool:
        return self.dimensions.get("epochs", Dimension("epochs", AUTO)).value == AUTO

    def params_of(self, values: dict) -> dict:
        """The params that give the recipe `values` (a plan's): for Optuna to run it first
        (`enqueue_trial`). A value outside this space is left out, and drawn instead."""
        flat = {k: v for k, v in values.items() if k not in ("augment", "model", "model_options")}
        encoder = (values.get("model_options") or {}).get("encoder")
        flat["model"] = f"{values['model']}/{encoder}" if encoder else values.get("model")
        for key, value in (values.get("augment") or {}).items():
            flat[f"augment.{key}"] = value
        if flat.get("class_weights") is None:
            flat["class_weights"] = "none"
        return {d.name: _text(flat[d.name]) if d.kind == "choice" else flat[d.name]
                for d in self.searched() if d.name in flat and flat[d.name] is not None and d.holds(flat[d.name])}

    def to_yaml(self) -> str:
        """The space as a `--space` file: each key with its reason as a comment."""
        lines, augment = [], []
        for name, dim in self.dimensions.items():
            text = yaml.safe_dump({name.removeprefix("augment."): dim.to_plain()}, default_flow_style=True,
                                  width=1000).strip()[1:-1]
            line = (f"  {text}" if name.startswith("augment.") else text) + (f"  # {dim.why}" if dim.why else "")
            (augment if name.startswith("augment.") else lines).append(line)
        return "\n".join(lines + (["augment:"] + augment if augment else [])) + "\n"


def load_space(path: Path, default: SearchSpace) -> SearchSpace:
    """The default space with the keys of YAML file `path` in place of its own (null: the plan's
    value, fixed); errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise BadArgument(f"--space {path}: no such file. Write one like `seglab tune --help` shows, or leave "
                          "--space out for the default space.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise BadArgument(f"{path}: not valid YAML ({getattr(e, 'problem', None) or e}). Fix the file.") from None
    return parse_space(data, default, str(path))


def parse_space(data, default: SearchSpace, where: str = "the space") -> SearchSpace:
    if not isinstance(data, dict):
        raise BadArgument(f"{where}: a search space is a mapping of recipe fields; got {type(data).__name__}.")
    flat = {k: v for k, v in data.items() if k != "augment"}
    augment = data.get("augment") or {}
    if not isinstance(augment, dict):
        raise BadArgument(f"{where}: augment holds a mapping of {', '.join(AUGMENT_KEYS)}; got {augment!r}.")
    flat.update({f"augment.{k}": v for k, v in augment.items()})
    unknown = [k for k in flat if k not in KEYS]
    if unknown:
        raise BadArgument(f"{where}: unknown key(s) {', '.join(map(str, unknown))}. A space holds recipe fields: "
                          f"{', '.join(k for k in KEYS if not k.startswith('augment.'))}, and augment: "
                          f"{', '.join(AUGMENT_KEYS)}.")
    dimensions = dict(default.dimensions)
    for key, value in flat.items():
        if value is None:
            kept = default.dimensions.get(key)
            dimensions[key] = Dimension(key, kept.value if kept else None, why="fixed (null in the space file)")
            continue
        dimensions[key] = _checked(_dimension(key, value, where), where)
    return SearchSpace({k: dimensions[k] for k in KEYS if k in dimensions})


def _dimension(key: str, value, where: str) -> Dimension:
    given = f"given in {where}"
    if key == "model_options":
        if not isinstance(value, dict):
            raise BadArgument(f"{where}: model_options is a fixed mapping of builder options; got {value!r}.")
        return Dimension(key, value, why=given)
    if isinstance(value, dict):
        if set(value) - {"low", "high", "log"} or not {"low", "high"} <= set(value):
            raise BadArgument(f"{where}: {key} as a range takes low, high and optionally log: true; got {value}.")
        low, high = value["low"], value["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
            raise BadArgument(f"{where}: {key}: low and high are numbers, low <= high; got {low!r} and {high!r}.")
        if value.get("log") and low <= 0:
            raise BadArgument(f"{where}: {key}: a log range needs low > 0; got {low}.")
        if key in PAIRS or key == "epochs" and (not isinstance(low, int) or not isinstance(high, int)):
            raise BadArgument(f"{where}: {key} takes a value or a list of values, not a range of numbers.")
        return Dimension(key, low=low, high=high, log=bool(value.get("log")), why=given)
    if isinstance(value, list):
        if key in PAIRS and value and all(isinstance(v, (int, float)) for v in value):
            return Dimension(key, tuple(value), why=given)  # one pair, fixed
        if not value:
            raise BadArgument(f"{where}: {key}: an empty list offers nothing to choose.")
        return Dimension(key, choices=tuple(tuple(v) if isinstance(v, list) else v for v in value), why=given)
    return Dimension(key, value, why=given)


def _checked(dim: Dimension, where: str) -> Dimension:
    """Every value a dimension can take is checked as config.yaml checks it, so a bad space fails
    at the start, not in the middle of a study."""
    from seglab.core.schema import options_of
    from seglab.models import SPECS, check_encoder
    from seglab.runs.config import Recipe, TrainConfig

    values = list(dim.choices) if dim.kind == "choice" else [dim.low, dim.high] if dim.kind == "range" else [dim.value]
    for value in values:
        if dim.name == "epochs" and value == AUTO:
            continue
        try:
            if dim.name == "model":
                model, _, encoder = str(value).partition("/")
                if model not in SPECS:
                    raise BadArgument(f"unknown model {model!r}; `seglab models` lists them: {', '.join(SPECS)}.")
                if encoder:
                    check_encoder(model, encoder)
            elif dim.name.startswith("augment."):
                key = dim.name.removeprefix("augment.")
                TrainConfig().replace(augment={key: list(value) if isinstance(value, tuple) else value})
            elif dim.name in options_of(Recipe):
                TrainConfig().replace(**{dim.name: _untext(dim.name, _text(value) if dim.name in PAIRS else value)})
        except (BadArgument, ValueError, TypeError) as e:
            raise BadArgument(f"{where}: {dim.name}: {value!r}: {e}") from None
    return dim


def default_space(plan_values: dict, reasons: dict, num_classes: int, sizes: tuple, native: int,
                  sqrt_weights: tuple | None, train_pairs: int) -> SearchSpace:
    """The space around a plan's recipe (`plan_values`, `reasons`): the plan's value always inside,
    the neighbours a practitioner would try next, each dimension with its reason."""
    v, dims = plan_values, {}
    encoder = (v.get("model_options") or {}).get("encoder")

    def put(name, value=None, **kw):  # value: the plan's, which a searched dimension falls back to
        dims[name] = Dimension(name, value, **kw)

    if encoder and encoder != "scratch":
        others = [m for m in ("deeplabv3plus", "unet") if m != v["model"]]
        put("model", f"{v['model']}/{encoder}", choices=tuple(f"{m}/{encoder}" for m in [v["model"], *others]),
            why=f"the plan's {v['model']} or the other decoder over the same pretrained {encoder}")
    else:
        put("model", f"{v['model']}/{encoder}" if encoder else v["model"],
            why="fixed: no pretrained encoder weights were found, so the plan's model from scratch")
    if v.get("weights") is not None:
        put("weights", value=v["weights"], why="the pretrained weights the plan found")
    if v.get("fine_tune") is not None:
        put("fine_tune", value=v["fine_tune"], why="the plan's")
    side = v.get("crop") or v["size"]
    near = tuple(s for s in sizes if 0.75 * side <= s <= 1.3 * side and (v.get("crop") or s <= max(side, native)))
    near = tuple(sorted(set(near) | {side}))
    if v.get("crop"):
        put("crop", side, choices=near, why=f"crops near the plan's {side} px (more context or more steps)")
        put("scale", value=v["scale"], why="the plan's: the scale the objects' detail needs")
    else:
        put("size", side, choices=near, why=f"sizes near the plan's {side} px: detail against epochs in the time")
    batch = v["batch_size"]
    put("batch_size", batch, choices=tuple(sorted({max(2, batch // 2), batch})),
        why=f"the plan's {batch} or half: more, noisier updates an epoch")
    put("epochs", value=AUTO, why="auto: as many as fit each trial's time, measured for its model and size")
    put("optimizer", value="adam", why="Adam, as every model's recipe")
    rate = v["learning_rate"]
    put("learning_rate", rate, low=float(f"{rate / 3:.2g}"), high=float(f"{rate * 3:.2g}"), log=True,
        why=f"a third to three times the plan's {rate:g}, on a log scale")
    put("schedule", value="cosine", why="cosine decay over each trial's epochs, which are known before it starts")
    if num_classes == 2:
        put("loss", v["loss"], choices=("bce+dice", "bce"), why="the plan's bce+dice, or plain bce")
        put("class_weights", value=None, why="none: two classes, one logit")
    else:
        put("loss", v["loss"], choices=(v["loss"], *[x for x in ("ce", "focal") if x != v["loss"]]),
            why=f"the plan's {v['loss']}, plain cross-entropy, or focal (hard pixels count more)")
        weights = v.get("class_weights")
        options = [weights, None] if weights else [None, sqrt_weights] if sqrt_weights else [None]
        if len(options) > 1:
            put("class_weights", weights, choices=tuple(_text(w) for w in options),
                why="none or 1/sqrt(pixel share) (mean 1): rare classes weighed up or not")
        else:
            put("class_weights", value=None, why="none: every class has about the same share of pixels")
    augment = v.get("augment") or {}
    put("augment.flip", value=augment.get("flip", 0.5), why=reasons.get("augment", "the plan's").split(";")[0])
    put("augment.vflip", value=augment.get("vflip", 0.0), why="the plan's: flips only where the classes have no 'up'")
    zoom = tuple(augment.get("zoom", ZOOMS[1]))
    put("augment.zoom", zoom, choices=tuple(dict.fromkeys([zoom, *ZOOMS])),
        why=f"the plan's {zoom[0]:g}-{zoom[1]:g}, or lighter or stronger ({train_pairs} training images)")
    brightness, contrast = augment.get("brightness", 0.1), augment.get("contrast", 0.2)
    put("augment.brightness", brightness, low=0.0, high=max(0.3, brightness), why="none to strong colour shifts")
    put("augment.contrast", contrast, low=0.0, high=max(0.4, contrast), why="none to strong contrast changes")
    return SearchSpace(dims)


def _text(value) -> object:
    """A choice as Optuna keeps it: None, a bool, a number or text (tuples as '0.75,1.5')."""
    if isinstance(value, (tuple, list)):
        return ",".join(f"{float(x):g}" for x in value)
    return "none" if value is None else value


def _untext(name: str, value):
    """A value as Optuna kept it, back as the recipe takes it: '0.75,1.5' -> (0.75, 1.5), 'none' -> None."""
    if name in PAIRS and isinstance(value, str):
        if value.lower() == "none":
            return None
        if value.lower() != "auto":
            return tuple(float(v) for v in value.split(","))
    return value


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(x) for x in value]
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.6g}")
    return value
