"""Paired augmentation: one random draw applied to an image and its mask alike.

All randomness is stateless and comes from a per-batch seed, so a run is repeatable (and
`--resume` exact) and an image and its mask can never drift apart. Each operation draws from its
own stream, the batch seed folded with the operation's fixed number (`STREAMS`), so turning one
operation on or off, or adding a new one, leaves every other operation's draws as they were.
"""
from __future__ import annotations

from dataclasses import dataclass

from seglab.core.schema import option

# Each operation's random stream. A number is never reused or changed: a new operation takes the
# next one, so the draws of the others stay the same.
STREAMS = {"flip": 1, "zoom": 2, "offset": 3, "brightness": 4, "contrast": 5, "vflip": 6}


@dataclass(frozen=True)
class Augment:
    """Random flips, zoom-and-crop, brightness and contrast on training batches; each field is one
    operation's strength, and its neutral value (0, or zoom 1,1) turns it off. Flips, zoom and crop
    are one `crop_and_resize` per batch: a sample's draws become a box, the same box for its image
    and its mask."""

    flip: float = option(0.5, "Probability of a horizontal flip.", "float", minimum=0, maximum=1)
    vflip: float = option(0.0, "Probability of a vertical flip (aerial and microscopy images have no 'up').",
                          "float", minimum=0, maximum=1, legacy=0.0)
    zoom: tuple[float, float] = option((0.75, 1.5), "Zoom factor range lo,hi: above 1 shows a random window, below 1 "
                                       "the whole image smaller, padded (mask: ignore). 1,1 turns it off.",
                                       "pair", minimum=0.05, maximum=8)
    brightness: float = option(0.1, "Largest brightness shift, as a share of the value range.", "float",
                               minimum=0, maximum=1)
    contrast: float = option(0.2, "Largest relative contrast change.", "float", minimum=0, maximum=1)

    @classmethod
    def off(cls) -> "Augment":
        """Every operation at its neutral value: no augmentation."""
        return cls(flip=0.0, vflip=0.0, zoom=(1.0, 1.0), brightness=0.0, contrast=0.0)

    @property
    def enabled(self) -> bool:
        return self != Augment.off()

    def draws(self, batch, seed) -> dict:
        """Each enabled operation's per-sample draws for a batch of `batch` with `seed` (int64 [2]),
        each from its own stream: {"flip": bool [B, 1], "zoom": [B, 1], "offset": [B, 2], ...}."""
        import tensorflow as tf

        seed = tf.cast(seed, tf.int64)
        stream = lambda name: tf.random.experimental.stateless_fold_in(seed, STREAMS[name])  # noqa: E731
        uniform = lambda name, shape, lo=0.0, hi=1.0: tf.random.stateless_uniform(shape, stream(name), lo, hi)  # noqa: E731
        found = {"zoom": uniform("zoom", [batch, 1], *self.zoom), "offset": uniform("offset", [batch, 2])}
        if self.flip:
            found["flip"] = uniform("flip", [batch, 1]) < self.flip
        if self.vflip:
            found["vflip"] = uniform("vflip", [batch, 1]) < self.vflip
        if self.brightness:
            found["brightness"] = uniform("brightness", [batch, 1, 1, 1], -self.brightness, self.brightness)
        if self.contrast:
            found["contrast"] = uniform("contrast", [batch, 1, 1, 1], 1 - self.contrast, 1 + self.contrast)
        return found

    def __call__(self, images, masks, seed, part=None, ignore_index: int = 255, span=None, bounds=(0.0, 255.0)):
        """images float32 [B, H, W, 3] 0..255, masks uint8 [B, H, W], seed int64 [2] -> the same shapes.

        Images of other bands [B, H, W, C] give `span`, each band's value span (a number or C of
        them), which a brightness shift is a share of, and the `bounds` of their pixel type; the
        contrast then changes around each band's own mean. 8-bit RGB (no span): 255, 0..255 and the
        mean of all channels, as always.

        `part` (offset, total): the batch is samples offset .. offset + B of a batch of `total`
        drawn with `seed` (one replica's share in data-parallel training); each sample gets the
        draw it gets in that whole batch. Pixels zoomed out from outside the image are 0 in the
        image and `ignore_index` in the mask."""
        import tensorflow as tf

        batch, height, width = tf.shape(masks)[0], tf.shape(masks)[1], tf.shape(masks)[2]
        total, first = (batch, 0) if part is None else (tf.cast(part[1], tf.int32), tf.cast(part[0], tf.int32))
        draws = {name: values[first:first + batch] for name, values in self.draws(total, seed).items()}
        boxes, index = _boxes(draws), tf.range(batch)
        images = tf.image.crop_and_resize(images, boxes, index, [height, width], method="bilinear", extrapolation_value=0.0)
        masks = tf.image.crop_and_resize(tf.cast(masks[..., None], tf.float32), boxes, index, [height, width],
                                         method="nearest", extrapolation_value=float(ignore_index))
        masks = tf.cast(masks[..., 0], tf.uint8)
        if "brightness" in draws:
            images += (255.0 if span is None else tf.constant(span, tf.float32)) * draws["brightness"]
        if "contrast" in draws:
            mean = tf.reduce_mean(images, axis=[1, 2, 3] if span is None else [1, 2], keepdims=True)
            images = (images - mean) * draws["contrast"] + mean
        return tf.clip_by_value(images, *bounds), masks


def _boxes(draws: dict):
    """Normalised [y0, x0, y1, x1] boxes [B, 4]: a box of side 1/zoom at a random place (inside the
    image when zooming in, around it when zooming out), x reversed to flip, y to flip vertically."""
    import tensorflow as tf

    side = 1.0 / draws["zoom"]
    start = draws["offset"] * (1.0 - side)
    y0, x0 = start[:, :1], start[:, 1:]
    y1, x1 = y0 + side, x0 + side
    if "flip" in draws:
        x0, x1 = tf.where(draws["flip"], x1, x0), tf.where(draws["flip"], x0, x1)
    if "vflip" in draws:
        y0, y1 = tf.where(draws["vflip"], y1, y0), tf.where(draws["vflip"], y0, y1)
    return tf.concat([y0, x0, y1, x1], axis=1)
