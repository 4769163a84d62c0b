"""Your own folder: images/ and masks/ matched by file name, in any mask encoding."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.core.errors import BadArgument, DataError
from seglab.data.classes import IGNORE_INDEX, ClassSpec
from seglab.data.masks import ColorMap, ValueMap, palette_colors, read_raw_mask
from seglab.data.sources import Pair, Source, hash_split, list_tree, match_pairs

NAME = "folder"
IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "annotation")


def find_dir(root: Path, names) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _classes_file(root: Path) -> tuple[ClassSpec | None, bool]:
    """The ClassSpec written beside the data (classes.json, else a CSV colour table), and whether
    it gives colours that the masks are painted in."""
    f = root / "classes.json"
    if f.is_file():
        spec = ClassSpec.load(f)
        data = json.loads(f.read_text())
        return spec, isinstance(data, dict) and ("colors" in data or "names" not in data)
    spec = _read_color_table(root) or _read_labelmap(root)
    return spec, spec is not None


def _read_labelmap(root: Path) -> ClassSpec | None:
    """labelmap.txt as CVAT's "Segmentation mask 1.1" export writes it: `name:r,g,b:parts:actions`
    per class, `#` comments."""
    f = root / "labelmap.txt"
    if not f.is_file():
        return None
    names, colors = [], []
    for number, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            color = tuple(int(v) for v in rest.split(":")[0].split(","))
            if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise ValueError
        except ValueError:
            raise BadArgument(f"{f}: line {number} is not 'name:r,g,b:parts:actions' with colours 0..255: {line.strip()!r}.") from None
        names.append(name.strip())
        colors.append(color)
    if not names:
        raise BadArgument(f"{f}: no class lines ('name:r,g,b:parts:actions'); add one per class.")
    return ClassSpec(tuple(names), tuple(colors))


def _read_color_table(root: Path) -> ClassSpec | None:
    """class_dict.csv / colors.csv (name,r,g,b per row), as CamVid-on-Kaggle and others ship."""
    for name in ("class_dict.csv", "colors.csv", "classes.csv"):
        f = root / name
        if f.is_file():
            rows = [r for r in csv.reader(f.read_text(errors="replace").splitlines()) if r and r[0].strip()]
            if rows and not (len(rows[0]) > 1 and rows[0][1].strip().isdigit()):
                rows = rows[1:]  # header
            bad = next((i for i, r in enumerate(rows) if len(r) < 4), None)
            if not rows or bad is not None:
                row = f"row {bad + 1} has {len(rows[bad])} column(s)" if rows else "it has no class rows"
                raise BadArgument(f"{f}: expected one row per class, 'name,r,g,b' (a header line is allowed); {row}.")
            try:
                return ClassSpec(tuple(r[0].strip() for r in rows), tuple(tuple(int(v) for v in r[1:4]) for r in rows))
            except ValueError as e:
                raise BadArgument(f"{f}: expected rows 'name,r,g,b' with colours 0..255; {e}") from None
    return None


# Split folder names as datasets ship them (Roboflow's valid/, Kaggle's validation/), and the split each is.
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


def _split_dirs(folder: Path) -> dict[str, Path]:
    """{split: folder} for the split folders directly inside `folder`."""
    found = {}
    for name, split in SPLIT_NAMES.items():
        if (folder / name).is_dir() and split not in found:
            found[split] = folder / name
    return found


def _outer_splits(root: Path) -> dict[str, tuple[Path, Path]]:
    """{split: (images, masks)} for the layout with the split outside: train/images + train/masks."""
    found = {}
    for split, folder in _split_dirs(root).items():
        images, masks = find_dir(folder, IMAGE_DIRS), find_dir(folder, MASK_DIRS)
        if images is not None and masks is not None:
            found[split] = (images, masks)
    return found


def open(root: Path, *, classes: ClassSpec | None = None, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """Your own folder: images/ and masks/ paired by relative path without the extension, in
    subfolders too (images/cat/1.jpg with masks/cat/1.png), with the splits in either convention:
    images/train/ + masks/train/, or train/images/ + train/masks/ (val, valid or validation; test).
    Without split folders, val is a seeded share by name. An image may be a folder of band files
    (images/scene/B04.tiff ...; see seglab.data.rasters), paired with masks/scene.png. Masks may be
    index PNGs, palette PNGs, 0/255 binary (JPEG too: thresholded at half range), or RGB colours
    with a colour table (classes.json as {"name": [r, g, b]}, class_dict.csv, or CVAT's
    labelmap.txt). Class names come from `classes`, else classes.json, else the values found."""
    outer = _outer_splits(root)
    notes = []
    if outer:
        folders = {split: dirs for split, dirs in outer.items()}
        notes.append("layout: " + ", ".join(f"{d[0].parent.name}/{d[0].name} + {d[0].parent.name}/{d[1].name} ({split})"
                                             for split, d in folders.items()))
    else:
        img_dir, mask_dir = find_dir(root, IMAGE_DIRS), find_dir(root, MASK_DIRS)
        if img_dir is None or mask_dir is None:
            raise BadArgument(f"{root}: expected an images/ and a masks/ folder (files matched by name), or split "
                              "folders holding them (train/images + train/masks). "
                              f"Found: {', '.join(sorted(p.name for p in root.iterdir())) or 'nothing'}.")
        inner = _split_dirs(img_dir)
        folders = {split: (img, _split_dirs(mask_dir).get(split, mask_dir / img.name)) for split, img in inner.items()}
        if inner:
            notes.append("layout: " + ", ".join(f"{img_dir.name}/{d[0].name} + {mask_dir.name}/{d[1].name} ({split})"
                                                 for split, d in folders.items()))
        else:
            folders = {None: (img_dir, mask_dir)}
    problems, pairs, ignored = [], [], []
    nested = set()
    for split, (images_in, masks_in) in folders.items():
        masks, ig2 = list_tree(masks_in) if masks_in.is_dir() else ({}, [])
        images, ig1 = list_tree(images_in, samples=set(masks))
        ignored += ig1 + ig2
        nested |= {key.split("/")[0] for key in images if "/" in key}
        split_of = (lambda _s, split=split: split) if split else (lambda s: hash_split(s, val_fraction, seed))
        pairs += match_pairs(images, masks, split_of, problems)
    if None in folders:
        notes.append(f"no train/val folders: val is a seeded {val_fraction:.0%} split by name (seed {seed})")
    if nested:
        shown = sorted(nested)
        notes.append(f"images in {len(shown)} subfolders ({', '.join(shown[:6])}{', ...' if len(shown) > 6 else ''}), "
                     "paired with masks by relative path")

    has_colors = False
    if classes is None:
        classes, has_colors = _classes_file(root)
    classes, encoding = _detect_encoding(pairs, classes, has_colors, notes)
    return Source("folder", root, classes, encoding, pairs, ignored, problems, notes)


class ColorTableMissing(BadArgument):
    """Colour masks and no table saying which colour is which class; `masks` are the mask files,
    for `seglab check` to list their colours."""

    def __init__(self, message: str, masks: list[Path]):
        super().__init__(message)
        self.masks = masks


# Binary masks saved lossily (JPEG) keep nearly every pixel within this distance of 0 or full.
LOSSY_NEAR = 32
LOSSY_SHARE = 0.97


def _detect_encoding(pairs: list[Pair], classes: ClassSpec | None, has_colors: bool, notes: list[str]):
    """Work out how masks store classes from a sample of them."""
    sample = [p.mask for p in pairs[:: max(1, len(pairs) // 16)][:16]]
    modes, values, formats = Counter(), set(), Counter()
    grey = np.zeros(256, np.int64)  # 8-bit grey values of the sample (colour masks whose channels agree too)
    for m in sample:
        try:
            with Image.open(m) as im:
                modes[im.mode] += 1
                formats[im.format] += 1
            raw = read_raw_mask(m)
        except (DataError, OSError, Image.DecompressionBombError):
            continue  # reported per file by the check
        if raw.ndim == 2:
            values.update(np.unique(raw).tolist())
        if raw.ndim == 3 and _nearly_grey(raw):
            raw = raw.mean(-1).round().astype(np.uint8)
        if raw.ndim == 2 and raw.dtype == np.uint8:
            grey += np.bincount(raw.ravel(), minlength=256)
    mode = modes.most_common(1)[0][0] if modes else "L"

    lossy = _lossy_binary(grey, values)
    if lossy is not None and (classes is None or classes.num_classes == 2):
        between, total = lossy
        notes.append(f"warning: binary masks stored lossily ({', '.join(sorted(f for f in formats if f))}): {between:,} of "
                     f"{total:,} pixels in {len(sample)} masks sampled are neither 0 nor 255; read by thresholding at 128 "
                     "(save masks as PNG to keep them exact)")
        classes = classes or ClassSpec(("background", "foreground"), ((0, 0, 0), (255, 255, 255)))
        return classes, ValueMap.threshold()
    if mode in ("RGB", "RGBA") and not values:
        if classes is None or not has_colors:
            raise ColorTableMissing(f"{sample[0].parent}: masks are RGB colour images, so a colour table is needed: "
                                    'write classes.json as {"background": [0, 0, 0], "cat": [255, 0, 0], ...} or '
                                    "class_dict.csv with rows name,r,g,b. `seglab check DATA` lists the colours in the "
                                    "masks, and `seglab check DATA --write-classes` writes a classes.json of them to name.",
                                    [p.mask for p in pairs])
        notes.append("RGB colour masks read with the colour table (nearest colour within 48)")
        return classes, ColorMap(classes.colors, tuple(range(classes.num_classes)), far="error")
    if classes is None and values and values <= {0, 255} and 255 in values:
        notes.append("0/255 binary masks: 255 is the foreground")
        return ClassSpec(("background", "foreground"), ((0, 0, 0), (255, 255, 255))), ValueMap({0: 0, 255: 1}, kind="binary")
    if classes is not None and classes.num_classes == 2 and values and values <= {0, 255} and 255 in values:
        notes.append("0/255 binary masks: 255 is the second class")
        return classes, ValueMap({0: 0, 255: 1}, kind="binary")
    kind = "palette" if mode == "P" else "index"
    if classes is None:
        found = sorted(v for v in values if v != IGNORE_INDEX)
        count = (max(found) + 1) if found else 1
        colors = palette_colors(sample[0], count) if mode == "P" else None
        classes = ClassSpec(tuple(f"class_{i}" for i in range(count)), tuple(colors or ()))
        notes.append(f"no classes.json: {count} classes inferred from the mask values; name them with classes.json or --classes")
    elif mode == "P" and not has_colors:
        colors = palette_colors(sample[0], classes.num_classes)
        classes = ClassSpec(classes.names, tuple(colors or ()), classes.ignore_index)
    return classes, ValueMap.identity(classes, kind)


def _nearly_grey(raw: np.ndarray) -> bool:
    """A colour mask whose channels agree within JPEG's chroma noise: a grey mask saved as RGB."""
    spread = raw.max(-1).astype(np.int16) - raw.min(-1)
    return bool((spread <= 24).mean() >= 0.995)


def _lossy_binary(grey: np.ndarray, values: set) -> tuple[int, int] | None:
    """(pixels neither 0 nor 255, pixels) where the sample looks like 0/255 masks after lossy
    compression: values other than 0 and 255, and nearly all pixels near one of them; else None."""
    total = int(grey.sum())
    near_black, near_white = int(grey[:LOSSY_NEAR].sum()), int(grey[256 - LOSSY_NEAR:].sum())
    if not total or not near_black or not near_white or np.count_nonzero(grey) <= 2:
        return None
    if (near_black + near_white) / total < LOSSY_SHARE:
        return None
    return total - int(grey[0]) - int(grey[255]), total


def detect(root: Path) -> bool:
    return (find_dir(root, IMAGE_DIRS) is not None and find_dir(root, MASK_DIRS) is not None) or bool(_outer_splits(root))
