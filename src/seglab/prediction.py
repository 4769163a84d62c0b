"""`seglab predict`: masks at each image's original resolution, overlays, and predictions.json.

Any image Pillow reads (EXIF orientation applied; grayscale, palette, RGBA, 16-bit made RGB).
A file that cannot be read or written is reported, skipped and counted, never the end of the batch.
"""
from __future__ import annotations

import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.classes import ClassSpec
from seglab.data.colors import blend, indexed_png
from seglab.data.images import IMAGE_EXTENSIONS, find_images, output_names, read_image
from seglab.data.pipeline import model_input
from seglab.errors import DataError
from seglab.progress import Stopwatch, progress
from seglab.runs import check_output_dir, make_output_dir, write_text
from seglab.runtimes import open_predictor

OVERLAY_ALPHA = 0.5


def _read(path: Path):
    """The image, or the DataError that says why it cannot be used."""
    try:
        return read_image(path)
    except DataError as e:
        return e
    except Exception as e:  # noqa: BLE001  (any file at all must not end the batch)
        return DataError(path, f"cannot be read ({type(e).__name__}: {e}).")


def predict(run_path, inputs, out, threshold: float = 0.5, batch_size: int = 8, runtime: str | None = None) -> dict:
    """Predict every image in `inputs` (files or folders) with the run's best model (on `runtime`:
    Keras by default; see `seglab.runtimes.open_predictor`), or with the model of an export folder;
    write out/masks/<name>.png (indexed, class palette), out/overlays/<name>.png and
    out/predictions.json. <name> is the input's file name (`photo.jpg` -> masks/photo.jpg.png),
    made unique and safe by `seglab.data.images.output_names`."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1; got {threshold}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    out = check_output_dir(out)
    paths, skipped = find_images(inputs)
    if not paths:
        raise ValueError(f"No images found in {', '.join(map(str, inputs))} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}).")
    model = open_predictor(run_path, runtime)
    classes = model.classes
    make_output_dir(out / "masks")
    make_output_dir(out / "overlays")
    results, failed = [], []
    named = list(zip(paths, output_names(paths)))
    chunks = [named[i:i + batch_size] for i in range(0, len(named), batch_size)]
    clock = Stopwatch()
    writing = deque()  # (path, future) of outputs being written, oldest first

    def collect(path, future):
        try:
            results.append(future.result())
        except OSError as e:  # a full disk, a name the file system refuses
            failed.append(_failure(path, f"its outputs could not be written ({e.strerror or e})."))

    # Files are decoded and outputs encoded in threads while the model runs (Pillow's decoders and
    # zlib let go of the GIL); at most a few batches wait to be written, so memory stays bounded.
    with ThreadPoolExecutor() as pool:
        decoded = pool.map(lambda chunk: [(p, s, _read(p)) for p, s in chunk], chunks)
        for chunk in progress(clock.timed(decoded, "waiting for decoded images"), len(paths), "Predicting", size=len):
            good = [(p, s, image) for p, s, image in chunk if not isinstance(image, DataError)]
            failed += [_failure(p, image.problem.message) for p, _, image in chunk if isinstance(image, DataError)]
            if not good:
                continue
            with clock("resize to the model's size"):
                batch = np.concatenate([model_input(image[None], model.size) for _, _, image in good])
            with clock("model"):
                outputs = model(batch)
            with clock("resize to the original size and decide"):
                labels = model.to_labels(outputs, [image.shape[:2] for _, _, image in good], threshold)
            writing.extend((path, pool.submit(_write, path, stem, image, mask, classes, out))
                           for (path, stem, image), mask in zip(good, labels))
            with clock("waiting for masks and overlays to be written"):
                while len(writing) > 2 * batch_size:
                    collect(*writing.popleft())
        with clock("waiting for masks and overlays to be written"):
            while writing:
                collect(*writing.popleft())
    summary = {**model.source, "size": model.size, "threshold": threshold,
               "predicted": len(results), "failed": failed, "skipped_non_images": [str(p) for p in skipped],
               "seconds": clock.summary(), "images": results}
    write_text(out / "predictions.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _failure(path: Path, message: str) -> dict:
    return {"file": str(path), "message": message}


def _write(path: Path, stem: str, image: np.ndarray, labels: np.ndarray, classes: ClassSpec, out: Path) -> dict:
    indexed_png(labels, classes).save(out / "masks" / f"{stem}.png")
    # zlib level 1: a photo's overlay encodes 4x faster than at Pillow's default 6, for a larger file
    Image.fromarray(blend(image, labels, classes, OVERLAY_ALPHA)).save(out / "overlays" / f"{stem}.png", compress_level=1)
    counts = np.bincount(labels.ravel(), minlength=classes.num_classes)[: classes.num_classes]
    return {"file": str(path), "width": int(labels.shape[1]), "height": int(labels.shape[0]),
            "mask": f"masks/{stem}.png", "overlay": f"overlays/{stem}.png",
            "class_fraction": {name: round(float(c) / labels.size, 6) for name, c in zip(classes.names, counts)}}
