"""Class colours on pixels: the display palette, coloured and indexed masks, and overlays."""
from __future__ import annotations

import numpy as np
from PIL import Image

from seglab.data.classes import ClassSpec

IGNORE_COLOR = (255, 255, 255)
BLEND_ROWS = 512


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
    """The class colours of `labels` [H, W] laid over `image` [H, W, 3] at `alpha`: RGB uint8.
    Computed in bands of rows, so a very large image needs little memory beyond the result."""
    out = np.empty(np.shape(image), np.uint8)
    colors = palette(classes).astype(np.float32) * alpha
    for y in range(0, len(out), BLEND_ROWS):
        band = slice(y, y + BLEND_ROWS)
        out[band] = np.asarray(image[band], np.float32) * (1 - alpha) + colors[labels[band]]
    return out
