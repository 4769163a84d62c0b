"""Instances drawn on their image: each in its own colour, mask blended, box outlined, label and
score written above the box."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from seglab.data.classes import default_colors
from seglab.instances.labels import label_name

MASK_ALPHA = 0.45


def draw_instances(image: np.ndarray, masks: np.ndarray, boxes_px: np.ndarray, classes, scores) -> Image.Image:
    """image uint8 [H, W, 3]; masks bool [N, H, W]; boxes_px [N, 4] pixel (x0, y0, x1, y1)."""
    colors = np.asarray(default_colors(max(len(masks), 1)), np.float32)
    canvas = np.asarray(image, np.float32).copy()
    for mask, color in zip(masks, colors):
        canvas[mask] = canvas[mask] * (1 - MASK_ALPHA) + color * MASK_ALPHA
    picture = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 400))
    for (x0, y0, x1, y1), color, category, score in zip(boxes_px, colors, classes, scores):
        fill = tuple(int(c) for c in color)
        draw.rectangle([x0, y0, x1, y1], outline=fill, width=width)
        text = f"{label_name(category)} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text)
        y = y0 - (bottom - top) - 4 if y0 >= (bottom - top) + 4 else y0
        draw.rectangle([x0, y, x0 + right - left + 4, y + bottom - top + 4], fill=fill)
        draw.text((x0 + 2, y + 1), text, fill="white" if sum(fill) < 400 else "black")
    return picture
