"""COCO instance annotations as a semantic-segmentation dataset.

Layout: `annotations/instances_<split>.json` beside the image folders its `file_name`s live in
(`<split>/`, `images/<split>/` or `images/`). Each image's instances are drawn into one class-index
mask: 0 background, 1..K the categories in id order; crowd regions become 255 (ignore); where
instances overlap, the smaller one is drawn on top. The masks are drawn once into a cache folder
($SEGLAB_CACHE, default ~/.cache/seglab) keyed by the annotation file, so the rest of seglab reads
them as an ordinary folder of index PNGs.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.core.errors import BadArgument, Problem
from seglab.data.classes import IGNORE_INDEX, ClassSpec
from seglab.data.rle import segmentation_problem, segmentation_to_mask

MASK_VERSION = 1  # bump when the drawing rules change, so cached masks are redrawn


@dataclass
class CocoFile:
    """A parsed, checked COCO instances file."""
    path: Path
    images: list[dict]
    annotations: list[dict]
    categories: list[dict]  # sorted by id

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.categories]

    def counts(self) -> dict:
        crowd = sum(1 for a in self.annotations if a.get("iscrowd"))
        return {"images": len(self.images), "categories": len(self.categories),
                "instances": len(self.annotations) - crowd, "crowd_regions": crowd}


def read_coco(path) -> CocoFile:
    """Read a COCO instances JSON file; a clear error for anything else."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadArgument(f"{path}: cannot read it as JSON ({e}). Expected a COCO instances file.") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data
               or not isinstance(data[k], list)]
    if missing:
        raise BadArgument(f"{path}: not a COCO instances file: no {', '.join(repr(k) for k in missing)} "
                         "(expected the keys images, annotations and categories, as instances_val2017.json has).")
    for key, needed in (("images", ("id", "file_name", "height", "width")),
                        ("annotations", ("image_id", "category_id", "segmentation")), ("categories", ("id", "name"))):
        bad = next((item for item in data[key] if not isinstance(item, dict) or not all(n in item for n in needed)), None)
        if bad is not None:
            lacks = needed if not isinstance(bad, dict) else [n for n in needed if n not in bad]
            raise BadArgument(f"{path}: an entry of '{key}' lacks {', '.join(lacks)}: "
                             f"{str(bad)[:120]}")
    for ann in data["annotations"]:
        problem = segmentation_problem(ann["segmentation"])
        if problem:
            raise BadArgument(f"{path}: annotation {ann.get('id', '?')} (image {ann['image_id']}): {problem}. "
                             "Fix or remove that annotation.")
    return CocoFile(path, data["images"], data["annotations"], sorted(data["categories"], key=lambda c: c["id"]))


def annotation_files(root: Path) -> dict[str, Path]:
    """split name -> instances file, from root/annotations/instances_<name>.json."""
    found = {}
    for path in sorted((root / "annotations").glob("instances_*.json")):
        name = path.stem.removeprefix("instances_")
        split = next((s for s in ("train", "val", "test") if name.startswith(s)), name)
        found[split] = path
    return found


def image_folder(root: Path, annotation_file: Path, coco: CocoFile) -> Path | None:
    """The folder holding the images that `coco` names."""
    name = annotation_file.stem.removeprefix("instances_")
    for folder in (root / name, root / "images" / name, root / "images", root):
        if folder.is_dir() and coco.images and (folder / coco.images[0]["file_name"]).is_file():
            return folder
    return None


def semantic_mask(coco: CocoFile, image: dict, annotations: list[dict], index_of: dict[int, int]) -> np.ndarray:
    """One image's instances as class indices uint8 [H, W] (crowd: ignore; small on top of large)."""
    height, width = int(image["height"]), int(image["width"])
    mask = np.zeros((height, width), np.uint8)
    crowd = np.zeros((height, width), bool)
    for ann in sorted(annotations, key=lambda a: -float(a.get("area", 0))):
        region = segmentation_to_mask(ann["segmentation"], height, width)
        if ann.get("iscrowd"):
            crowd |= region
        else:
            mask[region] = index_of[ann["category_id"]]
    mask[crowd & (mask == 0)] = IGNORE_INDEX  # a labelled instance inside a crowd region keeps its label
    return mask


def mask_cache(annotation_file: Path) -> Path:
    stat = annotation_file.stat()
    key = hashlib.sha1(f"{annotation_file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{MASK_VERSION}".encode()).hexdigest()
    cache = Path(os.environ.get("SEGLAB_CACHE", Path.home() / ".cache" / "seglab"))
    return cache / "coco-masks" / key[:16]


def draw_masks(coco: CocoFile, folder: Path, index_of: dict[int, int]) -> None:
    """Draw every image's mask PNG into `folder` (once; a finished folder holds a DONE marker)."""
    if (folder / "DONE").is_file():
        return
    from seglab.core.progress import progress

    folder.mkdir(parents=True, exist_ok=True)
    by_image = defaultdict(list)
    for ann in coco.annotations:
        by_image[ann["image_id"]].append(ann)
    for image in progress(coco.images, len(coco.images), f"drawing COCO masks ({coco.path.name})"):
        mask = semantic_mask(coco, image, by_image[image["id"]], index_of)
        tmp = folder / f".{Path(image['file_name']).stem}.tmp{os.getpid()}.png"  # two processes may draw at once
        Image.fromarray(mask).save(tmp)
        tmp.replace(folder / f"{Path(image['file_name']).stem}.png")
    (folder / "DONE").write_text("ok\n")


def coco_classes(coco: CocoFile) -> tuple[ClassSpec, dict[int, int]]:
    """ClassSpec (background first, then the categories in id order) and category id -> index."""
    return ClassSpec(("background", *coco.names)), {c["id"]: i + 1 for i, c in enumerate(coco.categories)}


def describe(coco: CocoFile) -> str:
    c = coco.counts()
    per_category = Counter(a["category_id"] for a in coco.annotations if not a.get("iscrowd"))
    top = ", ".join(f"{cat['name']} {per_category[cat['id']]}" for cat in
                    sorted(coco.categories, key=lambda cat: -per_category[cat["id"]])[:5])
    return (f"COCO instances ({coco.path.name}): {c['images']} images, {c['categories']} categories, "
            f"{c['instances']} instances and {c['crowd_regions']} crowd regions (crowd pixels are ignored); "
            f"most instances: {top}")


def check_images(coco: CocoFile, folder: Path) -> list[Problem]:
    return [Problem(str(folder / image["file_name"]), "listed in the annotations but not found")
            for image in coco.images if not (folder / image["file_name"]).is_file()]
