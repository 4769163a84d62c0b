"""`seglab instances`: a Mask R-CNN over images or folders; overlays, optional per-instance mask
PNGs, one COCO results JSON for the batch and a per-image summary."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.core.errors import BadArgument, DataError
from seglab.core.progress import progress
from seglab.data.images import find_images, output_names, read_image
from seglab.instances.coco_results import box_pixels, coco_entries
from seglab.instances.detector import Detector
from seglab.instances.draw import draw_instances
from seglab.instances.labels import label_name
from seglab.instances.reframe import binary_masks
from seglab.runs import check_output_dir, make_output_dir, write_text


def image_ids_from(annotations) -> dict[str, int]:
    """file name -> image id from a COCO annotation file, so results match its ground truth."""
    from seglab.data.coco import read_coco

    return {Path(image["file_name"]).name: int(image["id"]) for image in read_coco(annotations).images}


def segment_instances(inputs, out, model: str | None = None, *, min_score: float = 0.3, max_detections: int = 100,
                      mask_threshold: float = 0.5, save_masks: bool = False, annotations=None,
                      detector: Detector | None = None) -> dict:
    """Run the Mask R-CNN `model` (a SavedModel folder or archive, or a TF Hub handle; default the
    cookbook's) on every image of `inputs` (files or folders). Writes into `out`:
    overlays/NAME.png, masks/NAME_K.png with `save_masks`, results.json (COCO results) and
    instances.json (per image: its id, size and detections; unreadable files with their error).
    Image ids come from `annotations` (a COCO file) when given, else 1, 2, ... in input order."""
    if not 0 <= min_score <= 1:
        raise BadArgument(f"min_score must be in 0..1; got {min_score}.")
    if max_detections < 1:
        raise BadArgument(f"max_detections must be at least 1; got {max_detections}.")
    out = check_output_dir(out)
    paths, skipped = find_images(inputs)
    if not paths:
        raise BadArgument(f"No images found in {', '.join(map(str, inputs))}.")
    ids = image_ids_from(annotations) if annotations else None
    detector = detector or Detector(model)
    make_output_dir(out / "overlays")
    if save_masks:
        make_output_dir(out / "masks")
    results, images, failed = [], [], []
    for number, (path, stem) in enumerate(progress(zip(paths, output_names(paths)), len(paths), "instances"), 1):
        try:
            image = read_image(path)
        except DataError as e:
            failed.append({"file": str(path), "message": str(e)})
            continue
        image_id = ids.get(path.name) if ids is not None else number
        if image_id is None:
            failed.append({"file": str(path), "message": f"not listed in {annotations}; it has no image id there"})
            continue
        height, width = image.shape[:2]
        found = detector(image).keep(min_score, max_detections)
        masks = binary_masks(found.box_masks, found.boxes, height, width, mask_threshold)
        boxes = box_pixels(found.boxes, height, width)
        draw_instances(image, masks, boxes, found.classes, found.scores).save(out / "overlays" / f"{stem}.png")
        if save_masks:
            for k, mask in enumerate(masks):
                Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{stem}_{k}.png")
        results += coco_entries(image_id, masks, boxes, found.classes, found.scores)
        images.append({"file": str(path), "image_id": image_id, "width": width, "height": height,
                       "overlay": f"overlays/{stem}.png",
                       "detections": [{"label": label_name(c), "category_id": int(c), "score": round(float(s), 4),
                                       **({"mask": f"masks/{stem}_{k}.png"} if save_masks else {})}
                                      for k, (c, s) in enumerate(zip(found.classes, found.scores))]})
    write_text(out / "results.json", json.dumps(results) + "\n")
    summary = {"model": str(detector.path), "min_score": min_score, "max_detections": max_detections,
               "images": images, "failed": failed, "skipped_non_images": [str(p) for p in skipped],
               "detections": len(results)}
    write_text(out / "instances.json", json.dumps(summary, indent=2) + "\n")
    return summary
