"""Image | truth | prediction mosaics in class colours, with a legend (Pillow only: fast enough
to draw after every epoch)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from seglab.data.classes import ClassSpec

IGNORE_COLOR = (255, 255, 255)


def palette(classes: ClassSpec) -> np.ndarray:
    """uint8 [256, 3]: each class index's display colour; the ignore index white, the rest black."""
    colors = np.zeros((256, 3), np.uint8)
    colors[: classes.num_classes] = classes.colors
    colors[classes.ignore_index] = IGNORE_COLOR
    return colors


def colorize(labels: np.ndarray, classes: ClassSpec) -> np.ndarray:
    """Class indices [H, W] -> RGB uint8 [H, W, 3]; ignore pixels white."""
    return palette(classes)[labels]


def indexed_png(labels: np.ndarray, classes: ClassSpec) -> Image.Image:
    """Class indices [H, W] -> an indexed ('P') image whose palette shows the class colours, so
    the saved PNG keeps the indices and still looks right in any image viewer."""
    image = Image.fromarray(np.asarray(labels, np.uint8))
    image.putpalette(palette(classes).ravel().tolist())  # L -> P, the pixel values unchanged
    return image


def blend(image: np.ndarray, labels: np.ndarray, classes: ClassSpec, alpha: float = 0.5) -> np.ndarray:
    """The class colours of `labels` [H, W] laid over `image` [H, W, 3] at `alpha`: RGB uint8."""
    return (np.asarray(image, np.float32) * (1 - alpha) + colorize(labels, classes) * alpha).astype(np.uint8)


def legend(classes: ClassSpec, width: int) -> Image.Image:
    row, swatch = 16, 12
    per_line = max(1, width // 150)
    lines = -(-classes.num_classes // per_line)
    image = Image.new("RGB", (width, lines * row + 4), "white")
    draw = ImageDraw.Draw(image)
    for i, (name, color) in enumerate(zip(classes.names, classes.colors)):
        x, y = (i % per_line) * (width // per_line) + 4, (i // per_line) * row + 2
        draw.rectangle([x, y, x + swatch, y + swatch], fill=tuple(color), outline="black")
        draw.text((x + swatch + 4, y), name, fill="black")
    return image


def mosaic(images: np.ndarray, truths: np.ndarray, predictions: np.ndarray, classes: ClassSpec,
           title: str | None = None, captions: list[str] | None = None) -> Image.Image:
    """Rows of image | truth | prediction for images uint8-able [N, H, W, 3] and labels [N, H, W]."""
    n, h, w = truths.shape
    gap = 2
    header = 16 if title else 0
    caption_h = 14 if captions else 0
    grid = Image.new("RGB", (3 * w + 2 * gap, header + n * (h + caption_h + gap)), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 2), title, fill="black")
    for i in range(n):
        y = header + i * (h + caption_h + gap)
        if captions:
            draw.text((4, y), captions[i], fill="black")
        y += caption_h
        tiles = (np.clip(images[i], 0, 255).astype(np.uint8), colorize(truths[i], classes), colorize(predictions[i], classes))
        for j, tile in enumerate(tiles):
            grid.paste(Image.fromarray(tile), (j * (w + gap), y))
    key = legend(classes, grid.width)
    out = Image.new("RGB", (grid.width, grid.height + key.height), "white")
    out.paste(grid, (0, 0))
    out.paste(key, (0, grid.height))
    return out
