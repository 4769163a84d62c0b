"""The dataset formats: one module each, with `detect(root) -> bool` and `open(root, **options)
-> Source`. `open_source` picks one by name or recognises it from the folder."""
from __future__ import annotations

import inspect
from pathlib import Path
from types import MappingProxyType

from seglab.core.errors import BadArgument
from seglab.data.classes import ClassSpec
from seglab.data.formats import (
    camvid,
    cityscapes_pairs,
    coco,
    folder,
    oxford_pets,
    synthetic,
)
from seglab.data.sources import Source

# In the order detection tries them: the most specific layouts first.
FORMATS = MappingProxyType({m.NAME: m for m in (oxford_pets, coco, camvid, synthetic, folder, cityscapes_pairs)})


def detect_format(root: Path) -> str:
    """The format of the folder `root`, from its layout."""
    found = next((name for name, module in FORMATS.items() if module.detect(root)), None)
    if found is None:
        raise BadArgument(f"{root}: cannot tell the dataset format from its layout. Expected one of: "
                         "oxford-pets (images/ + annotations/trimaps/), camvid (train/ + trainannot/, or val/ or test/ "
                         "likewise), folder (images/ + masks/), coco (annotations/instances_*.json), cityscapes-pairs "
                         f"(side-by-side JPEGs). Name it with --format ({', '.join(FORMATS)}).")
    return found


# Options of the split a format makes itself: given to the formats that make one, and not an
# error for the formats whose split comes with the data.
SPLIT_OPTIONS = ("val_fraction", "seed")


def format_options(format: str) -> list[str]:
    """The keyword options that the format `format` takes."""
    return [name for name, p in inspect.signature(FORMATS[format].open).parameters.items() if p.kind is p.KEYWORD_ONLY]


def open_source(path=None, format: str | None = None, **options) -> Source:
    """Open a dataset. `path` None or 'synthetic' gives the built-in dataset; `format` None
    recognises the layout. Options (None means not given): view ('binary', 'road'), classes
    (ClassSpec or names), val_fraction, seed, tolerance; one a format does not take is a ValueError."""
    options = {k: v for k, v in options.items() if v is not None}
    if not 0 <= options.get("val_fraction", 0) < 1:
        raise BadArgument(f"val_fraction must be between 0 and 1; got {options['val_fraction']}.")
    if isinstance(options.get("classes"), (list, tuple)):
        options["classes"] = ClassSpec(tuple(options["classes"]))
    if path is None or (str(path) == "synthetic" and not Path(path).exists()):
        root, format = None, "synthetic"
    else:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise BadArgument(f"{root}: not a folder. Give a dataset folder, or 'synthetic' for the built-in dataset.")
        format = format or detect_format(root)
    if format not in FORMATS:
        raise BadArgument(f"Unknown format '{format}'. Available: {', '.join(sorted(FORMATS))}.")
    takes = format_options(format)
    unknown = sorted(k for k in options if k not in takes and k not in SPLIT_OPTIONS)
    if unknown:
        raise BadArgument(f"The {format} format does not take {', '.join(unknown)}"
                         f"{' (' + repr(options['view']) + ')' if 'view' in unknown else ''}. "
                         f"It takes: {', '.join(takes) or 'no options'}.")
    return FORMATS[format].open(root, **{k: v for k, v in options.items() if k in takes})
