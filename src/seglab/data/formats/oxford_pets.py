"""Oxford-IIIT Pet, in its official layout."""
from __future__ import annotations

from pathlib import Path

from seglab.core.errors import BadArgument, Problem
from seglab.data import palettes
from seglab.data.classes import ClassSpec
from seglab.data.masks import ValueMap
from seglab.data.sources import Source, hash_split, match_pairs, require_dir

NAME = "oxford-pets"


def detect(root: Path) -> bool:
    return (root / "annotations" / "trimaps").is_dir() and (root / "images").is_dir()


def open(root: Path, *, view: str | None = None, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """Oxford-IIIT Pet, official layout: images/*.jpg, annotations/trimaps/*.png, optional
    annotations/trainval.txt and test.txt. Classes pet, background, border (trimap codes 1, 2, 3);
    view='binary' gives background vs pet (border counted as pet)."""
    images_dir = require_dir(root / "images", "Oxford-IIIT Pet needs images/ and annotations/trimaps/")
    trimaps_dir = require_dir(root / "annotations" / "trimaps", "Oxford-IIIT Pet needs images/ and annotations/trimaps/")
    # The official reader takes *.jpg only; the tarball also holds .mat files beside them.
    images, ignored = {}, []
    for f in sorted(images_dir.iterdir()):
        if f.suffix.lower() == ".jpg":
            images[f.stem] = f
        else:
            ignored.append(f)
    masks = {f.stem: f for f in sorted(trimaps_dir.iterdir()) if f.suffix.lower() == ".png" and not f.name.startswith("._")}
    ignored += [f for f in trimaps_dir.iterdir() if f.suffix.lower() != ".png" or f.name.startswith("._")]

    listed = {}
    for split_file, split in (("trainval.txt", "trainval"), ("test.txt", "test")):
        f = root / "annotations" / split_file
        if f.is_file():
            for line in f.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    listed[line.split()[0]] = split
    notes = []
    if listed:
        notes.append(f"official split from annotations/trainval.txt{' and test.txt' if 'test' in listed.values() else ''}; "
                     f"val is a seeded {val_fraction:.0%} of trainval (seed {seed})")

    def split_of(stem):
        if not listed:
            return hash_split(stem, val_fraction, seed)
        s = listed.get(stem)
        return None if s is None else ("test" if s == "test" else hash_split(stem, val_fraction, seed))

    problems: list[Problem] = []
    pairs = match_pairs(images, masks, split_of, problems)
    unlisted = sum(1 for stem in images if stem in masks and listed and stem not in listed)
    if unlisted:
        notes.append(f"{unlisted} pairs are in neither trainval.txt nor test.txt and were left out")
    for stem in sorted(set(listed) - set(images)):
        problems.append(Problem(str(images_dir / f"{stem}.jpg"), "listed in the split files but missing; restore it or remove its line."))

    if view == "binary":
        classes = ClassSpec(("background", "pet"), ((0, 0, 0), (255, 128, 0)))
        encoding = ValueMap({1: 1, 2: 0, 3: 1}, kind="trimap")
    elif view in (None, "", "trimap"):
        classes = ClassSpec(tuple(palettes.OXFORD_TRIMAP.values()), ((255, 128, 0), (0, 0, 0), (255, 255, 255)))
        encoding = ValueMap({code: i for i, code in enumerate(palettes.OXFORD_TRIMAP)}, kind="trimap")
    else:
        raise BadArgument(f"Unknown view '{view}' for oxford-pets. Available: binary, trimap.")
    return Source("oxford-pets", root, classes, encoding, pairs, ignored, problems, notes)
