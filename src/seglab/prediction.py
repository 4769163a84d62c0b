"""`seglab predict`: masks at each image's original resolution, overlays, and predictions.json.

Any image Pillow reads (EXIF orientation applied; grayscale, palette, RGBA, 16-bit made RGB).
An unreadable file is reported and skipped, never the end of the batch.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import seglab.models  # noqa: F401  (registers seglab's layers, losses and metrics for loading)
from seglab.config import TrainConfig
from seglab.data.classes import ClassSpec
from seglab.data.images import IMAGE_EXTENSIONS, read_image
from seglab.data.pipeline import model_input
from seglab.errors import DataError
from seglab.metrics import predict_labels
from seglab.progress import progress
from seglab.report.mosaic import blend, indexed_png
from seglab.runs import Run, write_text

OVERLAY_ALPHA = 0.5


def find_images(inputs) -> tuple[list[Path], list[Path]]:
    """Files named, and image files inside folders named (sorted) -> (images, other files skipped)."""
    images, skipped = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".")):
                (images if path.suffix.lower() in IMAGE_EXTENSIONS else skipped).append(path)
        else:
            images.append(item)  # named explicitly: tried whatever its extension, reported if unreadable
    return images, skipped


def _read(path: Path):
    try:
        return read_image(path)
    except DataError as e:
        return e


def unique_stems(paths: list[Path]) -> list[str]:
    seen, stems = {}, []
    for path in paths:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        stems.append(path.stem if count == 0 else f"{path.stem}_{count}")
    return stems


def predict(run_path, inputs, out, threshold: float = 0.5, batch_size: int = 8) -> dict:
    """Predict every image in `inputs` (files or folders) with the run's best model; write
    out/masks/<name>.png (indexed, class palette), out/overlays/<name>.png and out/predictions.json."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1; got {threshold}.")
    run = Run(run_path)
    config, classes = TrainConfig.load(run.config), ClassSpec.load(run.classes)
    if not run.model.is_file():
        raise FileNotFoundError(f"{run.model} not found: the run has no finished epoch (state: {run.state.get('status')}).")
    model = keras.models.load_model(run.model)
    paths, skipped = find_images(inputs)
    if not paths:
        raise ValueError(f"No images found in {', '.join(map(str, inputs))} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}).")
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(exist_ok=True)
    results, failed = [], []
    named = list(zip(paths, unique_stems(paths)))
    chunks = [named[i:i + batch_size] for i in range(0, len(named), batch_size)]
    with ThreadPoolExecutor() as pool:
        decoded = pool.map(lambda chunk: [(p, s, _read(p)) for p, s in chunk], chunks)
        for chunk in progress(decoded, len(paths), "Predicting", size=len):
            good = [(p, s, image) for p, s, image in chunk if not isinstance(image, DataError)]
            failed += [{"file": str(p), "message": image.problem.message} for p, _, image in chunk if isinstance(image, DataError)]
            if not good:
                continue
            batch = tf.concat([model_input(image[None], config.size) for _, _, image in good], axis=0)
            for (path, stem, image), logits in zip(good, model.predict_on_batch(batch)):
                labels = np.asarray(predict_labels(tf.image.resize(logits[None], image.shape[:2])[0], threshold), np.uint8)
                results.append(_write(path, stem, image, labels, classes, out))
    summary = {"run": str(run.path), "checkpoint": run.model.name, "size": config.size, "threshold": threshold,
               "predicted": len(results), "failed": failed, "skipped_non_images": [str(p) for p in skipped],
               "images": results}
    write_text(out / "predictions.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write(path: Path, stem: str, image: np.ndarray, labels: np.ndarray, classes: ClassSpec, out: Path) -> dict:
    indexed_png(labels, classes).save(out / "masks" / f"{stem}.png")
    Image.fromarray(blend(image, labels, classes, OVERLAY_ALPHA)).save(out / "overlays" / f"{stem}.png")
    counts = np.bincount(labels.ravel(), minlength=classes.num_classes)[: classes.num_classes]
    return {"file": str(path), "width": int(labels.shape[1]), "height": int(labels.shape[0]),
            "mask": f"masks/{stem}.png", "overlay": f"overlays/{stem}.png",
            "class_fraction": {name: round(float(c) / labels.size, 6) for name, c in zip(classes.names, counts)}}
