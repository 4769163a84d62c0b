"""A dataset's fingerprint: what a plan needs to know about the data (nnU-Net's idea, for any 2D
dataset). Counts, image sizes, bands and class shares come from the dataset doctor's reports; the
shape of each class (how large its objects are next to the image, how thin, where in the frame)
from connected components of a seeded sample of training masks.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from seglab.data.check import CheckReport, PairReport
from seglab.data.masks import decode_mask
from seglab.data.sources import Source

MASKS_MEASURED = 48  # training masks whose components are measured: enough for medians, cheap on any dataset
LONGEST_MEASURED = 2048  # masks longer than this are measured on every k-th pixel (k whole), widths scaled back


@dataclass(frozen=True)
class ClassShape:
    """How one class appears in the masks measured.

    `object_size` and `small_object_size`: the median and 10th percentile over the class's pixels
    of the size of the connected component (8-connected) each lies in, sqrt(component area / image
    area), so 0.5 is an object a quarter of the image. Counted by pixels, not by components, so that
    specks (a few stray pixels) do not pass for the class's small objects.
    `width`: the median over masks of the class's typical stroke width in native pixels, 2 x area /
    boundary pixels (a line w wide gives w, a disc of radius r gives r). `top_share`/`left_share`:
    the share of its pixels in the image's top/left half (0.5 when a flip cannot tell);
    `middle_share`: in the middle half of the rows (0.5 for a class found anywhere alike, more for
    objects photographed in the centre of the frame)."""

    name: str
    pixel_fraction: float
    images: int  # masks measured that hold the class
    objects_per_image: float
    object_size: float | None
    small_object_size: float | None
    width: float | None
    top_share: float | None
    left_share: float | None
    middle_share: float | None


@dataclass(frozen=True)
class Fingerprint:
    format: str
    root: str
    pairs: dict  # per split
    train_pairs: int
    median_size: tuple[int, int]  # (width, height) at native resolution
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    bands: tuple[str, ...]
    dtype: str
    classes: tuple[ClassShape, ...]
    ignored_fraction: float
    masks_measured: int

    @property
    def short_side(self) -> int:
        return min(self.median_size)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict:
        data = asdict(self)
        data["classes"] = [asdict(c) for c in self.classes]
        return data


def fingerprint(source: Source, reports: list[PairReport]) -> Fingerprint:
    """The fingerprint of `source` from the doctor's `reports` of its pairs (seglab.data.check)."""
    check = CheckReport(source, reports)
    sizes = check.image_size_stats()
    bands = check.band_summary()
    stats = check.stats
    labelled = int(stats.pixels.sum())
    train = [p for p in source.pairs if p.split == "train"] or list(source.pairs)
    measured = _sample(train, MASKS_MEASURED)
    shapes = _class_shapes(measured, source)
    classes = tuple(ClassShape(name, round(float(fraction), 6), **shape)
                    for name, fraction, shape in zip(source.classes.names, stats.fractions, shapes))
    return Fingerprint(
        format=source.format, root=str(source.root), pairs=dict(source.splits), train_pairs=len(train),
        median_size=tuple(int(v) for v in sizes.get("median", (0, 0))), min_size=tuple(sizes.get("min", (0, 0))),
        max_size=tuple(sizes.get("max", (0, 0))), bands=tuple(bands.get("names", source.bands.names)),
        dtype=(bands.get("dtypes") or [source.bands.dtype])[0], classes=classes,
        ignored_fraction=round(stats.ignored / max(1, stats.ignored + labelled), 6), masks_measured=len(measured))


def _sample(pairs, count: int):
    """`count` pairs spread over the list, the same ones for the same names (seeded by name, not order)."""
    if len(pairs) <= count:
        return list(pairs)
    return sorted(pairs, key=lambda p: zlib.crc32(p.name.encode("utf-8", "replace")))[:count]


def _class_shapes(pairs, source: Source) -> list[dict]:
    num = source.classes.num_classes
    sizes = [[] for _ in range(num)]  # per class: (relative size, pixels) of each component
    widths = [[] for _ in range(num)]
    objects = np.zeros(num)
    images = np.zeros(num, np.int64)
    top = np.zeros(num)
    left = np.zeros(num)
    middle = np.zeros(num)
    total = np.zeros(num)
    eight = np.ones((3, 3), bool)
    for pair in pairs:
        labels = decode_mask(pair.mask, source.encoding, pair.mask_region).labels
        step = max(1, -(-max(labels.shape) // LONGEST_MEASURED))
        labels = labels[::step, ::step]
        h, w = labels.shape
        area = float(h * w)
        for c in np.unique(labels):
            if c >= num:
                continue  # ignore
            inside = labels == c
            count = int(inside.sum())
            components, found = ndimage.label(inside, structure=eight)
            component_areas = np.bincount(components.ravel())[1:]
            sizes[c] += zip(np.sqrt(component_areas / area).tolist(), component_areas.tolist())
            boundary = count - int(ndimage.binary_erosion(inside, structure=eight, border_value=1).sum())
            if boundary:
                widths[c].append(2.0 * count / boundary * step)
            objects[c] += found
            images[c] += 1
            top[c] += inside[: h // 2].sum() + 0.5 * inside[h // 2: h - h // 2].sum()  # an odd middle row counts half
            left[c] += inside[:, : w // 2].sum() + 0.5 * inside[:, w // 2: w - w // 2].sum()
            middle[c] += inside[h // 4: h - h // 4].sum()
            total[c] += count
    out = []
    for c in range(num):
        seen = images[c] > 0
        out.append({
            "images": int(images[c]),
            "objects_per_image": round(float(objects[c] / images[c]), 2) if seen else 0.0,
            "object_size": _by_pixels(sizes[c], 0.5),
            "small_object_size": _by_pixels(sizes[c], 0.1),
            "width": round(float(np.median(widths[c])), 2) if widths[c] else None,
            "top_share": round(float(top[c] / total[c]), 3) if total[c] else None,
            "left_share": round(float(left[c] / total[c]), 3) if total[c] else None,
            "middle_share": round(float(middle[c] / total[c]), 3) if total[c] else None,
        })
    return out


def _by_pixels(components: list[tuple[float, int]], share: float) -> float | None:
    """The component size below which `share` of the pixels lie (a percentile weighted by area)."""
    if not components:
        return None
    sizes, pixels = np.array(components, dtype=np.float64).T
    order = np.argsort(sizes)
    cumulative = np.cumsum(pixels[order]) / pixels.sum()
    return round(float(sizes[order][np.searchsorted(cumulative, share)]), 4)
