"""Declaring a configuration once: each field of a frozen dataclass carries its `Option` (type,
valid values, help text, command-line flag, and the value a file written before the field existed
takes), and `from_plain` builds the dataclass from parsed YAML, checking every value against it.

`seglab.runs.config` declares a run's configuration this way; `seglab.data.augment.Augment`
declares its own section. The command line's options, config.yaml's checks and
docs/training.md's option table all read these declarations.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from seglab.core.errors import BadArgument

ABSENT = object()  # `Option.legacy` when a file must have the key


@dataclass(frozen=True)
class Option:
    """What one configuration field is.

    kind: int, float, bool, str, names (list of text), mapping, pair (two numbers: lo, hi),
    weights ('auto', none or one number per class) or section (a nested dataclass).
    """

    help: str
    kind: str
    nullable: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    flag: str | None = ""  # the command-line flag: "" = --field-name; None = not a train option
    legacy: object = ABSENT  # the value for a config.yaml written before this field existed

    def check(self, name: str, value):
        """`value` (from YAML or the command line) as this field holds it; BadArgument if invalid."""
        if value is None:
            if self.nullable:
                return None
            raise BadArgument(f"{name} must be set ({self.describe()}); got null.")
        checker = getattr(self, f"_{self.kind}")
        value = checker(name, value)
        if self.choices and value not in self.choices:
            raise BadArgument(f"Unknown {name} {value!r}. Use one of: {', '.join(map(str, self.choices))}.")
        for number in (value if self.kind == "pair" else (value,) if self.kind in ("int", "float") else ()):
            if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
                raise BadArgument(f"{name} must be {self.describe()}; got {value!r}.")
        return value

    def describe(self) -> str:
        """The valid values in words, for messages and the docs' table."""
        if self.choices:
            words = "one of " + ", ".join(map(str, self.choices))
        else:
            words = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text",
                     "names": "a list of names", "mapping": "a mapping of option: value",
                     "pair": "two numbers, lo and hi", "weights": "auto, none or one number per class",
                     "section": "a section"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            words += f" from {self.minimum:g} to {self.maximum:g}"
        elif self.minimum is not None:
            words += f" of at least {self.minimum:g}"
        return words + (" (or null)" if self.nullable else "")

    def _int(self, name, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadArgument(f"{name} must be {self.describe()}; got {value!r}.")
        return value

    def _float(self, name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            finite = " (not finite)" if isinstance(value, float) else ""
            raise BadArgument(f"{name} must be {self.describe()}; got {value!r}{finite}.")
        return float(value)

    def _bool(self, name, value):
        if not isinstance(value, bool):
            raise BadArgument(f"{name} must be true or false; got {value!r}.")
        return value

    def _str(self, name, value):
        if not isinstance(value, str):
            raise BadArgument(f"{name} must be {self.describe()}; got {value!r}.")
        return value

    def _names(self, name, value):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise BadArgument(f"{name} must be a list of class names or null; got {value!r}.")
        return tuple(value)

    def _mapping(self, name, value):
        if not isinstance(value, dict):
            raise BadArgument(f"{name} must be a mapping of option: value; got {value!r}.")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}

    def _pair(self, name, value):
        numbers = tuple(value) if isinstance(value, (list, tuple)) else ()
        if len(numbers) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers) \
                or numbers[0] > numbers[1]:
            raise BadArgument(f"{name} must be two numbers, lo and hi with lo <= hi; got {value!r}.")
        return tuple(float(v) for v in numbers)

    def _weights(self, name, value):
        if isinstance(value, str) and value.lower() in ("auto", "none"):
            return "auto" if value.lower() == "auto" else None
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value):
            return tuple(float(v) for v in value)
        raise BadArgument(f"{name} must be 'auto', null or a list of non-negative numbers; got {value!r}.")


def option(default, help: str, kind: str, **details):
    """A dataclass field declared with its Option (`default` may be a zero-argument factory for a section)."""
    meta = {"option": Option(help, kind, **details)}
    if callable(default) and kind in ("section", "mapping"):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def options_of(cls) -> dict[str, Option]:
    """{field name: Option} of a dataclass declared with `option`."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls)}


def section_type(cls, name: str):
    """The dataclass a section field holds."""
    return typing.get_type_hints(cls)[name]


def from_plain(cls, data, complete: bool = False, where: str = ""):
    """An instance of `cls` from parsed YAML, every value checked; `complete`: every key without a
    `legacy` value must be there, as in a file seglab wrote. Errors name the key's full path."""
    if not isinstance(data, dict):
        raise BadArgument(f"{where or 'the configuration'} must be a mapping of keys; got {type(data).__name__}.")
    options = options_of(cls)
    unknown = sorted(set(data) - set(options))
    if unknown:
        raise BadArgument(f"unknown key(s) {', '.join(where + k for k in unknown)}. Known here: {', '.join(options)}.")
    values = {}
    for name, opt in options.items():
        if name not in data:
            if complete and opt.legacy is ABSENT:
                raise BadArgument(f"missing key {where}{name} (seglab writes every key; restore it).")
            if opt.legacy is not ABSENT:
                values[name] = opt.legacy() if callable(opt.legacy) else opt.legacy
            continue
        if opt.kind == "section":
            values[name] = from_plain(section_type(cls, name), data[name] or {}, complete, f"{where}{name}.")
        else:
            values[name] = opt.check(where + name, data[name])
    return cls(**values)


def to_plain(instance) -> dict:
    """The dataclass as YAML-ready data (tuples as lists, sections as mappings), in field order."""
    plain = {}
    for name, opt in options_of(type(instance)).items():
        value = getattr(instance, name)
        if opt.kind == "section":
            value = to_plain(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
        plain[name] = value
    return plain
