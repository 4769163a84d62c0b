"""Image | truth | prediction mosaics in class colours, with a legend (Pillow only: fast enough
to draw after every epoch)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from seglab.data.classes import ClassSpec
from seglab.data.colors import colorize


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
