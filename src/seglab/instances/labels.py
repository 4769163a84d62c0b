"""The COCO label map (category id -> name) that the detection-zoo models predict: the 80
categories of COCO 2017 under their original ids 1..90, shipped inside the package."""
from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def coco_labels() -> dict[int, str]:
    data = json.loads(resources.files("seglab.instances").joinpath("coco_labels.json").read_text())
    return {int(k): v for k, v in data.items()}


def label_name(category_id: int) -> str:
    return coco_labels().get(int(category_id), f"class {int(category_id)}")
