"""The built-in shapes dataset (see `seglab.data.synthetic`), read as a folder."""
from __future__ import annotations

from pathlib import Path

from seglab.data import synthetic
from seglab.data.classes import ClassSpec
from seglab.data.formats import folder
from seglab.data.sources import Source

NAME = "synthetic"


def detect(root: Path) -> bool:
    return folder.detect(root) and (root / synthetic.MARKER).is_file()


def open(root: Path | None = None, *, classes: ClassSpec | None = None, val_fraction: float = 0.2,
         seed: int = 0) -> Source:
    """The built-in shapes dataset, generated once into a cache folder (or `root`) and read as a folder."""
    path = synthetic.ensure(root)
    src = folder.open(path, classes=classes, val_fraction=val_fraction, seed=seed)
    src.format = "synthetic"
    return src
