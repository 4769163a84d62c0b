"""Detections in the COCO results format: one list for a batch of images, each entry
{"image_id", "category_id", "bbox": [x, y, width, height] in pixels, "score", "segmentation": RLE},
the format pycocotools' `loadRes` and every COCO tool read."""
from __future__ import annotations

import numpy as np

from seglab.data import rle


def box_pixels(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalised (ymin, xmin, ymax, xmax) -> pixel (x0, y0, x1, y1), clipped to the image."""
    boxes = np.clip(np.asarray(boxes, np.float64).reshape(-1, 4), 0.0, 1.0)
    return np.stack([boxes[:, 1] * width, boxes[:, 0] * height, boxes[:, 3] * width, boxes[:, 2] * height], axis=1)


def coco_entries(image_id: int, masks: np.ndarray, boxes_px: np.ndarray, classes, scores) -> list[dict]:
    entries = []
    for mask, (x0, y0, x1, y1), category, score in zip(masks, boxes_px, classes, scores):
        entries.append({"image_id": int(image_id), "category_id": int(category),
                        "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                        "score": round(float(score), 5), "segmentation": rle.encode(mask)})
    return entries
