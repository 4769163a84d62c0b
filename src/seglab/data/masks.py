"""Any mask encoding -> class indices.

Two encodings cover the datasets people use:
- `ValueMap`: each raw pixel value (index PNG, palette PNG indices, 0/255 binary, Oxford trimap
  codes, 16-bit labels) maps to a class index through a lookup table.
- `ColorMap`: RGB colour masks map to the nearest colour of a table, within a tolerance, so that
  JPEG-shifted colours still land on their class.
Decoded masks are uint8 [H, W] class indices with `IGNORE_INDEX` (255) for pixels of no class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.classes import IGNORE_INDEX
from seglab.data.images import open_image

_INVALID = -1  # lookup-table entry for raw values that belong to no class and are not ignore


def read_raw_mask(path, region: str | None = None) -> np.ndarray:
    """The stored values of a mask file: [H, W] for index, palette (its indices) and 16-bit masks,
    [H, W, 3] for colour masks. `region` 'left' or 'right' takes that half (side-by-side pairs)."""
    im = open_image(path)
    if im.mode == "P":
        arr = np.asarray(im)  # palette indices, not the colours they display as
    elif im.mode in ("L", "I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.int32 if im.mode != "L" else np.uint8)
    elif im.mode == "1":
        arr = np.asarray(im.convert("L"))
    else:
        arr = np.asarray(im.convert("RGB"))
    if region is not None:
        half = arr.shape[1] // 2
        arr = arr[:, :half] if region == "left" else arr[:, half:2 * half]
    return arr


def palette_colors(path, count: int) -> list[tuple[int, int, int]] | None:
    """The first `count` palette colours of a palette PNG, or None for other (or unreadable) files."""
    try:
        with Image.open(path) as im:
            if im.mode != "P" or im.getpalette() is None:
                return None
            pal = im.getpalette()[: 3 * count]
    except (OSError, Image.DecompressionBombError):
        return None
    pal += [0] * (3 * count - len(pal))
    return [tuple(pal[i:i + 3]) for i in range(0, 3 * count, 3)]


@dataclass(frozen=True)
class Decoded:
    """A decoded mask: class indices uint8 [H, W], and the raw values (or colours) that matched no class."""

    labels: np.ndarray
    unexpected: list = field(default_factory=list)
    off_palette_fraction: float = 0.0  # colour masks: pixels not exactly on a table colour
    values: tuple[int, ...] = ()  # value masks: the raw values present
    between: int = 0  # thresholded binary masks: pixels neither 0 nor 255


@dataclass(frozen=True)
class ValueMap:
    """Raw mask values -> class indices. `values[v]` is the class of raw value `v`
    (IGNORE_INDEX for values to ignore); any other value found is reported as unexpected."""

    values: dict[int, int]
    kind: str = "index"  # how to describe it: index, palette, binary, trimap
    cut: int | None = None  # binary masks stored lossily: values from `cut` up are class 1, below it class 0

    @classmethod
    def threshold(cls) -> "ValueMap":
        """0/255 binary masks stored lossily (JPEG): every value read by which half of 0..255 it is in."""
        return cls({0: 0, 255: 1}, kind="binary, thresholded at 128", cut=128)

    @classmethod
    def identity(cls, classes, kind: str = "index") -> "ValueMap":
        """Masks that already hold class indices (and the ClassSpec's ignore index)."""
        values = {i: i for i in range(classes.num_classes)}
        values[classes.ignore_index] = IGNORE_INDEX
        return cls(values, kind=kind)

    def lookup_table(self, size: int = 256) -> np.ndarray:
        """int32 [size] table: raw value -> class index, -1 for values outside the map."""
        if self.cut is not None:
            return (np.arange(size) >= self.cut).astype(np.int32)
        lut = np.full(size, _INVALID, dtype=np.int32)
        for raw, cls in self.values.items():
            if raw < size:
                lut[raw] = cls
        return lut

    def decode(self, raw: np.ndarray) -> Decoded:
        if raw.ndim == 3 and self.cut is not None:  # a grey mask saved as a JPEG in colour
            raw = raw.mean(-1).round().astype(np.uint8)
        if raw.ndim == 3:
            if not (np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 0], raw[..., 2])):
                return Decoded(np.full(raw.shape[:2], IGNORE_INDEX, np.uint8), ["RGB colours (expected single-channel class values)"])
            raw = raw[..., 0]
        top = int(raw.max(initial=0))
        lut = self.lookup_table(max(256, top + 1))
        present = np.flatnonzero(np.bincount(raw.ravel(), minlength=len(lut)))
        mapped = lut[raw]
        unexpected = [int(v) for v in present if lut[v] == _INVALID]
        mapped[mapped == _INVALID] = IGNORE_INDEX
        between = 0 if self.cut is None else int(raw.size - np.count_nonzero(raw == 0) - np.count_nonzero(raw == 255))
        return Decoded(mapped.astype(np.uint8), unexpected, values=tuple(int(v) for v in present), between=between)


@dataclass(frozen=True)
class ColorMap:
    """RGB colours -> class indices by nearest table colour within `tolerance` (Euclidean, 0..441).

    `colors[i]` maps to `classes[i]` (IGNORE_INDEX for void colours). Colours farther than the
    tolerance from every entry become ignore when `far='ignore'`, or are reported when `far='error'`.
    """

    colors: tuple[tuple[int, int, int], ...]
    classes: tuple[int, ...]
    tolerance: float = 48.0
    far: str = "error"
    kind: str = "colour"

    def decode(self, raw: np.ndarray) -> Decoded:
        if raw.ndim == 2:
            raw = np.repeat(raw[..., None], 3, axis=-1)
        flat = raw.reshape(-1, 3).astype(np.int32)
        keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
        uniq, inverse = np.unique(keys, return_inverse=True)
        ucol = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
        table = np.asarray(self.colors, dtype=np.int32)
        dist = np.sqrt(((ucol[:, None, :] - table[None, :, :]) ** 2).sum(-1))  # [U, K]
        nearest = dist.argmin(1)
        near = dist[np.arange(len(uniq)), nearest] <= self.tolerance
        ucls = np.where(near, np.asarray(self.classes, dtype=np.int32)[nearest], IGNORE_INDEX)
        labels = ucls[inverse].reshape(raw.shape[:2]).astype(np.uint8)
        exact = dist[np.arange(len(uniq)), nearest] == 0
        counts = np.bincount(inverse, minlength=len(uniq))
        off = float(counts[~exact].sum()) / max(1, len(keys))
        unexpected = []
        if self.far == "error" and not near.all():
            far_cols = ucol[~near]
            order = np.argsort(-counts[~near])[:10]
            unexpected = [tuple(int(c) for c in far_cols[i]) for i in order]
        return Decoded(labels, unexpected, off)


MaskEncoding = ValueMap | ColorMap


def decode_mask(path, encoding: MaskEncoding, region: str | None = None) -> Decoded:
    """Read `path` and decode it with `encoding`."""
    return encoding.decode(read_raw_mask(Path(path), region))


def mask_colors(paths, tolerance: float = 48.0, least: float = 0.0005) -> list[tuple[tuple[int, int, int], int]]:
    """The colours of colour masks, most pixels first, as (colour, pixels): colours within
    `tolerance` of a more common one (JPEG's noise around a class colour) are counted with it, and
    colours under `least` of all pixels are left out."""
    counts: dict[int, int] = {}
    for path in paths:
        raw = read_raw_mask(Path(path))
        flat = (raw if raw.ndim == 3 else np.repeat(raw[..., None], 3, -1)).reshape(-1, 3).astype(np.int64)
        keys, n = np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2], return_counts=True)
        for k, c in zip(keys.tolist(), n.tolist()):
            counts[k] = counts.get(k, 0) + c
    total = sum(counts.values())
    kept: list[list] = []
    for key, count in sorted(counts.items(), key=lambda kc: -kc[1]):
        colour = np.array([(key >> 16) & 255, (key >> 8) & 255, key & 255])
        home = next((k for k in kept if np.sqrt(((k[0] - colour) ** 2).sum()) <= tolerance), None)
        if home is not None:
            home[1] += count
        elif count >= least * total:
            kept.append([colour, count])
    return [(tuple(int(v) for v in c), n) for c, n in kept]
