"""Paired augmentation: one random draw applied to an image and its mask alike.

All randomness is stateless and comes from a per-sample seed, so a run is repeatable and the
image and mask can never drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from seglab.data.classes import IGNORE_INDEX


def pad_pair(image, mask, height, width, top, left, ignore_index: int = IGNORE_INDEX):
    """Pad image [h, w, 3] with 0 and mask [h, w] with `ignore_index` to [height, width], placing
    the original at (top, left). Padded mask pixels are labelled nothing, not background."""
    h, w = tf.shape(mask)[0], tf.shape(mask)[1]
    paddings = [[top, height - h - top], [left, width - w - left]]
    image = tf.pad(image, paddings + [[0, 0]])
    mask = tf.pad(mask, paddings, constant_values=tf.cast(ignore_index, mask.dtype))
    return image, mask


def resize_pair(image, mask, height, width, method: str = "bilinear"):
    """Resize image with `method` (float32 out) and mask with nearest neighbour, so the mask holds
    only values it held before."""
    image = tf.image.resize(image, [height, width], method=method)
    mask = tf.image.resize(mask[..., None], [height, width], method="nearest")[..., 0]
    return image, mask


@dataclass(frozen=True)
class Augment:
    """Random flip, scale-and-crop, brightness and contrast.

    `scale` (lo, hi) zooms by a factor drawn from that range: above 1 crops a random window,
    below 1 pads the mask with ignore. `brightness` is the largest shift as a fraction of 255;
    `contrast` the largest relative change. Set a field to its neutral value to turn it off.
    """

    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.5)
    brightness: float = 0.1
    contrast: float = 0.2
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self):
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"Augment scale must be (lo, hi) with 0 < lo <= hi; got {self.scale}.")

    def __call__(self, image, mask, seed):
        """image float32 [H, W, 3] 0..255, mask uint8 [H, W], seed int64 [2] -> the same shapes."""
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
        height, width = tf.shape(mask)[0], tf.shape(mask)[1]
        if self.flip:
            flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
            image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
            mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
        if self.scale != (1.0, 1.0):
            image, mask = self._scale_crop(image, mask, height, width, seeds[1], seeds[2], seeds[5])
        if self.brightness:
            image = image + 255.0 * tf.random.stateless_uniform([], seeds[3], -self.brightness, self.brightness)
        if self.contrast:
            factor = tf.random.stateless_uniform([], seeds[4], 1 - self.contrast, 1 + self.contrast)
            mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
            image = (image - mean) * factor + mean
        return tf.clip_by_value(image, 0.0, 255.0), mask

    def _scale_crop(self, image, mask, height, width, scale_seed, pad_seed, crop_seed):
        factor = tf.random.stateless_uniform([], scale_seed, *self.scale)
        new_h = tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float32) * factor), tf.int32))
        new_w = tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float32) * factor), tf.int32))
        image, mask = resize_pair(image, mask, new_h, new_w)
        # Zoomed out: pad to the output size first. Then one random window for both.
        canvas_h, canvas_w = tf.maximum(new_h, height), tf.maximum(new_w, width)
        span = tf.stack([canvas_h - new_h + 1, canvas_w - new_w + 1])
        pad_at = tf.random.stateless_uniform([2], pad_seed, 0, 2**30, dtype=tf.int32) % span
        image, mask = pad_pair(image, mask, canvas_h, canvas_w, pad_at[0], pad_at[1], self.ignore_index)
        crop_span = tf.stack([canvas_h - height + 1, canvas_w - width + 1])
        crop_at = tf.random.stateless_uniform([2], crop_seed, 0, 2**30, dtype=tf.int32) % crop_span
        image = image[crop_at[0]:crop_at[0] + height, crop_at[1]:crop_at[1] + width]
        mask = mask[crop_at[0]:crop_at[0] + height, crop_at[1]:crop_at[1] + width]
        return image, mask
