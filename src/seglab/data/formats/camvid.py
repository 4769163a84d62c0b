"""CamVid, in the SegNet layout."""
from __future__ import annotations

from pathlib import Path

from seglab.core.errors import BadArgument
from seglab.data import palettes
from seglab.data.classes import IGNORE_INDEX, ClassSpec
from seglab.data.masks import ValueMap
from seglab.data.sources import Source, list_files, match_pairs, require_dir

NAME = "camvid"
SPLITS = ("train", "val", "test")


def detect(root: Path) -> bool:
    """Any split folder with its annotation folder beside it: a test-only copy is CamVid too."""
    return any((root / split).is_dir() and (root / f"{split}annot").is_dir() for split in SPLITS)


def open(root: Path, *, view: str | None = None) -> Source:
    """CamVid, SegNet layout: train/ trainannot/ val/ valannot/ test/ testannot/; 11 classes, 11 = void."""
    problems, pairs, ignored = [], [], []
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        images, ig1 = list_files(root / split)
        masks, ig2 = list_files(require_dir(root / f"{split}annot", f"CamVid's {split}/ needs its labels in {split}annot/"))
        ignored += ig1 + ig2
        pairs += match_pairs(images, masks, lambda _s, split=split: split, problems)
    if view == "road":
        road = [n for n, _ in palettes.CAMVID].index("road")
        classes = ClassSpec(("not_road", "road"), ((0, 0, 0), (128, 64, 128)))
        encoding = ValueMap({**{i: int(i == road) for i in range(len(palettes.CAMVID))}, palettes.CAMVID_VOID: IGNORE_INDEX})
    elif view in (None, ""):
        classes = ClassSpec(tuple(n for n, _ in palettes.CAMVID), tuple(c for _, c in palettes.CAMVID))
        encoding = ValueMap({**{i: i for i in range(len(palettes.CAMVID))}, palettes.CAMVID_VOID: IGNORE_INDEX})
    else:
        raise BadArgument(f"Unknown view '{view}' for camvid. Available: road.")
    return Source("camvid", root, classes, encoding, pairs, ignored, problems,
                  ["class 11 (void) is ignored"])
