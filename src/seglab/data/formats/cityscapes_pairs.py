"""Cityscapes as side-by-side pairs (the Kaggle / pix2pix copy): photo left, colour mask right."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from seglab.core.errors import BadArgument
from seglab.data import palettes
from seglab.data.classes import IGNORE_INDEX, ClassSpec
from seglab.data.masks import ColorMap
from seglab.data.sources import Pair, Source, list_files

NAME = "cityscapes-pairs"
SPLITS = ("train", "val", "test")


def detect(root: Path) -> bool:
    """JPEGs twice as wide as high, in the folder or in any split folder of it."""
    folders = (root, *(root / split for split in SPLITS))
    images = [f for d in folders if d.is_dir() for f in sorted(d.iterdir()) if f.suffix.lower() in (".jpg", ".jpeg")]
    if not images:
        return False
    try:
        with Image.open(images[0]) as im:
            return im.width == 2 * im.height
    except (OSError, Image.DecompressionBombError):
        return False  # not readable: the format stays unknown


def open(root: Path, *, view: str | None = None, tolerance: float = 48.0) -> Source:
    """The Kaggle/pix2pix Cityscapes format: one JPEG per sample, photo left, colour mask right,
    in train/ and val/ (or directly in the folder). Colours map to the nearest Cityscapes colour
    within `tolerance`; farther colours are ignored. view='road' gives road vs everything else."""
    split_dirs = [d for d in SPLITS if (root / d).is_dir()]
    pairs, ignored = [], []
    for split in split_dirs or [None]:
        files, ig = list_files(root / split if split else root)
        ignored += ig
        for f in files.values():
            pairs.append(Pair(f, f, split or "train", "left", "right"))
    names = [n for n, _ in palettes.CITYSCAPES]
    colors = tuple(c for _, c in palettes.CITYSCAPES) + palettes.CITYSCAPES_VOID
    void = (IGNORE_INDEX,) * len(palettes.CITYSCAPES_VOID)
    if view == "road":
        classes = ClassSpec(("not_road", "road"), ((0, 0, 0), (128, 64, 128)))
        # Void colours are still "not road": only colours matching nothing are ignored.
        encoding = ColorMap(colors, tuple(int(n == "road") for n in names) + (0,) * len(void), tolerance, far="ignore")
    elif view in (None, ""):
        classes = ClassSpec(tuple(names), tuple(c for _, c in palettes.CITYSCAPES))
        encoding = ColorMap(colors, tuple(range(len(names))) + void, tolerance, far="ignore")
    else:
        raise BadArgument(f"Unknown view '{view}' for cityscapes-pairs. Available: road.")
    return Source("cityscapes-pairs", root, classes, encoding, pairs, ignored, [],
                  [f"colours map to the nearest Cityscapes colour within {tolerance:g}; farther ones are ignored"])
