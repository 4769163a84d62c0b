"""Find (image, mask) pairs, their splits and their classes in the dataset layouts people use.

Each format is a function `path -> Source`, registered in FORMATS; `open_source` picks one by
name or recognises it from the folder.
"""
from __future__ import annotations

import csv
import hashlib
import inspect
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from seglab.data import palettes, synthetic
from seglab.data.classes import IGNORE_INDEX, ClassSpec
from seglab.data.images import IMAGE_EXTENSIONS
from seglab.data.masks import ColorMap, MaskEncoding, ValueMap, palette_colors, read_raw_mask
from seglab.errors import DataError, Problem


@dataclass(frozen=True)
class Pair:
    """One sample: an image file, its mask file and its split. `region` names the half of a
    side-by-side file ('left' photo / 'right' mask) for formats that store both in one file."""

    image: Path
    mask: Path
    split: str
    image_region: str | None = None
    mask_region: str | None = None

    @property
    def name(self) -> str:
        return self.image.stem


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

    def split(self, name: str) -> list[Pair]:
        """The pairs of split `name`; a clear error lists the splits there are."""
        pairs = [p for p in self.pairs if p.split == name]
        if not pairs:
            raise ValueError(f"{self.root}: no pairs in split '{name}'. Splits here: {', '.join(self.splits) or 'none'}.")
        return pairs

    @property
    def splits(self) -> dict[str, int]:
        counts = Counter(p.split for p in self.pairs)
        order = ["train", "val", "test"]
        return {k: counts[k] for k in sorted(counts, key=lambda s: (order.index(s) if s in order else 9, s))}


# --- helpers ---------------------------------------------------------------------------------

def hash_split(stem: str, val_fraction: float, seed: int) -> str:
    """'val' for a stable `val_fraction` of names, else 'train'. Hashing the name (not shuffling a
    list) keeps each pair in its split when files are added or removed."""
    digest = hashlib.sha1(f"{seed}:".encode() + os.fsencode(stem)).digest()  # any file name, even not UTF-8
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def _list_files(folder: Path) -> tuple[dict[str, Path], list[Path]]:
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


def _match(images: dict[str, Path], masks: dict[str, Path], split_of: Callable[[str], str | None],
           problems: list[Problem]) -> list[Pair]:
    """Pairs by file stem; images without masks and masks without images become problems."""
    pairs = []
    for stem, img in images.items():
        if stem not in masks:
            problems.append(Problem(str(img), "image has no mask (expected a mask file with the same name); add one or remove the image."))
            continue
        split = split_of(stem)
        if split is not None:
            pairs.append(Pair(img, masks[stem], split))
    for stem, m in masks.items():
        if stem not in images:
            problems.append(Problem(str(m), "mask has no image (expected an image file with the same name); add it or remove the mask."))
    return pairs


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ValueError(f"{path}: folder not found; {what}.")
    return path


# --- formats ---------------------------------------------------------------------------------

def oxford_pets(root: Path, *, view: str | None = None, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """Oxford-IIIT Pet, official layout: images/*.jpg, annotations/trimaps/*.png, optional
    annotations/trainval.txt and test.txt. Classes pet, background, border (trimap codes 1, 2, 3);
    view='binary' gives background vs pet (border counted as pet)."""
    images_dir = _require_dir(root / "images", "Oxford-IIIT Pet needs images/ and annotations/trimaps/")
    trimaps_dir = _require_dir(root / "annotations" / "trimaps", "Oxford-IIIT Pet needs images/ and annotations/trimaps/")
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
    pairs = _match(images, masks, split_of, problems)
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
        raise ValueError(f"Unknown view '{view}' for oxford-pets. Available: binary, trimap.")
    return Source("oxford-pets", root, classes, encoding, pairs, ignored, problems, notes)


def camvid(root: Path, *, view: str | None = None) -> Source:
    """CamVid, SegNet layout: train/ trainannot/ val/ valannot/ test/ testannot/; 11 classes, 11 = void."""
    problems, pairs, ignored = [], [], []
    for split in ("train", "val", "test"):
        if not (root / split).is_dir():
            continue
        images, ig1 = _list_files(root / split)
        masks, ig2 = _list_files(_require_dir(root / f"{split}annot", f"CamVid's {split}/ needs its labels in {split}annot/"))
        ignored += ig1 + ig2
        pairs += _match(images, masks, lambda _s, split=split: split, problems)
    if view == "road":
        road = [n for n, _ in palettes.CAMVID].index("road")
        classes = ClassSpec(("not_road", "road"), ((0, 0, 0), (128, 64, 128)))
        encoding = ValueMap({**{i: int(i == road) for i in range(len(palettes.CAMVID))}, palettes.CAMVID_VOID: IGNORE_INDEX})
    elif view in (None, ""):
        classes = ClassSpec(tuple(n for n, _ in palettes.CAMVID), tuple(c for _, c in palettes.CAMVID))
        encoding = ValueMap({**{i: i for i in range(len(palettes.CAMVID))}, palettes.CAMVID_VOID: IGNORE_INDEX})
    else:
        raise ValueError(f"Unknown view '{view}' for camvid. Available: road.")
    return Source("camvid", root, classes, encoding, pairs, ignored, problems,
                  ["class 11 (void) is ignored"])


def cityscapes_pairs(root: Path, *, view: str | None = None, tolerance: float = 48.0) -> Source:
    """The Kaggle/pix2pix Cityscapes format: one JPEG per sample, photo left, colour mask right,
    in train/ and val/ (or directly in the folder). Colours map to the nearest Cityscapes colour
    within `tolerance`; farther colours are ignored. view='road' gives road vs everything else."""
    split_dirs = [d for d in ("train", "val", "test") if (root / d).is_dir()]
    pairs, ignored = [], []
    for split in split_dirs or [None]:
        files, ig = _list_files(root / split if split else root)
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
        raise ValueError(f"Unknown view '{view}' for cityscapes-pairs. Available: road.")
    return Source("cityscapes-pairs", root, classes, encoding, pairs, ignored, [],
                  [f"colours map to the nearest Cityscapes colour within {tolerance:g}; farther ones are ignored"])


_IMAGE_DIRS = ("images", "image", "imgs", "img")
_MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "annotation")


def _find_dir(root: Path, names) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _classes_file(root: Path) -> tuple[ClassSpec | None, bool]:
    """The ClassSpec written beside the data (classes.json, else a CSV colour table), and whether
    it gives colours that the masks are painted in."""
    f = root / "classes.json"
    if f.is_file():
        spec = ClassSpec.load(f)
        data = json.loads(f.read_text())
        return spec, isinstance(data, dict) and ("colors" in data or "names" not in data)
    spec = _read_color_table(root)
    return spec, spec is not None


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
                raise ValueError(f"{f}: expected one row per class, 'name,r,g,b' (a header line is allowed); {row}.")
            try:
                return ClassSpec(tuple(r[0].strip() for r in rows), tuple(tuple(int(v) for v in r[1:4]) for r in rows))
            except ValueError as e:
                raise ValueError(f"{f}: expected rows 'name,r,g,b' with colours 0..255; {e}") from None
    return None


def folder(root: Path, *, classes: ClassSpec | None = None, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """Your own folder: images/ and masks/ matched by file stem (optionally with train/ val/ test/
    inside each). Masks may be index PNGs, palette PNGs, 0/255 binary, or RGB colours with a colour
    table (classes.json as {"name": [r, g, b]} or class_dict.csv). Class names come from
    `classes`, else classes.json, else the values found."""
    img_dir = _find_dir(root, _IMAGE_DIRS)
    mask_dir = _find_dir(root, _MASK_DIRS)
    if img_dir is None or mask_dir is None:
        raise ValueError(f"{root}: expected an images/ and a masks/ folder (files matched by name). "
                         f"Found: {', '.join(sorted(p.name for p in root.iterdir())) or 'nothing'}.")
    split_dirs = [d for d in ("train", "val", "test") if (img_dir / d).is_dir()]
    problems, pairs, ignored, notes = [], [], [], []
    for split in split_dirs or [None]:
        images, ig1 = _list_files(img_dir / split if split else img_dir)
        masks, ig2 = _list_files(mask_dir / split if split else mask_dir)
        ignored += ig1 + ig2
        split_of = (lambda _s, split=split: split) if split else (lambda s: hash_split(s, val_fraction, seed))
        pairs += _match(images, masks, split_of, problems)
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
            raise ValueError(f"{sample[0].parent}: masks are RGB colour images, so a colour table is needed: "
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


def coco(root: Path, *, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """COCO instance annotations (annotations/instances_<split>.json) read as semantic masks: class 0
    background, then the categories in id order; crowd regions ignored. See `seglab.data.coco`."""
    from seglab.data import coco as cc

    files = cc.annotation_files(root)
    if not files:
        raise ValueError(f"{root}: no annotations/instances_*.json found (the COCO layout).")
    pairs, problems, notes = [], [], []
    classes = index_of = first = None
    for split, path in files.items():
        data = cc.read_coco(path)
        spec, index = cc.coco_classes(data)
        if classes is None:
            classes, index_of, first = spec, index, path
        elif spec.names != classes.names:
            raise ValueError(f"{path}: its categories differ from those of {first}; give one dataset per category set.")
        images = cc.image_folder(root, path, data)
        if images is None:
            example = data.images[0]["file_name"] if data.images else "?"
            raise ValueError(f"{path}: cannot find the images it names (e.g. {example}) in {root}/<split>/, "
                             f"{root}/images/<split>/ or {root}/images/.")
        problems += cc.check_images(data, images)
        masks = cc.mask_cache(path)
        cc.draw_masks(data, masks, index_of)
        for image in data.images:
            stem = Path(image["file_name"]).stem
            if (images / image["file_name"]).is_file():
                pair_split = hash_split(stem, val_fraction, seed) if len(files) == 1 else split
                pairs.append(Pair(images / image["file_name"], masks / f"{stem}.png", pair_split))
        notes.append(cc.describe(data))
    if len(files) == 1:
        notes.append(f"one annotation file: val is a seeded {val_fraction:.0%} split of its images by name (seed {seed})")
    return Source("coco", root, classes, ValueMap.identity(classes), pairs, [], problems, notes)


def synthetic_source(root: Path | None = None, *, classes: ClassSpec | None = None, val_fraction: float = 0.2,
                     seed: int = 0) -> Source:
    """The built-in shapes dataset, generated once into a cache folder (or `root`) and read as a folder."""
    path = synthetic.ensure(root)
    src = folder(path, classes=classes, val_fraction=val_fraction, seed=seed)
    src.format = "synthetic"
    return src


FORMATS: dict[str, Callable[..., Source]] = {
    "oxford-pets": oxford_pets,
    "camvid": camvid,
    "cityscapes-pairs": cityscapes_pairs,
    "folder": folder,
    "coco": coco,
    "synthetic": synthetic_source,
}


def detect_format(root: Path) -> str:
    """The format of the folder `root`, from its layout."""
    if (root / "annotations" / "trimaps").is_dir() and (root / "images").is_dir():
        return "oxford-pets"
    if any((root / "annotations").glob("instances_*.json")):
        return "coco"
    if any((root / split).is_dir() and (root / f"{split}annot").is_dir() for split in ("train", "val", "test")):
        return "camvid"
    if _find_dir(root, _IMAGE_DIRS) and _find_dir(root, _MASK_DIRS):
        return "synthetic" if (root / synthetic.MARKER).is_file() else "folder"
    folders = (root, root / "train", root / "val", root / "test")
    images = [f for d in folders if d.is_dir() for f in sorted(d.iterdir()) if f.suffix.lower() in (".jpg", ".jpeg")]
    if images:
        try:
            with Image.open(images[0]) as im:
                if im.width == 2 * im.height:
                    return "cityscapes-pairs"
        except (OSError, Image.DecompressionBombError):
            pass  # not readable: the format stays unknown, said below
    raise ValueError(f"{root}: cannot tell the dataset format from its layout. Expected one of: "
                     "oxford-pets (images/ + annotations/trimaps/), camvid (train/ + trainannot/), "
                     "folder (images/ + masks/), coco (annotations/instances_*.json), cityscapes-pairs (side-by-side JPEGs). "
                     f"Name it with --format ({', '.join(FORMATS)}).")


# Options of the split a format makes itself: given to the formats that make one, and not an
# error for the formats whose split comes with the data.
SPLIT_OPTIONS = ("val_fraction", "seed")


def format_options(format: str) -> list[str]:
    """The keyword options that the format `format` takes."""
    return [name for name, p in inspect.signature(FORMATS[format]).parameters.items() if p.kind is p.KEYWORD_ONLY]


def open_source(path=None, format: str | None = None, **options) -> Source:
    """Open a dataset. `path` None or 'synthetic' gives the built-in dataset; `format` None
    recognises the layout. Options (None means not given): view ('binary', 'road'), classes
    (ClassSpec or names), val_fraction, seed, tolerance; one a format does not take is a ValueError."""
    options = {k: v for k, v in options.items() if v is not None}
    if not 0 <= options.get("val_fraction", 0) < 1:
        raise ValueError(f"val_fraction must be between 0 and 1; got {options['val_fraction']}.")
    if isinstance(options.get("classes"), (list, tuple)):
        options["classes"] = ClassSpec(tuple(options["classes"]))
    if path is None or (str(path) == "synthetic" and not Path(path).exists()):
        root, format = None, "synthetic"
    else:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder. Give a dataset folder, or 'synthetic' for the built-in dataset.")
        format = format or detect_format(root)
    if format not in FORMATS:
        raise ValueError(f"Unknown format '{format}'. Available: {', '.join(sorted(FORMATS))}.")
    takes = format_options(format)
    unknown = sorted(k for k in options if k not in takes and k not in SPLIT_OPTIONS)
    if unknown:
        raise ValueError(f"The {format} format does not take {', '.join(unknown)}"
                         f"{' (' + repr(options['view']) + ')' if 'view' in unknown else ''}. "
                         f"It takes: {', '.join(takes) or 'no options'}.")
    return FORMATS[format](root, **{k: v for k, v in options.items() if k in takes})
