"""The built-in dataset: coloured shapes on textured backgrounds, with exact masks.

Deterministic by seed, so every machine trains on the same pixels. It is written once to a
folder in the `folder` layout (images/, masks/, classes.json) and read like any user's folder.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MARKER = ".seglab-synthetic.json"
CLASS_NAMES = ("background", "circle", "square", "triangle")
CLASS_COLORS = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200))
VERSION = 2  # 2: shapes always contrast with their background
MIN_CONTRAST = 90.0  # RGB distance between a shape's colour and the background's mean under it


def default_dir(seed: int = 0, count: int = 200, size: int = 128) -> Path:
    cache = Path(os.environ.get("SEGLAB_CACHE", Path.home() / ".cache" / "seglab"))
    return cache / f"synthetic-v{VERSION}-seed{seed}-n{count}-{size}px"


def make_sample(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One image uint8 [size, size, 3] and its mask uint8 [size, size] of class indices."""
    # Background: a colour gradient plus blocky noise, so edges alone do not give shapes away.
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(60, 190, 3)
    tilt = rng.uniform(-50, 50, (2, 3))
    noise = rng.normal(0, 18, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1)
    img = base + yy[..., None] * tilt[0] + xx[..., None] * tilt[1] + noise + rng.normal(0, 6, (size, size, 3))
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), 0)
    draw_img, draw_mask = ImageDraw.Draw(canvas), ImageDraw.Draw(mask)
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        r = rng.uniform(0.08, 0.2) * size
        cx, cy = rng.uniform(r, size - r, 2)
        colour = _shape_colour(rng, cls, background=base + cy / size * tilt[0] + cx / size * tilt[1])
        if cls == 1:
            box = [cx - r, cy - r, cx + r, cy + r]
            draw_img.ellipse(box, fill=colour)
            draw_mask.ellipse(box, fill=cls)
        elif cls == 2:
            box = [cx - r, cy - r, cx + r, cy + r]
            draw_img.rectangle(box, fill=colour)
            draw_mask.rectangle(box, fill=cls)
        else:
            pts = [(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)]
            draw_img.polygon(pts, fill=colour)
            draw_mask.polygon(pts, fill=cls)
    return np.asarray(canvas), np.asarray(mask)


def _shape_colour(rng: np.random.Generator, cls: int, background: np.ndarray) -> tuple[int, int, int]:
    """Each class has a hue it tends to, jittered so colour alone is not enough; redrawn until it
    stands out from the background around it (a shape the eye cannot see is label noise)."""
    for _ in range(50):
        colour = np.clip(np.array(CLASS_COLORS[cls]) * 0.6 + rng.uniform(0, 110, 3), 0, 255)
        if np.linalg.norm(colour - background) >= MIN_CONTRAST:
            break
    else:
        colour = np.where(background > 127, 0, 255)  # the far corner of the colour cube
    return tuple(int(v) for v in colour)


def write(out: Path, seed: int = 0, count: int = 200, size: int = 128) -> Path:
    """Write the dataset to `out` (images/*.png, masks/*.png, classes.json) and return it.
    Written to a temporary folder first, so an interrupted run leaves no half dataset."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rng = np.random.default_rng(seed)
        for i in range(count):
            image, mask = make_sample(rng, size)
            Image.fromarray(image).save(tmp / "images" / f"shapes_{i:04d}.png")
            Image.fromarray(mask).save(tmp / "masks" / f"shapes_{i:04d}.png")
        (tmp / "classes.json").write_text(json.dumps(
            {"names": list(CLASS_NAMES), "colors": [list(c) for c in CLASS_COLORS]}, indent=2) + "\n")
        (tmp / MARKER).write_text(json.dumps({"version": VERSION, "seed": seed, "count": count, "size": size}) + "\n")
        if (out / MARKER).is_file():  # another process wrote the same dataset meanwhile: it may be reading it
            return out
        if out.exists():
            shutil.rmtree(out)  # an unfinished or foreign folder
        try:
            tmp.rename(out)
        except OSError:
            if not (out / MARKER).is_file():  # lost a race to a process that finished: theirs is the same data
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure(path: Path | None = None, seed: int = 0, count: int = 200, size: int = 128) -> Path:
    """The dataset folder, generated if it is not there yet."""
    path = Path(path) if path else default_dir(seed, count, size)
    if not (path / MARKER).is_file():
        write(path, seed, count, size)
    return path
