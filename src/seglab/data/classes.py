"""ClassSpec: the one place where the meaning of class indices lives."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from seglab.core.errors import BadArgument
from seglab.core.files import write_text

IGNORE_INDEX = 255

# Distinct, readable colours for datasets that bring none (tab20-like, background first).
DEFAULT_COLORS = (
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0),
    (255, 215, 180), (0, 0, 128), (128, 128, 128), (255, 255, 255),
)


def default_colors(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """`num_classes` display colours; cycles through DEFAULT_COLORS with a shade shift past its end."""
    out = []
    for i in range(num_classes):
        r, g, b = DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
        shift = 37 * (i // len(DEFAULT_COLORS))
        out.append(((r + shift) % 256, (g + shift) % 256, (b + shift) % 256))
    return tuple(out)


SCHEMAS = ('seglab reads classes.json in one of three forms: a list of names, ["background", "cat"]; '
           '{"names": ["background", "cat"], "colors": [[0, 0, 0], [255, 0, 0]]}; or colours by name, '
           '{"background": [0, 0, 0], "cat": [255, 0, 0]}. `seglab check DATA --write-classes` writes one from the '
           "masks for you to name.")


def _other_schema(data) -> str | None:
    """What another tool's class file looks like, in words; None where it may be seglab's."""
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        keys = sorted({k for d in data for k in d})[:5]
        return f"a list of objects with keys {', '.join(keys)} (another tool's schema)"
    if isinstance(data, dict) and "names" not in data:
        for key in ("classes", "categories", "labels", "label_map"):
            if key in data:
                return f"an object holding '{key}' (another tool's schema)"
        if data and all(isinstance(v, str) for v in data.values()):
            return "a mapping of ids to names (another tool's schema)"
    return None


@dataclass(frozen=True)
class ClassSpec:
    """Class names, display colours and the ignore index of a dataset.

    Class `i` is `names[i]`, drawn in `colors[i]`. Mask pixels equal to `ignore_index` belong to
    no class and are excluded from losses and metrics.
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...] = field(default=())
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self):
        names = tuple(str(n) for n in self.names)
        if not names:
            raise BadArgument("A ClassSpec needs at least one class name.")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise BadArgument(f"Class names must be unique; repeated: {', '.join(dupes)}.")
        if len(names) > 255:
            raise BadArgument(f"At most 255 classes fit a uint8 mask with ignore index 255; got {len(names)}.")
        colors = tuple(tuple(int(c) for c in col) for col in self.colors) or default_colors(len(names))
        if len(colors) != len(names):
            raise BadArgument(f"Got {len(names)} class names but {len(colors)} colours; give one colour per class.")
        for name, col in zip(names, colors):
            if len(col) != 3 or not all(0 <= c <= 255 for c in col):
                raise BadArgument(f"Colour of class '{name}' must be three integers 0..255; got {col}.")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(names):
            raise BadArgument(f"ignore_index must be in {len(names)}..255 (past the class indices); got {self.ignore_index}.")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", colors)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_json(self) -> dict:
        return {"names": list(self.names), "colors": [list(c) for c in self.colors], "ignore_index": self.ignore_index}

    @classmethod
    def from_json(cls, data) -> "ClassSpec":
        """Reads the forms people write: a list of names, {"names": [...], "colors": [...]},
        or a mapping name -> [r, g, b]; another tool's schema is refused showing these."""
        other = _other_schema(data)
        if other:
            raise BadArgument(f"this is {other}, not a schema seglab reads. {SCHEMAS}")

        def names(value):
            if isinstance(value, list) and all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in value):
                return tuple(value)
            raise BadArgument(f"class names must be a list of strings; got {value!r}. {SCHEMAS}")

        def colors(value):
            if isinstance(value, list) and all(isinstance(c, (list, tuple)) and len(c) == 3 and
                                               all(isinstance(v, int) and not isinstance(v, bool) for v in c) for c in value):
                return tuple(tuple(c) for c in value)
            raise BadArgument(f"colours must be a list of [r, g, b] with integers 0..255; got {value!r}.")

        if isinstance(data, list):
            return cls(names(data))
        if isinstance(data, dict) and "names" in data:
            ignore = data.get("ignore_index", IGNORE_INDEX)
            if isinstance(ignore, bool) or not isinstance(ignore, int):
                raise BadArgument(f"ignore_index must be an integer; got {ignore!r}.")
            return cls(names(data["names"]), colors(data.get("colors") or []), ignore)
        if isinstance(data, dict) and data and all(isinstance(v, (list, tuple)) for v in data.values()):
            return cls(tuple(data), colors(list(data.values())))
        raise BadArgument(f"got {type(data).__name__} {json.dumps(data)[:80]}. {SCHEMAS}")

    def save(self, path) -> None:
        write_text(Path(path), json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> "ClassSpec":
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text(errors="replace")))
        except json.JSONDecodeError as e:
            raise BadArgument(f"{path}: not valid JSON ({e}). Write a list of class names, e.g. [\"background\", \"cat\"].") from None
        except ValueError as e:
            raise BadArgument(f"{path}: {e}") from None


def suggest_classes(root: Path, colors, names=None) -> Path:
    """Write classes.json in `root` ({"name": [r, g, b], ...}) naming `colors` class_1, class_2, ...
    (black 'background'), or by `names`; beside an existing classes.json, classes.suggested.json
    (a user's file is never overwritten). Returns the path written."""
    if names is None:
        names = ["background" if tuple(c) == (0, 0, 0) else f"class_{i}" for i, c in enumerate(colors)]
    target = Path(root) / "classes.json"
    if target.exists():
        target = target.with_name("classes.suggested.json")
    write_text(target, json.dumps({n: list(c) for n, c in zip(names, colors)}, indent=2) + "\n")
    return target
