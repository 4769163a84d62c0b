"""A chunk of image files in, masks and overlays out: the steps of `seglab predict` that the local
engine (`seglab.commands.prediction`) and the Ray actors (`seglab.engines.ray_engine`) both run,
so both write the same files."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.core.errors import DataError
from seglab.core.files import atomic_path, disk_full
from seglab.core.progress import GrowingBar, Stopwatch
from seglab.data.bands import composite
from seglab.data.classes import ClassSpec
from seglab.data.colors import blend, indexed_png
from seglab.data.images import read_image
from seglab.data.pipeline import model_input
from seglab.data.rasters import RGB, Raster, geotiff_bytes, read_raster
from seglab.inference.tiling import Inference

OVERLAY_ALPHA = 0.5
TILED_MAX_PIXELS = 1 << 30  # with --tile, images up to a gigapixel (3 GiB decoded) are taken, not refused as bombs


def read_input(path: Path, bands=None):
    """The image as a Raster (8-bit RGB, or the `bands` a model takes, in its order), or the
    DataError that says why it cannot be used."""
    try:
        if bands is None:
            return Raster(read_image(path), RGB, {})
        return read_raster(path).select(bands, path)
    except DataError as e:
        return e
    except Exception as e:  # noqa: BLE001  (any file at all must not end the batch)
        return DataError(path, f"cannot be read ({type(e).__name__}: {e}).")


def chunk_labels(inference: Inference, images: list[np.ndarray], threshold: float, clock: Stopwatch,
                 tiles: GrowingBar | None = None) -> list[np.ndarray]:
    """The label maps of a chunk of decoded images ([H, W, C] pixels; one model call, or one
    image's tiles), each at its image's size: what both engines run, so both give the same masks."""
    model = inference.predictor
    if inference.tile:
        labels = []
        for image in images:
            if tiles is not None:
                tiles.grow(inference.tile_count(image.shape))
            with clock("model"):  # tiles, their blending and the decision
                labels.append(inference.tiled_labels(image, threshold, tiles.advance if tiles is not None else None))
        return labels
    with clock("resize to the model's size"):
        batch = np.concatenate([model_input(image[None], model.size, image.dtype.name) for image in images])
    shapes = [image.shape[:2] for image in images]
    if inference.tta is None:
        with clock("model"):
            outputs = model(batch)
        with clock("resize to the original size and decide"):
            return model.to_labels(outputs, shapes, threshold)
    with clock("model"):  # every augmented copy, and the decision
        return inference.resized_labels(np.asarray(batch), shapes, threshold)


@contextlib.contextmanager
def large_images_allowed(allowed: bool):
    """Pillow refuses images above ~179 megapixels as decompression bombs; tiled prediction is
    for large images, so it takes them up to a gigapixel."""
    before = Image.MAX_IMAGE_PIXELS
    if allowed and before is not None:
        Image.MAX_IMAGE_PIXELS = max(before, TILED_MAX_PIXELS)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def failure(path: Path, message: str) -> dict:
    return {"file": str(path), "message": message}


def encode(path: Path, stem: str, image: Raster, labels: np.ndarray, classes: ClassSpec,
           shown=(0, 1, 2)) -> tuple[dict, dict]:
    """The image's record and its files by the path the record gives them: the mask PNG (indexed,
    class palette), the overlay PNG (on the `shown` bands of an image beyond 8-bit RGB, see
    `seglab.data.bands.composite`) and, for a georeferenced image, the mask as a GeoTIFF too."""
    mask, overlay = io.BytesIO(), io.BytesIO()
    indexed_png(labels, classes).save(mask, format="PNG")
    picture = composite(image.pixels, shown, rgb=image.bands == RGB and image.pixels.dtype == np.uint8)
    # zlib level 1: a photo's overlay encodes 4x faster than at Pillow's default 6, for a larger file
    Image.fromarray(blend(picture, labels, classes, OVERLAY_ALPHA)).save(overlay, format="PNG", compress_level=1)
    counts = np.bincount(labels.ravel(), minlength=classes.num_classes)[: classes.num_classes]
    record = {"file": str(path), "width": int(labels.shape[1]), "height": int(labels.shape[0]),
              "mask": f"masks/{stem}.png", "overlay": f"overlays/{stem}.png",
              "class_fraction": {name: round(float(c) / labels.size, 6) for name, c in zip(classes.names, counts)}}
    files = {record["mask"]: mask.getvalue(), record["overlay"]: overlay.getvalue()}
    if image.georeferenced:
        record["geotiff"] = f"masks/{stem}.tif"
        files[record["geotiff"]] = geotiff_bytes(labels, image.geo)
    return record, files


def store(out: Path, record: dict, files: dict) -> dict:
    """Write an image's encoded files where its record says, each under a temporary name renamed
    into place, so no file under a final name is ever partial; the record. When one cannot be
    written, those written before it go too: an image's outputs are there whole or not at all."""
    done = []
    try:
        for name, data in files.items():
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(data)
            done.append(out / name)
    except OSError:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    return record


def write_outputs(path: Path, stem: str, image: Raster, labels: np.ndarray, classes: ClassSpec, out: Path,
                  shown=(0, 1, 2)) -> dict:
    return store(out, *encode(path, stem, image, labels, classes, shown))


class Written:
    """What predict has written so far, as both engines collect it: the records of images whose
    outputs are complete, the failures, and `full`, the error of a disk that filled up, after
    which the engines stop (every later image would fail the same way)."""

    def __init__(self):
        self.results, self.failed = [], []
        self.full: OSError | None = None

    def add(self, path: Path, write) -> None:
        """Record the outcome of `write()`, which stores one image's outputs and returns its record."""
        try:
            self.results.append(write())
        except OSError as e:
            if disk_full(e):
                self.full = self.full or e
            else:  # a name the file system refuses, a folder removed meanwhile: that image only
                self.failed.append(failure(path, f"its outputs could not be written ({e.strerror or e})."))
