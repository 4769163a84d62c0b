"""COCO instance annotations read as a semantic dataset (the COCO file logic: `seglab.data.coco`)."""
from __future__ import annotations

from pathlib import Path

from seglab.core.errors import BadArgument
from seglab.data import coco as cc
from seglab.data.masks import ValueMap
from seglab.data.sources import Pair, Source, hash_split

NAME = "coco"


def detect(root: Path) -> bool:
    return any((root / "annotations").glob("instances_*.json"))


def open(root: Path, *, val_fraction: float = 0.2, seed: int = 0) -> Source:
    """COCO instance annotations (annotations/instances_<split>.json) read as semantic masks: class 0
    background, then the categories in id order; crowd regions ignored. See `seglab.data.coco`."""
    files = cc.annotation_files(root)
    if not files:
        raise BadArgument(f"{root}: no annotations/instances_*.json found (the COCO layout).")
    pairs, problems, notes = [], [], []
    classes = index_of = first = None
    for split, path in files.items():
        data = cc.read_coco(path)
        spec, index = cc.coco_classes(data)
        if classes is None:
            classes, index_of, first = spec, index, path
        elif spec.names != classes.names:
            raise BadArgument(f"{path}: its categories differ from those of {first}; give one dataset per category set.")
        images = cc.image_folder(root, path, data)
        if images is None:
            example = data.images[0]["file_name"] if data.images else "?"
            raise BadArgument(f"{path}: cannot find the images it names (e.g. {example}) in {root}/<split>/, "
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
