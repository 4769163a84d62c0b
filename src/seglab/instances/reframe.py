"""Box-relative instance masks -> full-image masks (what the Object Detection API calls
"reframing"), with NumPy.

A Mask R-CNN predicts each instance's mask on a small grid (e.g. 33x33) stretched over its box.
Each image pixel whose centre lies inside the box takes the mask's value at that point, sampled
bilinearly (clamped at the grid's edges); pixels outside the box are 0. Bilinear sampling is
separable, so one box is two small matrix products: rows x grid x columns.
"""
from __future__ import annotations

import numpy as np


def _weights(start: float, end: float, pixels: int, grid: int) -> tuple[int, np.ndarray]:
    """For the image pixels whose centres lie in [start, end): the first one's index, and the
    bilinear weights [n, grid] that sample the mask grid at their centres."""
    first = max(0, int(np.ceil(start - 0.5)))
    last = min(pixels, int(np.ceil(end - 0.5)))  # exclusive
    centres = np.arange(first, last) + 0.5
    if len(centres) == 0 or end <= start:
        return first, np.zeros((0, grid))
    position = np.clip((centres - start) / (end - start) * grid - 0.5, 0, grid - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, grid - 1)
    frac = position - low
    weights = np.zeros((len(centres), grid))
    np.add.at(weights, (np.arange(len(centres)), low), 1 - frac)
    np.add.at(weights, (np.arange(len(centres)), high), frac)
    return first, weights


def reframe_box_masks(box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """box_masks float [N, m, n] in 0..1; boxes [N, 4] normalised (ymin, xmin, ymax, xmax) ->
    float32 [N, height, width] full-image mask probabilities."""
    box_masks = np.asarray(box_masks, np.float32)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), height, width), np.float32)
    for i, ((ymin, xmin, ymax, xmax), grid) in enumerate(zip(boxes, box_masks)):
        top, rows = _weights(ymin * height, ymax * height, height, grid.shape[0])
        left, cols = _weights(xmin * width, xmax * width, width, grid.shape[1])
        out[i, top:top + len(rows), left:left + len(cols)] = rows @ grid @ cols.T
    return out


def binary_masks(box_masks, boxes, height: int, width: int, threshold: float = 0.5) -> np.ndarray:
    """`reframe_box_masks` thresholded: bool [N, height, width]."""
    return reframe_box_masks(box_masks, boxes, height, width) > threshold
