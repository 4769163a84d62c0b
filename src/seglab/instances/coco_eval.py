"""COCO evaluation with pycocotools (an optional extra): box and mask AP, AP50 and AP75."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from seglab.data.coco import read_coco

STATS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ValueError("COCO evaluation needs pycocotools: pip install 'seglab[instances]'.") from None
    return COCO, COCOeval


def ground_truth_results(annotations) -> list[dict]:
    """The annotations themselves as results (score 1, crowd regions left out, masks as RLE): a
    check of the evaluation itself, which must score every AP 1.0."""
    read_coco(annotations)  # a clear error for a file that is not COCO
    COCO, _ = _pycocotools()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
    results = []
    for a in gt.dataset["annotations"]:
        if not a.get("iscrowd"):
            mask = gt.annToRLE(a)
            counts = mask["counts"].decode("ascii") if isinstance(mask["counts"], bytes) else mask["counts"]
            results.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                            "score": 1.0, "segmentation": {"size": mask["size"], "counts": counts}})
    return results


def evaluate_results(annotations, results) -> dict:
    """Score `results` (a COCO results list or a path to one) against `annotations` (a COCO
    instances file): {"bbox": {"AP": ..., "AP50": ..., ...}, "segm": {...}, "images": N, "detections": M}."""
    read_coco(annotations)  # a clear error for a file that is not COCO
    COCO, COCOeval = _pycocotools()
    if not isinstance(results, list):
        path = Path(results)
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read it as a COCO results JSON list ({e}).") from None
    if not isinstance(results, list):
        raise ValueError("COCO results must be a JSON list of {image_id, category_id, bbox, score, segmentation}.")
    scores = {"images": 0, "detections": len(results)}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        scores["images"] = len(gt.getImgIds())
        if not results:
            return {**scores, "bbox": dict.fromkeys(STATS, 0.0), "segm": dict.fromkeys(STATS, 0.0)}
        detections = gt.loadRes(results)
        for kind in ("bbox", "segm"):
            run = COCOeval(gt, detections, kind)  # over every annotated image, found or not
            run.evaluate()
            run.accumulate()
            run.summarize()
            scores[kind] = {name: round(float(v), 4) for name, v in zip(STATS, run.stats)}
    return scores
