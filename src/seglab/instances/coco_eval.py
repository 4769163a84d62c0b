"""COCO evaluation with pycocotools (an optional extra): box and mask AP, AP50 and AP75."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from seglab.core.errors import BadArgument
from seglab.data.coco import read_coco
from seglab.data.rle import segmentation_problem

STATS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise BadArgument("COCO evaluation needs pycocotools: pip install 'seglab[instances]'.") from None
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


def check_results(coco, results: list, where: str) -> list[str]:
    """Refuse results pycocotools would stop on (with a ValueError naming the first bad entry);
    return warnings about results it would score without a word (unknown categories, boxes only)."""
    if not isinstance(results, list):
        raise BadArgument(f"{where}: COCO results must be a JSON list of {{image_id, category_id, bbox, score, segmentation}}.")
    image_ids = {image["id"] for image in coco.images}
    for i, entry in enumerate(results):
        bad = (None if isinstance(entry, dict) else "is not an object") or next(
            (f"lacks '{k}'" for k in ("image_id", "category_id", "score") if k not in entry), None)
        if bad is None and "bbox" not in entry and "segmentation" not in entry:
            bad = "has neither 'bbox' nor 'segmentation'"
        if bad is None and "bbox" in entry and not (isinstance(entry["bbox"], list) and len(entry["bbox"]) == 4):
            bad = "has a 'bbox' that is not [x, y, width, height]"
        if bad is None and "segmentation" in entry:
            bad = segmentation_problem(entry["segmentation"])
        if bad is None and entry["image_id"] not in image_ids:
            unknown = sorted({str(e.get("image_id")) for e in results if isinstance(e, dict)} - {str(n) for n in image_ids})
            bad = (f"is for image id {entry['image_id']!r}, which {coco.path} does not list (unknown ids: "
                   f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}); score results against the "
                   "annotations they were made for")
        if bad is not None:
            raise BadArgument(f"{where}: result {i} {bad}.")
    warnings = []
    categories = {c["id"] for c in coco.categories}
    unknown = sorted({e["category_id"] for e in results} - categories, key=str)
    if unknown:
        share = sum(e["category_id"] not in categories for e in results) / len(results)
        warnings.append(f"{share:.0%} of the results have category ids that {coco.path.name} does not have "
                        f"({', '.join(map(str, unknown[:10]))}): they can only count as false positives. "
                        "Do the results use another label map?")
    box_only = sum("segmentation" not in e for e in results)
    if box_only:
        warnings.append(f"{box_only} result(s) have a box but no segmentation: their mask AP is scored with the "
                        "box as the mask (pycocotools' rule), which says nothing about mask quality.")
    return warnings


def evaluate_results(annotations, results, warn=None) -> dict:
    """Score `results` (a COCO results list or a path to one) against `annotations` (a COCO
    instances file): {"bbox": {"AP": ..., "AP50": ..., ...}, "segm": {...}, "images": N, "detections": M}.
    `warn(text)` is called for results that score without error but likely not as meant."""
    coco = read_coco(annotations)  # a clear error for a file that is not COCO
    COCO, COCOeval = _pycocotools()
    where = "results"
    if not isinstance(results, list):
        path = where = Path(results)
        try:
            results = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadArgument(f"{path}: cannot read it as a COCO results JSON list ({e}).") from None
    for text in check_results(coco, results, str(where)):
        if warn is not None:
            warn(text)
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
