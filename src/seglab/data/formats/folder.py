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
from seglab.data.sources import Pair, Source, hash_split, list_files, match_pairs

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


def open(root: Path, *, classes: ClassSpec | None = None, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """Your own folder: images/ and masks/ matched by file stem (optionally with train/ val/ test/
    inside each). An image may be a folder of band files (images/scene/B04.tiff ...; see
    seglab.data.rasters), paired with masks/scene.png. Masks may be index PNGs, palette PNGs, 0/255
    binary, or RGB colours with a colour table (classes.json as {"name": [r, g, b]}, class_dict.csv,
    or CVAT's labelmap.txt). Class names come from
    `classes`, else classes.json, else the values found."""
    img_dir = find_dir(root, IMAGE_DIRS)
    mask_dir = find_dir(root, MASK_DIRS)
    if img_dir is None or mask_dir is None:
        raise BadArgument(f"{root}: expected an images/ and a masks/ folder (files matched by name). "
                         f"Found: {', '.join(sorted(p.name for p in root.iterdir())) or 'nothing'}.")
    split_dirs = [d for d in ("train", "val", "test") if (img_dir / d).is_dir()]
    problems, pairs, ignored, notes = [], [], [], []
    for split in split_dirs or [None]:
        images, ig1 = list_files(img_dir / split if split else img_dir, band_folders=True)
        masks, ig2 = list_files(mask_dir / split if split else mask_dir)
        ignored += ig1 + ig2
        split_of = (lambda _s, split=split: split) if split else (lambda s: hash_split(s, val_fraction, seed))
        pairs += match_pairs(images, masks, split_of, problems)
    if not split_dirs:
        notes.append(f"no train/val folders: val is a seeded {val_fraction:.0%} split by name (seed {seed})")

    has_colors = False
    if classes is None:
        classes, has_colors = _classes_file(root)
    classes, encoding = _detect_encoding(pairs, classes, has_colors, notes)
    return Source("folder", root, classes, encoding, pairs, ignored, problems, notes)


def _detect_encoding(pairs: list[Pair], classes: ClassSpec | None, has_colors: bool, notes: list[str]):
    """Work out how masks store classes from a sample of them."""
    sample = [p.mask for p in pairs[:: max(1, len(pairs) // 16)][:16]]
    modes, values = Counter(), set()
    for m in sample:
        try:
            with Image.open(m) as im:
                modes[im.mode] += 1
            raw = read_raw_mask(m)
        except (DataError, OSError, Image.DecompressionBombError):
            continue  # reported per file by the check
        if raw.ndim == 2:
            values.update(np.unique(raw).tolist())
    mode = modes.most_common(1)[0][0] if modes else "L"

    if mode in ("RGB", "RGBA") and not values:
        if classes is None or not has_colors:
            raise BadArgument(f"{sample[0].parent}: masks are RGB colour images, so a colour table is needed: "
                             'write classes.json as {"background": [0, 0, 0], "cat": [255, 0, 0], ...} '
                             "or class_dict.csv with rows name,r,g,b.")
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


def detect(root: Path) -> bool:
    return find_dir(root, IMAGE_DIRS) is not None and find_dir(root, MASK_DIRS) is not None
