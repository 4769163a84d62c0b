"""Paired augmentation: one random draw applied to an image and its mask alike.

All randomness is stateless and comes from a per-batch seed, so a run is repeatable and an image
and its mask can never drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from seglab.core.errors import BadArgument
from seglab.data.classes import IGNORE_INDEX


@dataclass(frozen=True)
class Augment:
    """Random flip, scale-and-crop, brightness and contrast, on whole batches.

    `scale` (lo, hi) zooms by a factor drawn from that range: above 1 shows a random window,
    below 1 shows the whole image smaller, padded (mask with ignore). `brightness` is the largest
    shift as a fraction of 255; `contrast` the largest relative change. Set a field to its neutral
    value to turn it off. Flip, zoom and crop are one `crop_and_resize` per batch: a sample's
    draw becomes a box, the same box for its image and its mask.
    """

    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.5)
    brightness: float = 0.1
    contrast: float = 0.2
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self):
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise BadArgument(f"Augment scale must be (lo, hi) with 0 < lo <= hi; got {self.scale}.")

    def __call__(self, images, masks, seed, part=None):
        """images float32 [B, H, W, 3] 0..255, masks uint8 [B, H, W], seed int64 [2] -> the same shapes.

        `part` (offset, total): the batch is samples offset .. offset + B of a batch of `total`
        drawn with `seed` (one replica's share in data-parallel training); each sample gets the
        draw it gets in that whole batch."""
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)
        batch, height, width = tf.shape(masks)[0], tf.shape(masks)[1], tf.shape(masks)[2]
        draws, first = (batch, 0) if part is None else (tf.cast(part[1], tf.int32), tf.cast(part[0], tf.int32))
        mine = lambda values: values[first:first + batch]  # noqa: E731
        boxes = mine(self._boxes(draws, seeds[0], seeds[1], seeds[2]))
        index = tf.range(batch)
        images = tf.image.crop_and_resize(images, boxes, index, [height, width], method="bilinear", extrapolation_value=0.0)
        masks = tf.image.crop_and_resize(tf.cast(masks[..., None], tf.float32), boxes, index, [height, width],
                                         method="nearest", extrapolation_value=float(self.ignore_index))
        masks = tf.cast(masks[..., 0], tf.uint8)
        if self.brightness:
            images += 255.0 * mine(tf.random.stateless_uniform([draws, 1, 1, 1], seeds[3], -self.brightness, self.brightness))
        if self.contrast:
            factor = mine(tf.random.stateless_uniform([draws, 1, 1, 1], seeds[4], 1 - self.contrast, 1 + self.contrast))
            mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            images = (images - mean) * factor + mean
        return tf.clip_by_value(images, 0.0, 255.0), masks

    def _boxes(self, batch, flip_seed, scale_seed, offset_seed):
        """Normalised [y0, x0, y1, x1] boxes [B, 4]: a box of side 1/scale at a random place
        (inside the image when zooming in, around it when zooming out), x reversed to flip."""
        side = 1.0 / tf.random.stateless_uniform([batch, 1], scale_seed, *self.scale)
        start = tf.random.stateless_uniform([batch, 2], offset_seed) * (1.0 - side)
        y0, x0 = start[:, :1], start[:, 1:]
        y1, x1 = y0 + side, x0 + side
        if self.flip:
            flip = tf.random.stateless_uniform([batch, 1], flip_seed) < 0.5
            x0, x1 = tf.where(flip, x1, x0), tf.where(flip, x0, x1)
        return tf.concat([y0, x0, y1, x1], axis=1)
