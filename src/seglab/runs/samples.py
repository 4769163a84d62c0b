"""The validation samples a run predicts after every epoch, kept compactly in RUN/samples/ for the
viewer, the preview mosaics and the experiment trackers:

    samples/samples.json     names, classes and, per epoch, each sample's per-class IoU
    samples/images/00.jpg    the sample as the model sees it (model size)
    samples/truth/00.png     its true mask: an indexed PNG in the class palette
    samples/epoch_001/00.png the prediction after epoch 1, likewise

The samples are a seeded draw from the validation split, the same every epoch and on resume.
This module reads and writes files only (no TensorFlow), so the viewer and report load fast.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.core.files import atomic_path, write_text
from seglab.data.bands import composite
from seglab.data.bands import display_bands as display_bands_of
from seglab.data.classes import ClassSpec
from seglab.data.colors import indexed_png


def choose(count: int, population: int, seed: int) -> list[int]:
    """`count` indices of `population` validation samples, drawn with `seed`, in file order."""
    count = min(count, population)
    return sorted(np.random.default_rng(seed).choice(population, size=count, replace=False).tolist())


@dataclass
class Samples:
    """The fixed validation samples predicted after every epoch."""
    names: list[str]
    images: np.ndarray  # float32 [N, H, W, C]: what the model takes (0..255 RGB, or the source's bands)
    truths: np.ndarray  # uint8 [N, H, W]
    pictures: np.ndarray  # uint8 [N, H, W, 3]: what people see (seglab.data.bands.composite)

    @classmethod
    def draw(cls, source, count: int, size: int, seed: int, crop: int | None = None, scale: float = 1.0,
             display_bands=None) -> "Samples":
        """`count` validation pairs of `source` drawn with `seed`, at the model's `size` (their
        centre crops, for a run trained on crops): the same ones every epoch and after a resume.
        Images of other bands than 8-bit RGB are shown as `display_bands` (see `display_bands`)."""
        from seglab.data.pipeline import make_dataset  # TensorFlow: only when training

        pairs = source.split("val")
        chosen = [pairs[i] for i in choose(max(1, count), len(pairs), seed)]
        ds = make_dataset(dataclasses.replace(source, pairs=chosen), "val", size=size, batch_size=len(chosen),
                          validate_first=False, crop=crop, scale=scale)
        images, truths = next(iter(ds))
        images = images.numpy()
        shown = display_bands_of(source.bands.names, display_bands)
        pictures = np.stack([composite(image, shown, source.bands.rgb) for image in images])
        return cls([p.name for p in chosen], images, truths.numpy(), pictures)


@dataclass
class Epoch:
    """One epoch's predictions of the samples, with what they score."""
    epoch: int
    predictions: np.ndarray  # int [N, H, W]
    iou: list[list[float | None]]


class SampleLog:
    """RUN/samples/: written as training goes, read back by the viewer."""

    def __init__(self, run_path):
        self.path = Path(run_path) / "samples"
        self.index = self.path / "samples.json"

    def exists(self) -> bool:
        return self.index.is_file()

    def start(self, names: list[str], pictures: np.ndarray, truths: np.ndarray, classes: ClassSpec) -> None:
        """Write the samples' pictures (uint8 RGB) and true masks (once; a resumed run keeps them)."""
        if self.exists():
            return
        for folder in ("images", "truth"):
            (self.path / folder).mkdir(parents=True, exist_ok=True)
        for i, (picture, truth) in enumerate(zip(pictures, truths)):
            with atomic_path(self.path / "images" / f"{i:02d}.jpg") as tmp:
                Image.fromarray(picture).save(tmp, quality=90)
            with atomic_path(self.path / "truth" / f"{i:02d}.png") as tmp:
                indexed_png(truth, classes).save(tmp)
        self._write({"names": list(names), "classes": classes.to_json(), "size": int(truths.shape[1]), "epochs": []})

    def add(self, epoch: Epoch, classes: ClassSpec) -> None:
        """Write one epoch's prediction masks, then record the epoch in samples.json (so the index
        never names masks that are not there)."""
        folder = self.path / f"epoch_{epoch.epoch:03d}"
        folder.mkdir(exist_ok=True)
        for i, labels in enumerate(epoch.predictions):
            with atomic_path(folder / f"{i:02d}.png") as tmp:
                indexed_png(labels, classes).save(tmp)
        data = self.read()
        data["epochs"] = [e for e in data["epochs"] if e["epoch"] < epoch.epoch] + [{"epoch": epoch.epoch, "iou": epoch.iou}]
        self._write(data)

    def keep_epochs(self, epochs_done: int) -> None:
        """On resume: forget epochs after the last finished one (their masks are overwritten later)."""
        if self.exists():
            data = self.read()
            data["epochs"] = [e for e in data["epochs"] if e["epoch"] <= epochs_done]
            self._write(data)

    def read(self) -> dict:
        return json.loads(self.index.read_text())

    def image(self, i: int) -> Path:
        return self.path / "images" / f"{i:02d}.jpg"

    def truth(self, i: int) -> Path:
        return self.path / "truth" / f"{i:02d}.png"

    def prediction(self, epoch: int, i: int) -> Path:
        return self.path / f"epoch_{epoch:03d}" / f"{i:02d}.png"

    def _write(self, data: dict) -> None:
        write_text(self.index, json.dumps(data) + "\n")
