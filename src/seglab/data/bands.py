"""Which bands a model takes and how their values reach it: the band names and pixel type of a
dataset (`Bands`), the per-band stretch learnt from its training split (`Stretch`), and the
RGB picture people look at (`composite`).

8-bit RGB is the case every seglab model was built for: `Bands()` (R, G, B, uint8) is read,
cached, augmented and fed exactly as before bands existed, with no stretch. Anything else (16-bit,
float, one band, seven bands) keeps its source values through the pipeline, and the model's first
layer (`seglab.models.inputs.BandStretch`) brings each band onto the 0..255 scale the model's own
preprocessing expects.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from seglab.core.errors import BadArgument
from seglab.data.rasters import RGB, probe_raster

# Sentinel-2's true-colour bands, the display default for its band names.
SENTINEL2_RGB = ("B04", "B03", "B02")
DISPLAY_PERCENTILES = (2, 98)  # the usual stretch of a multispectral quick-look
COMPOSITE_ROWS = 512


@dataclass(frozen=True)
class Bands:
    """The bands a model takes, in order, and the pixel type they are read, cached and augmented in."""

    names: tuple[str, ...] = RGB
    dtype: str = "uint8"

    @property
    def channels(self) -> int:
        return len(self.names)

    @property
    def rgb(self) -> bool:
        """8-bit RGB: the images every seglab model took before bands, handled exactly as then."""
        return self == Bands()

    @property
    def value_range(self) -> tuple[float, float]:
        """The values the pixel type holds: what augmentation clips to."""
        if np.issubdtype(np.dtype(self.dtype), np.integer):
            info = np.iinfo(self.dtype)
            return float(info.min), float(info.max)
        return -np.inf, np.inf


RGB8 = Bands()


def choose_bands(source, names=None) -> Bands:
    """The bands of `source` a model takes: `names` (the --bands given, in that order), else the
    bands most of its images have; read from the files' headers only. Where most images are 8-bit
    RGB, the others (a 16-bit grey PNG among photos) are read as 8-bit RGB too, as they always
    were. Images of several pixel types are taken in the narrowest type that holds them all (uint8
    and uint16 -> uint16; with signed or float images, float32)."""
    if names is None and source.format != "folder":  # the other formats hold photos, read as 8-bit RGB
        return RGB8
    images = [pair.image for pair in source.pairs if not pair.image_region]
    if not images:  # side-by-side pairs (Cityscapes): 8-bit colour
        if names and tuple(names) != RGB:
            raise BadArgument(f"{source.root}: its images are 8-bit RGB photos (bands R, G, B); --bands {','.join(names)} "
                              "names bands they do not have.")
        return RGB8
    probes = [probe_raster(path) for path in images]
    found = Counter(bands for bands, _ in probes if bands)
    if not found:  # every header unreadable: validation names each file
        return Bands(tuple(names)) if names else RGB8
    chosen = tuple(names) if names else found.most_common(1)[0][0]
    having = [dtype for bands, dtype in probes if bands and set(chosen) <= set(bands)]
    if chosen == RGB and set(having) == {"uint8"}:
        return RGB8
    return Bands(chosen, _common_dtype(set(having)))


def _common_dtype(dtypes: set[str]) -> str:
    if not dtypes:
        return "uint8"
    kept = np.result_type(*[np.dtype(d) for d in dtypes])
    return kept.name if kept.name in ("uint8", "uint16", "int16", "float32") else "float32"


@dataclass(frozen=True)
class Stretch:
    """Per band, the values mapped to 0 and 255 (the 1st and 99th percentiles of the training
    split), without clipping: a bright vessel above the 99th percentile stays brighter than the sea.

    Why percentiles and not mean and standard deviation: Sentinel-2 scenes hold saturated pixels
    (65535) and no-data zeros that pull a mean and a deviation far from where the data is; the
    percentiles of a sample stay put."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def of(cls, per_band: dict, names) -> "Stretch":
        """From `seglab check`'s per-band statistics ({name: {"p1": ..., "p99": ...}})."""
        low = tuple(float(per_band[n]["p1"]) for n in names)
        # a band constant over the sample spans one unit: its few other values stay near 0..255
        high = tuple(max(float(per_band[n]["p99"]), lo + 1.0) for n, lo in zip(names, low))
        return cls(low, high)


def display_bands(bands, chosen=None) -> tuple[int, ...]:
    """Indices of the bands shown as red, green and blue (one index: grey): `chosen` names, else
    R, G, B or Sentinel-2's B04, B03, B02 where the bands have them, else the first three (or the
    first one)."""
    bands = tuple(bands)
    if chosen:
        missing = [b for b in chosen if b not in bands]
        if missing or len(chosen) not in (1, 3):
            why = f"names {', '.join(missing)}, which the model does not take" if missing else "needs 1 or 3 bands"
            raise BadArgument(f"--display-bands {','.join(chosen)} {why}; the model's bands: {', '.join(bands)}.")
        return tuple(bands.index(b) for b in chosen)
    for trio in (RGB, SENTINEL2_RGB):
        if all(b in bands for b in trio):
            return tuple(bands.index(b) for b in trio)
    return (0, 1, 2) if len(bands) >= 3 else (0,)


def composite(pixels: np.ndarray, shown: tuple[int, ...], rgb: bool = False) -> np.ndarray:
    """uint8 [H, W, 3] of `pixels` [H, W, C]: 8-bit RGB as it is (`rgb`), else the `shown` bands
    each stretched between its own 2nd and 98th percentiles (grey when one band is shown). Computed
    in bands of rows: a 10,000 x 10,000 image needs little memory beyond the picture."""
    if rgb:  # 8-bit already (no copy of a large photo), or model-size float values in 0..255
        return pixels if pixels.dtype == np.uint8 else np.clip(pixels, 0, 255).astype(np.uint8)
    shown = list(shown)
    height, width = pixels.shape[:2]
    step = max(1, int(np.sqrt(height * width / 65536)))  # a grid of about 65,536 pixels for the percentiles
    sample = np.asarray(pixels[::step, ::step][..., shown], np.float32).reshape(-1, len(shown))
    low, high = np.percentile(sample, DISPLAY_PERCENTILES, axis=0)
    gain = 255.0 / np.maximum(high - low, 1e-6)
    out = np.empty((height, width, 3), np.uint8)
    for y in range(0, height, COMPOSITE_ROWS):
        rows = np.asarray(pixels[y:y + COMPOSITE_ROWS][..., shown], np.float32)
        out[y:y + COMPOSITE_ROWS] = np.clip((rows - low) * gain, 0, 255).round().astype(np.uint8)
    return out


def band_list(text: str | None, option: str = "--bands") -> tuple[str, ...] | None:
    """'B03,B04' -> ('B03', 'B04'); a name given twice or an empty name is refused."""
    if text is None:
        return None
    names = tuple(n.strip() for n in str(text).split(","))
    if not all(names):
        raise BadArgument(f"{option} {text!r}: give band names (or numbers) separated by commas, e.g. {option} B03,B04,B08.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadArgument(f"{option} names {', '.join(repeated)} twice; give each band once.")
    return names

