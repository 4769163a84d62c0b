"""Inference beyond one resize: sliding windows over full-resolution images with blended overlaps,
and test-time augmentation (flips, scales).

Sliding windows (`Tiling`): the image, padded by reflection where it is smaller than a tile, is
covered by tiles of `tile` x `tile` spaced evenly so that neighbours overlap by at least
`overlap` of a tile (the last tile ends at the image's edge, as nnU-Net places them). Each tile's
class probabilities are weighted by a Gaussian that falls off towards the tile's edges (sigma =
tile / 8, nnU-Net's choice) and the weighted sums are divided by the summed weights, so a pixel's
probabilities are a weighted mean over the tiles that cover it: no seams where tiles meet.

Memory stays bounded by the tile, not the image: tiles are run one row of tiles at a time, and
rows of pixels that no later tile covers are handed on (`strips`) and dropped, so the running sums
hold `tile` rows of the image, never the whole probability map.

Test-time augmentation (`TTA`) averages class probabilities over transformed copies of each
input, each mapped back exactly: a flip is undone by the same flip, a scale by resizing the
probabilities back to the input's size.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from seglab.core.decision import decide, probabilities_of
from seglab.core.errors import BadArgument
from seglab.core.machine import available_memory
from seglab.data.rasters import RGB
from seglab.inference.runtimes import Predictor

SIGMA_SCALE = 1 / 8  # Gaussian sigma as a share of the tile side (nnU-Net)
MAX_OVERLAP = 0.9
FLIPS = {"flip": ((False, False), (False, True)),  # (vertical, horizontal)
         "flips": ((False, False), (False, True), (True, False), (True, True))}
TTA_HELP = "flip (horizontal), flips (horizontal and vertical), scales=0.75,1,1.25; join two with +: flip+scales=0.75,1,1.25"


@dataclass(frozen=True)
class TTA:
    """Which transformed copies of each input are averaged: every flip at every scale."""

    flips: tuple[tuple[bool, bool], ...] = ((False, False),)
    scales: tuple[float, ...] = (1.0,)

    @classmethod
    def parse(cls, text: str | None) -> "TTA | None":
        """'flip', 'flips', 'scales=0.75,1,1.25', or two joined by '+'; None or 'none' for no TTA."""
        if text is None or text.strip().lower() in ("", "none"):
            return None
        flips, scales = FLIPS["flip"][:1], (1.0,)
        for part in text.strip().lower().split("+"):
            if part in FLIPS:
                flips = FLIPS[part]
            elif part.startswith("scales="):
                try:
                    scales = tuple(float(s) for s in part[len("scales="):].split(","))
                except ValueError:
                    raise BadArgument(f"--tta {text}: scales must be numbers, as in scales=0.75,1,1.25.") from None
                if not scales or not all(0.1 <= s <= 4 and math.isfinite(s) for s in scales):
                    raise BadArgument(f"--tta {text}: each scale must be between 0.1 and 4.")
            else:
                raise BadArgument(f"Unknown --tta {part!r}. Use {TTA_HELP}, or none.")
        return cls(flips, scales)

    def __str__(self) -> str:
        flips = {v: k for k, v in FLIPS.items()}.get(self.flips)
        scales = None if self.scales == (1.0,) else "scales=" + ",".join(f"{s:g}" for s in self.scales)
        return "+".join(p for p in (flips, scales) if p) or "none"


def probabilities(predictor: Predictor, batch: np.ndarray, tta: TTA | None = None) -> np.ndarray:
    """Class probabilities float32 [B, H, W, C] (C = 1: the foreground's) of a raw RGB batch at
    its own size, averaged over `tta`'s transformed copies when given."""
    if tta is None:
        return as_probabilities(predictor(batch), predictor)
    h, w = batch.shape[1:3]
    total = np.zeros((), np.float32)
    for scale in tta.scales:
        scaled = batch if scale == 1 else _resize(batch, _scaled_side(h, scale, predictor), _scaled_side(w, scale, predictor))
        copies = np.concatenate([_flip(scaled, v, hz) for v, hz in tta.flips])  # one model call for every flip
        outputs = as_probabilities(predictor(copies), predictor)
        for i, (v, hz) in enumerate(tta.flips):
            p = _flip(outputs[i * len(batch):(i + 1) * len(batch)], v, hz)
            total = total + (p if scale == 1 else _resize(p, h, w))
    return (total / (len(tta.scales) * len(tta.flips))).astype(np.float32)


def as_probabilities(outputs: np.ndarray, predictor: Predictor) -> np.ndarray:
    """What a model returned, as probabilities: softmax (sigmoid for one logit) of logits."""
    check_blendable(predictor)
    if predictor.output == "probabilities":
        return np.asarray(outputs, np.float32)
    return probabilities_of(outputs)


def check_blendable(predictor: Predictor) -> None:
    """Refuse a model whose outputs cannot be averaged: an export that returns labels."""
    if predictor.output == "labels":
        raise BadArgument("Tiles and test-time augmentation average class probabilities, and this export returns labels. "
                         "Export the run with --output logits (the default) or probabilities.")


def _flip(batch: np.ndarray, vertical: bool, horizontal: bool) -> np.ndarray:
    if vertical:
        batch = batch[:, ::-1]
    if horizontal:
        batch = batch[:, :, ::-1]
    return np.ascontiguousarray(batch) if vertical or horizontal else batch


def _scaled_side(side: int, scale: float, predictor: Predictor) -> int:
    """`side` x `scale`, rounded to a size the model takes (a multiple of its stride)."""
    step = predictor.multiple
    return max(step, int(round(side * scale / step)) * step)


def _resize(batch: np.ndarray, h: int, w: int) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(tf.image.resize(batch, (h, w)), np.float32)


def check_sizes(predictor: Predictor, tile: int | None, tta: TTA | None) -> None:
    """Refuse a tile the model cannot take, naming the nearest that it can; let a Keras model
    that can take other sizes than its training size do so."""
    step = predictor.multiple
    if tile is not None:
        if tile < step or tile % step:
            nearest = max(step, int(round(tile / step)) * step)
            raise BadArgument(f"--tile {tile} is not a size this model takes: tiles must be multiples of its stride "
                             f"{step}. The nearest is --tile {nearest}.")
        _check_tile_memory(tile, predictor.classes.num_classes, len(predictor.bands or RGB))
    sizes = {tile or predictor.size}
    if tta is not None:
        side = tile or predictor.size
        sizes |= {_scaled_side(side, s, predictor) for s in tta.scales}
    if sizes != {predictor.size} and not predictor.any_size():
        raise BadArgument(f"This model takes only {predictor.size}x{predictor.size} inputs, so tiles must be --tile "
                         f"{predictor.size} and --tta cannot use scales.")


def _check_tile_memory(tile: int, classes: int, channels: int = 3) -> None:
    """Refuse, before allocating, a tile whose buffers alone exceed the memory free: per float32
    pixel of a tile, its input channels, the tile's `classes` probabilities, the running sums of as
    many, their weights and the Gaussian window; the canvas row is at least a tile wide. The model's
    own activations come on top, so this is a floor (a --tile 65536 asked for hundreds of GiB)."""
    floor = tile * tile * 4 * (channels + 2 * classes + 2)
    free = available_memory()
    if free is not None and floor > free:
        raise BadArgument(f"--tile {tile} needs at least {floor / 2**30:.1f} GiB for its buffers alone (the model needs "
                          f"more), and {free / 2**30:.1f} GiB is free. A tile larger than an image gains nothing (the "
                          "image is padded to it): give a smaller --tile, such as the images' size.")


def check_overlap(overlap: float) -> None:
    if not 0 <= overlap <= MAX_OVERLAP:
        raise BadArgument(f"--overlap must be between 0 and {MAX_OVERLAP} (a share of the tile); got {overlap}.")


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Where tiles start along one axis of `length` (>= tile): evenly spaced, neighbours
    overlapping by at least `overlap` x tile, the first at 0 and the last ending at `length`."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def gaussian_weights(tile: int) -> np.ndarray:
    """float32 [tile, tile]: 1 at the centre, falling towards the edges, never 0."""
    x = np.arange(tile, dtype=np.float64) - (tile - 1) / 2
    g = np.exp(-0.5 * (x / (tile * SIGMA_SCALE)) ** 2)
    w = np.outer(g, g)
    return np.maximum(w / w.max(), 1e-6).astype(np.float32)


def reflect_index(length: int, before: int, total: int) -> np.ndarray:
    """Indices into an axis of `length` for a padded axis of `total` starting `before` pixels
    before it, reflected at the edges (numpy's 'reflect': the edge pixel is not repeated)."""
    i = np.arange(total) - before
    if length == 1:
        return np.zeros(total, np.intp)
    period = 2 * (length - 1)
    i = np.mod(i, period)
    return np.where(i >= length, period - i, i).astype(np.intp)


@dataclass(frozen=True)
class Tiling:
    """Sliding-window inference of one model over whole images."""

    predictor: Predictor
    tile: int
    overlap: float = 0.25
    tta: TTA | None = None
    batch_size: int = 8

    def __post_init__(self):
        check_overlap(self.overlap)
        if self.batch_size < 1:
            raise BadArgument(f"batch_size must be at least 1; got {self.batch_size}.")
        check_sizes(self.predictor, self.tile, self.tta)

    def count(self, height: int, width: int) -> int:
        """How many tiles cover a height x width image."""
        h, w = max(height, self.tile), max(width, self.tile)
        return len(tile_starts(h, self.tile, self.overlap)) * len(tile_starts(w, self.tile, self.overlap))

    def strips(self, image: np.ndarray, on_tiles=None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first row, probabilities float32 [rows, W, C]) strips covering uint8 `image`
        [H, W, 3] top to bottom. `on_tiles(n)` is told after every n tiles run."""
        t = self.tile
        height, width = image.shape[:2]
        ph, pw = max(height, t), max(width, t)  # the canvas: padded by reflection only where smaller than a tile
        top, left = (ph - height) // 2, (pw - width) // 2
        rows, cols = reflect_index(height, top, ph), reflect_index(width, left, pw)
        ys, xs = tile_starts(ph, t, self.overlap), tile_starts(pw, t, self.overlap)
        weight = gaussian_weights(t)
        sums = weights = None  # running sums over canvas rows [ys[i], ys[i] + t)
        for i, y in enumerate(ys):
            band = image[rows[y:y + t]]  # [t, W, 3]: the rows every tile in this row of tiles reads
            for start in range(0, len(xs), self.batch_size):
                chunk = xs[start:start + self.batch_size]
                batch = np.stack([band[:, cols[x:x + t]] for x in chunk]).astype(np.float32)
                p = probabilities(self.predictor, batch, self.tta)
                if sums is None:
                    sums = np.zeros((t, pw, p.shape[-1]), np.float32)
                    weights = np.zeros((t, pw), np.float32)
                for x, tile_p in zip(chunk, p):
                    sums[:, x:x + t] += tile_p * weight[..., None]
                    weights[:, x:x + t] += weight
                if on_tiles is not None:
                    on_tiles(len(chunk))
            done = (ys[i + 1] if i + 1 < len(ys) else ph) - y  # canvas rows no later tile reaches
            first, last = max(y, top), min(y + done, top + height)
            if last > first:
                strip = sums[first - y:last - y, left:left + width] / weights[first - y:last - y, left:left + width, None]
                yield first - top, strip
            sums = np.concatenate([sums[done:], np.zeros((done, *sums.shape[1:]), np.float32)])
            weights = np.concatenate([weights[done:], np.zeros((done, pw), np.float32)])

    def labels(self, image: np.ndarray, threshold: float = 0.5, on_tiles=None) -> np.ndarray:
        """uint8 class indices [H, W] of `image`, decided strip by strip."""
        out = np.empty(image.shape[:2], np.uint8)
        for y, strip in self.strips(image, on_tiles):
            out[y:y + len(strip)] = decide(strip, "probabilities", threshold)
        return out

    def probabilities(self, image: np.ndarray, on_tiles=None) -> np.ndarray:
        """float32 [H, W, C]: the whole probability map (for a caller that resizes it)."""
        return np.concatenate([strip for _, strip in self.strips(image, on_tiles)])


@dataclass(frozen=True)
class Inference:
    """How predict and evaluate turn a model into labels at an image's own resolution: resize
    the whole image to the model's size (`tile` None), or slide tiles over it (after resizing it
    by `scale`, the run's --scale); either with test-time augmentation `tta`."""

    predictor: Predictor
    tile: int | None = None
    overlap: float = 0.25
    tta: TTA | None = None
    batch_size: int = 8
    scale: float = 1.0

    def __post_init__(self):
        check_overlap(self.overlap)
        if self.tile or self.tta:
            check_blendable(self.predictor)  # before anything is written
        check_sizes(self.predictor, self.tile, self.tta)

    @functools.cached_property  # one Tiling for every image (a frozen dataclass still takes it)
    def tiling(self) -> Tiling | None:
        return None if self.tile is None else Tiling(self.predictor, self.tile, self.overlap, self.tta, self.batch_size)

    def describe(self) -> dict:
        """For predictions.json and metrics.json."""
        return {"tile": self.tile, "overlap": self.overlap if self.tile else None, "tta": str(self.tta) if self.tta else None,
                "scale": self.scale if self.tile else None}

    def resized_labels(self, batch: np.ndarray, shapes, threshold: float = 0.5) -> list[np.ndarray]:
        """Labels of a batch already resized to the model's size, resized to `shapes`."""
        if self.tta is None:  # exactly as before TTA existed: the model's own outputs resized
            return self.predictor.labels(batch, shapes, threshold)
        p = probabilities(self.predictor, batch, self.tta)
        return [decide(q if q.shape[:2] == tuple(s) else _resize(q[None], *s)[0], "probabilities", threshold)
                for q, s in zip(p, shapes)]

    def tile_count(self, image_shape) -> int:
        h, w = self._scaled_shape(image_shape[:2])
        return self.tiling.count(h, w)

    def tiled_labels(self, image: np.ndarray, threshold: float = 0.5, on_tiles=None) -> np.ndarray:
        """uint8 [H, W] labels of uint8 `image` [H, W, 3] by sliding tiles. At scale 1 the labels
        are decided strip by strip (bounded memory); otherwise the probability map at the scaled
        size is resized back whole."""
        tiling = self.tiling
        if self.scale == 1:
            return tiling.labels(image, threshold, on_tiles)
        h, w = image.shape[:2]
        from seglab.data.pipeline import resize_images

        small = resize_images(image, *self._scaled_shape((h, w)), image.dtype.name)
        p = tiling.probabilities(np.asarray(small).astype(image.dtype), on_tiles)
        return decide(_resize(p[None], h, w)[0], "probabilities", threshold)

    def _scaled_shape(self, shape) -> tuple[int, int]:
        return tuple(max(1, round(side * self.scale)) for side in shape)
