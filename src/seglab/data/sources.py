"""What every dataset format produces: (image, mask) pairs with their splits, in a `Source`; and
the helpers the formats share to find them. The formats themselves live in `seglab.data.formats`.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from seglab.core.errors import BadArgument, Problem
from seglab.data.bands import RGB8, Bands
from seglab.data.classes import ClassSpec
from seglab.data.images import IMAGE_EXTENSIONS, is_band_folder
from seglab.data.masks import MaskEncoding


@dataclass(frozen=True)
class Pair:
    """One sample: an image file, its mask file and its split. `region` names the half of a
    side-by-side file ('left' photo / 'right' mask) for formats that store both in one file."""

    image: Path
    mask: Path
    split: str
    image_region: str | None = None
    mask_region: str | None = None
    key: str | None = None  # the relative path it was paired by, where it lies in subfolders ("cat/1")

    @property
    def name(self) -> str:
        if self.key:  # in subfolders: the same file name may be in two of them
            return self.key.replace("/", "_")
        return self.image.name if self.image.is_dir() else self.image.stem  # a folder of bands: its whole name


@dataclass
class Source:
    """A dataset on disk: its pairs (all splits), classes, mask encoding and what was found beside them."""

    format: str
    root: Path
    classes: ClassSpec
    encoding: MaskEncoding
    pairs: list[Pair]
    ignored_files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # found while listing: orphans, missing files
    notes: list[str] = field(default_factory=list)
    bands: Bands = RGB8  # what a model reads of each image (seglab.data.bands.choose_bands)

    def split(self, name: str) -> list[Pair]:
        """The pairs of split `name`; a clear error lists the splits there are."""
        pairs = [p for p in self.pairs if p.split == name]
        if not pairs:
            raise BadArgument(f"{self.root}: no pairs in split '{name}'. Splits here: {', '.join(self.splits) or 'none'}.")
        return pairs

    @property
    def splits(self) -> dict[str, int]:
        counts = Counter(p.split for p in self.pairs)
        order = ["train", "val", "test"]
        return {k: counts[k] for k in sorted(counts, key=lambda s: (order.index(s) if s in order else 9, s))}


def hash_split(stem: str, val_fraction: float, seed: int) -> str:
    """'val' for a stable `val_fraction` of names, else 'train'. Hashing the name (not shuffling a
    list) keeps each pair in its split when files are added or removed."""
    digest = hashlib.sha1(f"{seed}:".encode() + os.fsencode(stem)).digest()  # any file name, even not UTF-8
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def list_files(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """Image files of `folder` by stem, and the other (ignored) files."""
    images, ignored = {}, []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
            images[f.stem] = f
        elif f.is_file():
            ignored.append(f)
    return images, ignored


def list_tree(folder: Path, samples=frozenset(), prefix: str = "") -> tuple[dict[str, Path], list[Path]]:
    """Image files of `folder` and its subfolders by relative path without the extension ("cat/1"
    for cat/1.jpg), and the other (ignored) files. A subfolder named in `samples` (a mask is named
    after it) and holding image files is one sample stored band by band (`seglab.data.rasters`),
    not a folder to enter."""
    images, ignored = {}, []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            continue
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
            images[prefix + f.stem] = f
        elif f.is_dir() and prefix + f.name in samples and is_band_folder(f):
            images[prefix + f.name] = f
        elif f.is_dir() and not f.is_symlink():  # a link could loop back
            inner, skipped = list_tree(f, samples, f"{prefix}{f.name}/")
            images.update(inner)
            ignored += skipped
        elif f.is_file():
            ignored.append(f)
    return images, ignored


def match_pairs(images: dict[str, Path], masks: dict[str, Path], split_of: Callable[[str], str | None],
           problems: list[Problem]) -> list[Pair]:
    """Pairs by file stem; images without masks and masks without images become problems."""
    pairs = []
    for stem, img in images.items():
        if stem not in masks:
            problems.append(Problem(str(img), "image has no mask (expected a mask file with the same name); add one or remove the image."))
            continue
        split = split_of(stem)
        if split is not None:
            pairs.append(Pair(img, masks[stem], split, key=stem if "/" in stem else None))
    for stem, m in masks.items():
        if stem not in images:
            problems.append(Problem(str(m), "mask has no image (expected an image file with the same name); add it or remove the mask."))
    return pairs


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise BadArgument(f"{path}: folder not found; {what}.")
    return path
