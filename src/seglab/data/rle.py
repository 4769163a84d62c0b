"""COCO's mask encodings, read and written without pycocotools: run-length encoding (RLE, the
compressed string form and the uncompressed `counts` list) and polygons.

COCO RLE runs go down the columns (Fortran order), starting with a run of zeros (possibly empty).
The compressed form stores each count (after the first two, as a difference to the count two
places back) in 5-bit groups, low bits first, each group as a character from '0' (48) up; bit
0x20 says another group follows and bit 0x10 of the last group is the sign.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from seglab.core.errors import BadArgument


def _runs(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, bool).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    return ([0] + counts) if flat.size and flat[0] else counts


def _to_string(counts: list[int]) -> str:
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        while True:
            group = x & 0x1F
            x >>= 5  # arithmetic shift: negative differences end in -1
            more = x != -1 if group & 0x10 else x != 0
            chars.append(chr(48 + (group | 0x20 if more else group)))
            if not more:
                break
    return "".join(chars)


def _from_string(text: str) -> list[int]:
    counts, p = [], 0
    while p < len(text):
        x, shift, more = 0, 0, True
        while more:
            group = ord(text[p]) - 48
            x |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            p += 1
            shift += 5
            if not more and group & 0x10:
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: np.ndarray) -> dict:
    """A binary mask [H, W] -> COCO compressed RLE {"size": [H, W], "counts": str}."""
    mask = np.asarray(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _to_string(_runs(mask))}


def decode(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string or uncompressed list `counts`) -> a bool mask [H, W]."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    counts = _from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(counts) != height * width:
        raise BadArgument(f"RLE counts sum to {sum(counts)}, not {height}x{width} = {height * width} pixels.")
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((height, width), order="F")


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons ([x1, y1, x2, y2, ...] lists, pixel coordinates) -> a bool mask [H, W]."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        if len(polygon) >= 6:
            draw.polygon([(float(x), float(y)) for x, y in zip(polygon[::2], polygon[1::2])], fill=1, outline=1)
    return np.asarray(canvas, bool)


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Any COCO `segmentation` (polygon list, RLE or uncompressed RLE) -> a bool mask [H, W]."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        return decode(segmentation)
    raise BadArgument(f"not a COCO segmentation (polygons or RLE): {str(segmentation)[:80]}")


def segmentation_problem(segmentation) -> str | None:
    """Why `segmentation` is no COCO segmentation (polygons or RLE), or None when it is one."""
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
            return f"an RLE segmentation needs 'size': [height, width]; got {str(size)[:60]}"
        if not (isinstance(counts, str) or (isinstance(counts, list) and all(isinstance(v, int) for v in counts))):
            return "an RLE segmentation needs 'counts' as a string or a list of integers"
        return None
    if isinstance(segmentation, list) and segmentation and all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in segmentation):
        return None
    return ("a segmentation must be polygons ([[x1, y1, x2, y2, x3, y3, ...], ...], at least three points each) "
            f"or RLE ({{'size': [h, w], 'counts': ...}}); got {str(segmentation)[:60]}")
