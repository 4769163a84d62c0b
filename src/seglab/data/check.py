"""The dataset doctor behind `seglab check`: every problem with its file, and class statistics."""
from __future__ import annotations

import os
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from seglab.core.errors import DataError, DatasetError, Problem
from seglab.core.progress import progress_map
from seglab.data.images import open_image
from seglab.data.masks import ColorMap, ValueMap, decode_mask
from seglab.data.rasters import RGB, read_raster
from seglab.data.sources import Pair, Source
from seglab.data.stats import ClassStats

RARE_CLASS = 0.01  # classes under this share of labelled pixels get a warning
JPEG_MASK_HINT = 0.02  # colour masks with this share of off-palette pixels look JPEG-compressed


@dataclass
class PairReport:
    """What inspecting one pair found."""

    pair: Pair
    problems: list[Problem] = field(default_factory=list)
    class_pixels: np.ndarray | None = None  # int64 [C]
    ignored_pixels: int = 0
    image_size: tuple[int, int] | None = None  # (width, height)
    off_palette: float = 0.0
    mask_format: str | None = None
    mask_values: tuple[int, ...] = ()
    mask_between: int = 0  # thresholded binary masks: pixels neither 0 nor 255
    bands: tuple[str, ...] = ()  # the image's band names ("R", "G", "B" for 8-bit colour images)
    dtype: str | None = None
    band_stats: "BandStats | None" = None


BAND_SAMPLE = 4096  # pixels per image kept for the percentiles of each band


@dataclass
class BandStats:
    """Per-band statistics over images: exact minimum, maximum, mean and standard deviation, and
    the 1st and 99th percentiles of a sample of BAND_SAMPLE pixels per image (seeded by its name)."""

    low: np.ndarray
    high: np.ndarray
    total: np.ndarray  # float64 sums, and sums of squares: exact enough for 16-bit data
    squares: np.ndarray
    count: int
    sample: np.ndarray  # [n, C]

    @classmethod
    def of(cls, pixels: np.ndarray, seed_text: str) -> "BandStats":
        flat = pixels.reshape(-1, pixels.shape[-1])
        rng = np.random.default_rng(zlib.crc32(seed_text.encode("utf-8", "replace")))
        sample = flat[rng.integers(0, len(flat), min(BAND_SAMPLE, len(flat)))].astype(np.float64)
        values = flat.astype(np.float64)
        return cls(flat.min(0), flat.max(0), values.sum(0), np.square(values).sum(0), len(flat), sample)

    def merged(self, other: "BandStats") -> "BandStats":
        return BandStats(np.minimum(self.low, other.low), np.maximum(self.high, other.high), self.total + other.total,
                         self.squares + other.squares, self.count + other.count, np.concatenate([self.sample, other.sample]))

    def to_json(self, names) -> dict:
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean ** 2, 0))
        p1, p99 = np.percentile(self.sample, [1, 99], axis=0)
        number = lambda v: round(float(v), 4)  # noqa: E731
        return {name: {"min": number(self.low[i]), "max": number(self.high[i]), "mean": number(mean[i]),
                       "std": number(std[i]), "p1": number(p1[i]), "p99": number(p99[i])} for i, name in enumerate(names)}


def band_statistics(reports: list[PairReport], names) -> dict:
    """{band: {"min", "max", "mean", "std", "p1", "p99"}} over the images of `reports` that have the
    bands `names` (as inspected: selected by --bands where given)."""
    alike = [r.band_stats for r in reports if r.band_stats is not None and r.bands == tuple(names)]
    if not alike:
        return {}
    stats = alike[0]
    for other in alike[1:]:
        stats = stats.merged(other)
    return stats.to_json(names)


def _expected_values(source: Source) -> str:
    enc = source.encoding
    if isinstance(enc, ValueMap):
        cls = sorted(v for v, c in enc.values.items() if c != 255)
        ign = sorted(v for v, c in enc.values.items() if c == 255)
        text = ", ".join(map(str, cls)) if len(cls) < 12 else f"{cls[0]}..{cls[-1]}"
        return f"expected {text} ({source.classes.num_classes} classes)" + (f" or {', '.join(map(str, ign))} (ignore)" if ign else "")
    return "expected the colours of the colour table"


def inspect_pair(pair: Pair, source: Source, bands: tuple[str, ...] | None = None) -> PairReport:
    """Decode one pair fully and report everything wrong with it; `bands`: the bands training
    would select (a pair lacking one is a problem)."""
    report = PairReport(pair)
    image_size = None
    try:
        if pair.image_region:  # a side-by-side file: 8-bit colour
            im = open_image(pair.image)
            image_size = (im.width // 2, im.height)
        else:
            raster = read_raster(pair.image)
            if bands:
                raster = raster.select(bands, pair.image)
            image_size = (raster.pixels.shape[1], raster.pixels.shape[0])
            report.bands, report.dtype = raster.bands, raster.pixels.dtype.name
            if raster.bands != RGB or raster.pixels.dtype != np.uint8:  # photos need no statistics: no stretch
                # seeded by the sample's name, not its path: a dataset moved elsewhere gives the same stretch
                report.band_stats = BandStats.of(raster.pixels, pair.name)
        report.image_size = image_size
    except DataError as e:
        report.problems.append(e.problem)
    try:
        decoded = decode_mask(pair.mask, source.encoding, pair.mask_region)  # names a bad file in a DataError
        with Image.open(pair.mask) as m:
            report.mask_format = m.format
    except (DataError, OSError) as e:
        if not (pair.mask == pair.image and report.problems):
            report.problems.append(e.problem if isinstance(e, DataError) else Problem(str(pair.mask), f"unreadable mask ({e})."))
        return report
    labels = decoded.labels
    if image_size is not None and (labels.shape[1], labels.shape[0]) != image_size:
        report.problems.append(Problem(str(pair.mask), f"mask is {labels.shape[1]}x{labels.shape[0]} but its image "
                                       f"{pair.image.name} is {image_size[0]}x{image_size[1]}; a mask must have its image's size."))
    if decoded.unexpected:
        shown = ", ".join(map(str, decoded.unexpected[:10]))
        report.problems.append(Problem(str(pair.mask), f"mask values {shown} are not classes of this dataset "
                                       f"({_expected_values(source)}); fix the mask or add the classes to classes.json."))
    counts = np.bincount(labels.ravel(), minlength=256)
    report.class_pixels = counts[: source.classes.num_classes].astype(np.int64)
    report.ignored_pixels = int(counts[source.classes.ignore_index])
    report.off_palette = decoded.off_palette_fraction
    report.mask_values = decoded.values
    report.mask_between = decoded.between
    return report


def inspect_pairs(pairs: list[Pair], source: Source, workers: int | None = None, description: str = "Checking",
                  bands: tuple[str, ...] | None = None) -> list[PairReport]:
    """inspect_pair over `pairs` on a thread pool (Pillow decodes without the GIL), with a progress
    bar; then a pair whose bands differ from most pairs' is a problem (when `bands` chose none)."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        reports = progress_map(pool, lambda p: inspect_pair(p, source, bands), pairs, description)
    found = Counter(r.bands for r in reports if r.bands)
    common = found.most_common(1)[0][0] if found else RGB
    if common == RGB:  # among 8-bit photos, an image of other bands (a 16-bit grey PNG) is read as RGB, as always
        return reports
    shared = [b for b in common if all(b in bands for bands in found)]
    for r in reports:
        if r.bands and r.bands != common:
            r.problems.append(Problem(str(r.pair.image), f"has bands {', '.join(r.bands)}, but most images have "
                                      f"{', '.join(common)}; choose bands every image has with --bands "
                                      f"{','.join(shared) or 'NAMES'}."))
    return reports


def validate(source: Source, splits: list[str] | None = None) -> list[PairReport]:
    """Inspect the pairs of `splits` (all when None) and raise DatasetError listing every problem,
    the same messages `seglab check` prints, or return the reports when the data is clean."""
    pairs = [p for p in source.pairs if splits is None or p.split in splits]
    if not pairs and not source.problems:
        raise DatasetError([Problem(str(source.root), f"no (image, mask) pairs found in split(s) {', '.join(splits or ['any'])}.")])
    reports = inspect_pairs(pairs, source, description="Validating", bands=None if source.bands.rgb else source.bands.names)
    problems = list(source.problems) + [p for r in reports for p in r.problems]
    if problems:
        raise DatasetError(problems, what=f"Dataset {source.root}")
    return reports


@dataclass
class CheckReport:
    """Everything `seglab check` says about a dataset."""

    source: Source
    reports: list[PairReport]

    @property
    def errors(self) -> list[Problem]:
        empty = [] if self.source.pairs else [Problem(str(self.source.root), "no (image, mask) pairs found: nothing to "
                                                      "train or score on. Put images and their masks in the layout "
                                                      f"of the {self.source.format} format.")]
        return empty + list(self.source.problems) + [p for r in self.reports for p in r.problems]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def stats(self) -> ClassStats:
        stats = ClassStats(self.source.classes.num_classes, self.source.classes.ignore_index)
        for r in self.reports:
            if r.class_pixels is not None:
                stats.update_counts(r.class_pixels, r.ignored_pixels)
        return stats

    @property
    def warnings(self) -> list[str]:
        out = []
        stats, names = self.stats, self.source.classes.names
        for name, frac, px in zip(names, stats.fractions, stats.pixels):
            if px == 0:
                out.append(f"class '{name}' has no pixels in any mask")
            elif frac < RARE_CLASS:
                out.append(f"class '{name}' is rare ({frac:.2%} of labelled pixels): consider class weights (--class-weights auto) or a Dice loss")
        bands = self.band_summary()
        if len(bands.get("dtypes", [])) > 1 and tuple(bands["names"]) != RGB:  # among photos: all read as 8-bit RGB
            dtypes = bands["dtypes"]
            out.append(f"images mix pixel types ({', '.join(dtypes)}): one model normalises every image alike, so "
                       "convert them to one")
        between = sum(r.mask_between for r in self.reports)
        if between:
            masks = sum(r.mask_between > 0 for r in self.reports)
            total = sum(int(r.class_pixels.sum()) + r.ignored_pixels for r in self.reports if r.class_pixels is not None)
            out.append(f"{between:,} pixels ({between / max(1, total):.2%}) in {masks} of {len(self.reports)} binary masks "
                       "are neither 0 nor 255 (lossy compression): read by thresholding at 128; PNG masks keep them exact")
        if self.jpeg_compressed_masks:
            out.append("colour masks look JPEG-compressed (many colours just off the palette); they are read by nearest "
                       "colour, but lossless PNG masks avoid wrong labels at class borders")
        return out

    @property
    def jpeg_compressed_masks(self) -> bool:
        if not isinstance(self.source.encoding, ColorMap):
            return False
        off = [r.off_palette for r in self.reports if r.class_pixels is not None]
        jpeg = sum(r.mask_format == "JPEG" for r in self.reports)
        return bool(off) and (np.mean(off) > JPEG_MASK_HINT or jpeg > len(self.reports) / 2)

    def image_size_stats(self) -> dict:
        sizes = np.array([r.image_size for r in self.reports if r.image_size], dtype=np.int64).reshape(-1, 2)
        if not len(sizes):
            return {}
        common = Counter(map(tuple, sizes.tolist())).most_common(1)[0]
        return {"min": sizes.min(0).tolist(), "max": sizes.max(0).tolist(), "median": np.median(sizes, 0).tolist(),
                "most_common": list(common[0]), "most_common_count": common[1], "distinct": len(set(map(tuple, sizes.tolist())))}

    def band_summary(self) -> dict:
        """The bands of the images (most images' names), their dtypes, and per-band statistics
        over the images that have those bands."""
        named = [r for r in self.reports if r.bands]
        if not named:
            return {}
        names = Counter(r.bands for r in named).most_common(1)[0][0]
        return {"names": list(names), "channels": len(names), "dtypes": sorted({r.dtype for r in named}),
                "per_band": band_statistics(named, names)}  # empty for 8-bit RGB photos

    def to_json(self) -> dict:
        stats, names = self.stats, self.source.classes.names
        labelled = int(stats.pixels.sum())
        return {
            "format": self.source.format,
            "root": str(self.source.root),
            "ok": self.ok,
            "pairs": self.source.splits,
            "total_pairs": len(self.source.pairs),
            "classes": list(names),
            "class_colors": [list(c) for c in self.source.classes.colors],
            "ignore_index": self.source.classes.ignore_index,
            "mask_encoding": self.source.encoding.kind,
            "class_pixels": dict(zip(names, stats.pixels.tolist())),
            "class_pixel_fraction": dict(zip(names, [round(float(f), 6) for f in stats.fractions])),
            "suggested_class_weights": dict(zip(names, [round(float(w), 4) for w in stats.median_frequency_weights()])),
            "ignored_pixels": stats.ignored,
            "ignored_pixel_fraction": round(stats.ignored / max(1, stats.ignored + labelled), 6),
            "image_sizes": self.image_size_stats(),
            "bands": self.band_summary(),
            "errors": [p.to_json() for p in self.errors],
            "warnings": self.warnings,
            "mask_values_found": sorted({v for r in self.reports for v in r.mask_values}),
            "mask_values_expected": sorted(self.source.encoding.values) if isinstance(self.source.encoding, ValueMap) else None,
            "ignored_files": [str(f) for f in self.source.ignored_files],
            "notes": self.source.notes,
        }


def check(source: Source, workers: int | None = None, bands: tuple[str, ...] | None = None) -> CheckReport:
    """Inspect every pair of `source` (with `bands` selected, in that order); never raises for
    problems in the data, it reports them."""
    return CheckReport(source, inspect_pairs(source.pairs, source, workers, bands=bands))

