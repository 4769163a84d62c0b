"""The tf.data input pipeline: decode, resize, augment pairs, batch, prefetch.

Plain JPEG/PNG images with 8-bit index masks (most datasets) decode in TensorFlow, JPEGs at
reduced DCT scale when that still covers the output size. Anything else (EXIF-rotated, CMYK,
16-bit, palette or colour masks, side-by-side pairs) goes through the same Pillow decoder that
`seglab check` uses. Images reach the model as float32 0..255 RGB; masks as uint8 class indices.
Images beyond 8-bit RGB (`source.bands`, see `seglab.data.bands`) are read with
`seglab.data.rasters`, their bands selected, and reach the model as float32 holding their source
values (whole numbers for integer types), cached in their source type.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from PIL import Image

from seglab.core.errors import BadArgument
from seglab.data.augment import Augment
from seglab.data.check import validate
from seglab.data.classes import IGNORE_INDEX
from seglab.data.images import read_image
from seglab.data.masks import ValueMap, decode_mask
from seglab.data.rasters import read_raster
from seglab.data.shard import Shard
from seglab.data.sources import Pair, Source

JPEG_RATIOS = (1, 2, 4, 8)  # decode routes 0..3: TensorFlow JPEG decode at 1/ratio scale
ROUTE_PNG = 4  # TensorFlow PNG decode
ROUTE_PIL = 5  # Pillow, for everything else


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
class Size:
    """Output size: `height` x `width`; `keep_aspect` fits the image inside and pads the rest."""

    height: int
    width: int
    keep_aspect: bool = False

    @classmethod
    def of(cls, size, keep_aspect: bool = False) -> "Size":
        h, w = (size, size) if isinstance(size, int) else size
        if h < 1 or w < 1:
            raise BadArgument(f"Image size must be positive; got {h}x{w}.")
        return cls(int(h), int(w), keep_aspect)

    def resized(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) an h x w image is resized to before any padding."""
        if not self.keep_aspect:
            return self.height, self.width
        s = min(self.height / h, self.width / w)
        return max(1, round(h * s)), max(1, round(w * s))


@dataclass(frozen=True)
class Crops:
    """Square crops of side `side` taken at each image's own resolution, after one resize of
    the whole image by `scale`: random crops for training, the centre crop for validation.
    An image smaller than a crop is padded (the mask with ignore)."""

    side: int
    scale: float = 1.0
    keep_aspect = False  # the loader's Size interface: crops never pad to a shape

    def __post_init__(self):
        if self.side < 1:
            raise BadArgument(f"crop must be at least 1 pixel; got {self.side}.")
        if not (0 < self.scale <= 4 and np.isfinite(self.scale)):
            raise BadArgument(f"scale must be above 0 and at most 4; got {self.scale}.")

    def resized(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) an h x w image is resized to before cropping."""
        return max(1, round(h * self.scale)), max(1, round(w * self.scale))

    def take(self, image, mask, ignore_index: int, seed=None):
        """A side x side crop of image [h, w, 3] and mask [h, w]: at a place drawn from `seed`
        (int64 [2]), or the centre without one."""
        h, w = tf.shape(mask)[0], tf.shape(mask)[1]
        ph, pw = tf.maximum(h, self.side), tf.maximum(w, self.side)
        image, mask = pad_pair(image, mask, ph, pw, (ph - h) // 2, (pw - w) // 2, ignore_index)
        room = tf.cast(tf.stack([ph - self.side, pw - self.side]), tf.float32)
        if seed is None:
            top_left = tf.cast(room // 2, tf.int32)
        else:
            top_left = tf.cast(tf.floor(tf.random.stateless_uniform([2], seed) * (room + 1)), tf.int32)
            top_left = tf.minimum(top_left, tf.cast(room, tf.int32))  # the draw may reach room + 1 at 1.0
        y, x = top_left[0], top_left[1]
        return (tf.ensure_shape(image[y:y + self.side, x:x + self.side], [self.side, self.side, image.shape[-1]]),
                tf.ensure_shape(mask[y:y + self.side, x:x + self.side], [self.side, self.side]))


def decode_route(pair: Pair, source: Source, size: Size) -> int:
    """Which decoder a pair takes, from its file headers."""
    if pair.image_region or pair.mask_region or not isinstance(source.encoding, ValueMap) or not source.bands.rgb:
        return ROUTE_PIL  # (bands beyond 8-bit RGB take the raster route, whatever this says)
    try:
        with Image.open(pair.mask) as m:
            if m.format != "PNG" or m.mode != "L":
                return ROUTE_PIL
        with Image.open(pair.image) as im:
            if im.format == "PNG" and im.mode in ("RGB", "RGBA", "L", "LA"):
                return ROUTE_PNG
            if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.getexif().get(0x0112, 1) not in (0, 1):
                return ROUTE_PIL
            w, h = im.size
    except (OSError, Image.DecompressionBombError):
        return ROUTE_PIL  # validation reports it; Pillow gives the clear error if it is still read
    rh, rw = size.resized(h, w)
    # Largest DCT downscale whose output still covers the resize target (libjpeg rounds up);
    # full scale when the image is upscaled anyway.
    fits = [i for i, r in enumerate(JPEG_RATIOS) if -(-h // r) >= rh and -(-w // r) >= rw]
    return fits[-1] if fits else 0


def read_pair(image_path, mask_path, encoding, image_region=None, mask_region=None, draft_size=None):
    """One pair with Pillow: image uint8 [h, w, 3] (at least `draft_size` when given, else full
    size) and class indices uint8 [H, W] at full size."""
    if image_region:  # side-by-side: decode at full size, then take the half
        image = read_image(image_path)
        half = image.shape[1] // 2
        image = image[:, :half] if image_region == "left" else image[:, half:2 * half]
    else:
        image = read_image(image_path, draft_size=draft_size)
    return np.ascontiguousarray(image), decode_mask(mask_path, encoding, mask_region).labels


def as_loaded(images, dtype: str = "uint8"):
    """Pixel values as the cache of `dtype` stores them: rounded to whole values in its range for an
    integer type (0..255 for 8-bit images), as they are for float32. Cached or not, resized here
    or in predict, a sample is the same pixels, so training's val_miou and `seglab evaluate`
    agree exactly. The one home of that rule."""
    if dtype == "uint8":
        return tf.round(tf.clip_by_value(images, 0.0, 255.0))
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        return tf.round(tf.clip_by_value(images, float(info.min), float(info.max)))
    return images


def resize_images(images, height: int, width: int, dtype: str = "uint8"):
    """Images [B, h, w, C] (or [h, w, C]) resized bilinearly to height x width, `as_loaded`."""
    return as_loaded(tf.image.resize(tf.cast(images, tf.float32), (height, width)), dtype)


def model_input(images, size: int, dtype: str = "uint8"):
    """Images [B, h, w, C] at the model's square input: what evaluation at full resolution and
    prediction feed the model."""
    return resize_images(images, size, size, dtype)


def read_raster_pair(image_path, mask_path, encoding, bands, mask_region=None):
    """One pair beyond 8-bit RGB: the image's `bands` (a `Bands`) [h, w, C] in its dtype, and class
    indices uint8 [H, W]."""
    raster = read_raster(image_path).select(bands.names, image_path)
    return (np.ascontiguousarray(raster.pixels.astype(bands.dtype, copy=False)),
            decode_mask(mask_path, encoding, mask_region).labels)


def _pil_decode(encoding, image_path, mask_path, image_region, mask_region, draft_w, draft_h):
    """Pillow route of the tf.data loader (byte-string arguments from numpy_function)."""
    draft = (int(draft_w), int(draft_h)) if draft_w and draft_h else None
    return read_pair(os.fsdecode(image_path), os.fsdecode(mask_path), encoding, image_region.decode() or None,
                     mask_region.decode() or None, draft)


def _loader(source: Source, size: Size, interpolation: str):
    enc = source.encoding
    ignore = source.classes.ignore_index
    bands = source.bands
    to_classes = value_map_op(enc) if isinstance(enc, ValueMap) and bands.rgb else None

    def tf_branch(decode):
        def run(image_path, mask_path):
            image = decode(tf.io.read_file(image_path))
            return image, tf.io.decode_png(tf.io.read_file(mask_path), channels=1)[..., 0]
        return run

    def load(image_path, mask_path, route, image_region, mask_region):
        branches = [tf_branch(lambda d, r=r: tf.io.decode_jpeg(d, channels=3, ratio=r)) for r in JPEG_RATIOS]
        branches.append(tf_branch(lambda d: tf.io.decode_png(d, channels=3)))

        def pil():
            draft = (0, 0) if isinstance(size, Crops) else (size.width, size.height)  # crops: the image's own size
            image, labels = tf.numpy_function(
                lambda *a: _pil_decode(enc, *a), [image_path, mask_path, image_region, mask_region, *draft],
                [tf.uint8, tf.uint8], stateful=False)
            return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(labels, [None, None])

        def raster():
            image, labels = tf.numpy_function(
                lambda i, m, r: read_raster_pair(os.fsdecode(i), os.fsdecode(m), enc, bands, r.decode() or None),
                [image_path, mask_path, mask_region], [tf.as_dtype(bands.dtype), tf.uint8], stateful=False)
            return tf.ensure_shape(image, [None, None, bands.channels]), tf.ensure_shape(labels, [None, None])
        if not bands.rgb:
            image, labels = raster()
        elif to_classes is None:
            image, labels = pil()
        else:
            image, labels = tf.switch_case(route, [lambda b=b: b(image_path, mask_path) for b in branches] + [pil])
        h, w = tf.shape(labels)[0], tf.shape(labels)[1]
        rh, rw = _resized(size, h, w)
        image, labels = resize_pair(image, labels, rh, rw, interpolation)
        if to_classes is not None:
            # TensorFlow routes give raw mask values: map them to classes after the nearest-neighbour
            # resize, on far fewer pixels.
            labels = tf.cond(route == ROUTE_PIL, lambda: labels, lambda: to_classes(labels))
        if size.keep_aspect:
            image, labels = pad_pair(image, labels, size.height, size.width,
                                     (size.height - rh) // 2, (size.width - rw) // 2, ignore)
        image = as_loaded(image, bands.dtype)
        if isinstance(size, Crops):  # each image its own size: cropped after the cache
            return tf.ensure_shape(image, [None, None, bands.channels]), tf.ensure_shape(labels, [None, None])
        return (tf.ensure_shape(image, [size.height, size.width, bands.channels]),
                tf.ensure_shape(labels, [size.height, size.width]))
    return load


def value_map_op(enc: ValueMap):
    """raw uint8 values -> class indices as a TensorFlow function; values outside the map (which
    validation refuses) become ignore."""
    classes = sorted(raw for raw, cls in enc.values.items() if cls != IGNORE_INDEX)
    lo, hi = classes[0], classes[-1]
    if classes == list(range(lo, hi + 1)) and all(enc.values[raw] == raw - lo for raw in classes):
        # Contiguous codes (identity, Oxford's 1-based trimaps, CamVid): a compare and a
        # subtraction, a tenth of the cost of a gather, which runs at ~7 ns a pixel on CPU.
        ignore = tf.constant(IGNORE_INDEX, tf.uint8)
        return lambda raw: tf.where((raw >= lo) & (raw <= hi), raw - lo, ignore)
    table = enc.lookup_table(256)
    lut = tf.constant(np.where(table < 0, IGNORE_INDEX, table).astype(np.uint8))
    return lambda raw: tf.gather(lut, tf.cast(raw, tf.int32))


def _resized(size: Size | Crops, h, w):
    if isinstance(size, Crops):
        scale = tf.constant(size.scale, tf.float64)
        return (tf.maximum(1, tf.cast(tf.round(tf.cast(h, tf.float64) * scale), tf.int32)),
                tf.maximum(1, tf.cast(tf.round(tf.cast(w, tf.float64) * scale), tf.int32)))
    if not size.keep_aspect:
        return size.height, size.width
    s = tf.minimum(size.height / tf.cast(h, tf.float64), size.width / tf.cast(w, tf.float64))
    return (tf.maximum(1, tf.cast(tf.round(tf.cast(h, tf.float64) * s), tf.int32)),
            tf.maximum(1, tf.cast(tf.round(tf.cast(w, tf.float64) * s), tf.int32)))


def make_dataset(
    source: Source,
    split: str = "train",
    *,
    size=128,
    batch_size: int = 8,
    augment: Augment | bool = False,
    keep_aspect: bool = False,
    interpolation: str = "bilinear",
    shuffle: bool | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    seed: int = 0,
    validate_first: bool = True,
    crop: int | None = None,
    scale: float = 1.0,
    start_batch: int = 0,
    shard: Shard | None = None,
    span=None,
) -> tf.data.Dataset:
    """A batched tf.data.Dataset of (images float32 [B, H, W, 3] in 0..255, masks uint8 [B, H, W]);
    for a source of other bands (`source.bands`), images [B, H, W, C] holding their source values.

    With `validate_first` every pair of the split is decoded and checked once before anything is
    built, and a DatasetError lists every problem (the messages of `seglab check`). `shuffle`
    defaults to True for the train split. `cache` keeps decoded, resized samples in memory after
    the first epoch; augmentation still draws anew every epoch.

    `crop`: instead of resizing whole images to `size`, take `crop` x `crop` crops of them at
    their own resolution after resizing by `scale` (`Crops`): random ones for the train split,
    drawn anew every epoch, the centre one for the others. The cache then holds whole images.

    `start_batch`: begin the stream at that batch, as if that many had been taken (a resumed
    run), skipping file names and random draws rather than decoding what is skipped.

    `span`: with bands beyond 8-bit RGB, each band's value span (the model's stretch, see
    `seglab.models.inputs`), which brightness shifts are a share of; default 255.

    `shard`: this input pipeline's share of each batch of `batch_size` (data-parallel training,
    see `seglab.data.shard.Shard`), batched `shard.replica_batch` at a time. Every sample gets the
    crop and augmentation it gets in the single-process stream. A finite split is padded with
    samples labelled only ignore, so every pipeline yields as many batches and the scores do not
    change.
    """
    if interpolation not in ("bilinear", "area"):
        raise BadArgument(f"interpolation must be 'bilinear' or 'area'; got '{interpolation}'.")
    if batch_size < 1:
        raise BadArgument(f"batch_size must be at least 1; got {batch_size}.")
    size = Crops(crop, scale) if crop else Size.of(size, keep_aspect)
    pairs = source.split(split)
    if validate_first:
        validate(source, [split])
    shuffle = (split == "train") if shuffle is None else shuffle
    augment = Augment() if augment is True else augment if isinstance(augment, Augment) and augment.enabled else None

    if shard is not None and shuffle and not repeat:
        raise BadArgument("a shard of a finite split takes slices of its batches in order: shuffle needs repeat.")
    positions = range(len(pairs))
    if shard is not None and not repeat:  # a finite split: this pipeline's slices, padded to whole batches
        positions = [n for n in positions if shard.keeps(n)]
        padding = -(-len(pairs) // batch_size) * shard.share - len(positions)
        pairs = [pairs[n] for n in positions]
    columns = (  # paths as bytes: any file name works, UTF-8 or not
        [os.fsencode(p.image) for p in pairs], [os.fsencode(p.mask) for p in pairs],
        np.array([decode_route(p, source, size) for p in pairs], np.int32),
        [p.image_region or "" for p in pairs], [p.mask_region or "" for p in pairs],
    )
    load = _loader(source, size, interpolation)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if cache:
        # Decoded samples are cached in their source type (uint8: a quarter of float32's memory);
        # shuffling, repeating and augmenting happen after the cache, so they still vary by epoch.
        cached = tf.as_dtype(source.bands.dtype)
        ds = _map(ds, lambda *c: _cast_image(cached, *load(*c)), num_parallel_calls=tf.data.AUTOTUNE).cache()
        load = lambda image, mask: (tf.cast(image, tf.float32), mask)  # noqa: E731
    if shuffle:  # uncached: shuffle file names before decoding, cheap and a full shuffle
        ds = ds.shuffle(min(len(pairs), 4096) if cache else len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    random_crops = isinstance(size, Crops) and split == "train"
    if random_crops:  # one seed per sample, drawn after shuffle and repeat: new crops every epoch
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed + 1).batch(2, drop_remainder=True)))
    if start_batch:
        ds = ds.skip(start_batch * batch_size)
    if shard is not None and repeat:  # before decoding: each pipeline decodes only its own samples
        keeps = tf.autograph.experimental.do_not_convert(lambda n, sample: shard.keeps(n))
        ds = _map(ds.enumerate().filter(keeps), lambda n, sample: sample)
    ignore = source.classes.ignore_index
    if random_crops:
        ds = _map(ds, lambda sample, s: size.take(*load(*sample), ignore, s), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = _map(ds, load, num_parallel_calls=tf.data.AUTOTUNE)
        if isinstance(size, Crops):
            ds = _map(ds, lambda image, mask: size.take(image, mask, ignore), num_parallel_calls=tf.data.AUTOTUNE)
    if shard is not None and not repeat and padding:
        h, w = (size.side, size.side) if isinstance(size, Crops) else (size.height, size.width)
        blank = (tf.zeros([h, w, source.bands.channels], tf.float32), tf.fill([h, w], tf.constant(ignore, tf.uint8)))
        ds = ds.concatenate(tf.data.Dataset.from_tensors(blank).repeat(padding))
    ds = ds.batch(batch_size if shard is None else shard.replica_batch, drop_remainder=drop_remainder)
    if augment is not None:
        values = {} if source.bands.rgb else {"span": 255.0 if span is None else span,
                                              "bounds": source.bands.value_range}
        # One seed per batch, drawn after shuffle and repeat so every epoch draws anew. A shard's
        # batch takes its slice of the draws of the whole batch it is part of.
        seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True).skip(start_batch)
        if shard is None:
            ds = _map(tf.data.Dataset.zip((ds, seeds)), lambda batch, s: augment(*batch, s, ignore_index=ignore, **values),
                      num_parallel_calls=tf.data.AUTOTUNE)
        else:
            seeds = seeds.flat_map(lambda s: tf.data.Dataset.from_tensors(s).repeat(shard.replicas))
            ds = _map(tf.data.Dataset.zip((ds, seeds)).enumerate(),
                lambda m, batch_seed: augment(*batch_seed[0], batch_seed[1], part=(shard.offset(m), batch_size),
                                               ignore_index=ignore, **values),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_without_autotune_model())


def _map(ds: tf.data.Dataset, fn, **options) -> tf.data.Dataset:
    """`ds.map(fn)` without AutoGraph. seglab's dataset functions branch with tf.cond and
    tf.switch_case themselves, so converting them (what tf.data does by default) changes nothing
    but costs time at the start of every run. With the losses' and metrics' XLA functions also
    left unconverted (seglab.core.xla), `seglab train` of the tiny test model for 2 epochs took 18.2 s
    of CPU against 21.0 (16.0 s against 19.2 of wall time; medians of 6 alternated runs)."""
    return ds.map(tf.autograph.experimental.do_not_convert(fn), **options)


def _without_autotune_model() -> tf.data.Options:
    """tf.data's autotuner runs a model thread that wakes after an optimization period which
    doubles up to 60 s. An iterator consumed inside a tf.function, as Keras's fit, evaluate and
    predict consume them, is not woken when the iterator is destroyed (TF 2.21): the destructor
    waits out the period. The training iterator lives through every epoch, so its period grows
    with the run: `fit` returned 8 s after the last log line of 3 short epochs, and about a minute
    late after long runs. Without the autotuner, AUTOTUNE map parallelism is min(16, CPU cores)
    and prefetch still sizes its own buffer; epochs on 2 cores took as long as before."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _cast_image(dtype, image, mask):
    return tf.cast(image, dtype), mask  # exact: the loader gives whole values for integer types
