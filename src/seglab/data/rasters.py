"""Images beyond 8-bit RGB: any number of named bands, at their source depth (uint8, uint16,
int16, float32), with the GeoTIFF georeferencing they came with.

A raster is read from one of three things:
- a TIFF or GeoTIFF of any band count, read with tifffile (pure Python over NumPy, with
  imagecodecs for LZW, JPEG and the other codecs GeoTIFFs use). Band names come from GDAL's
  band descriptions (the GDAL_METADATA tag), else they are the band numbers "1", "2", ...;
- a folder holding one single-band file per band, as Sentinel-2 and Landsat products come:
  the band names are the file stems (`B04.tiff` is band "B04");
- any other image (PNG, JPEG, ...), read with Pillow: 16-bit greyscale PNGs at full depth
  (band "1"), everything else as 8-bit "R", "G", "B", exactly as 8-bit RGB was always read.

Why tifffile and not rasterio: rasterio brings GDAL (tens of MB of native libraries) for
what seglab needs from a GeoTIFF, its pixels and a handful of tags to copy onto a mask;
tifffile reads and writes both. Georeferencing is kept as those tags (`GEO_TAGS`), so a mask
written with them lies exactly where its image does.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglab.core.errors import DataError
from seglab.data.images import (
    band_files,
    open_image,
    require_regular_file,
    to_rgb,
)

RGB = ("R", "G", "B")
TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
# The dtypes a raster keeps; others are converted to the nearest (bool and small ints widen,
# wider ints and float64 become float32, which the model computes in anyway).
KEPT_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
GDAL_METADATA = 42112
GDAL_NODATA = 42113
# GeoTIFF's tags (ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
# GeoDoubleParams, GeoAsciiParams) and GDAL's no-data value: what places a raster on the Earth.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, GDAL_NODATA)
_DESCRIPTION = re.compile(r'<Item\s+name="DESCRIPTION"\s+sample="(\d+)"\s+role="description"\s*>([^<]*)</Item>')


@dataclass(frozen=True)
class Raster:
    """`pixels` [H, W, C] in the source dtype, the name of each of the C bands, and the GeoTIFF
    tags of the file it came from ({tag code: (dtype, count, value)}; empty when not georeferenced)."""

    pixels: np.ndarray
    bands: tuple[str, ...]
    geo: dict

    @property
    def georeferenced(self) -> bool:
        return bool(self.geo)

    def select(self, bands, path) -> "Raster":
        """The raster with `bands` (names, or 1-based numbers where the file has no names) in that
        order; a band it lacks is a DataError naming `path` and the bands it has."""
        index = {name: i for i, name in enumerate(self.bands)}
        missing = [b for b in bands if b not in index]
        if missing:
            raise DataError(path, f"has no band {', '.join(missing)} (its bands: {', '.join(self.bands)}); give "
                            "--bands that every image has, or add the band.")
        order = [index[b] for b in bands]
        if order == list(range(len(self.bands))):  # every band, in order: no copy of a large image
            return self
        return Raster(self.pixels[..., order], tuple(bands), self.geo)


def geotiff_bytes(labels: np.ndarray, geo: dict) -> bytes:
    """A uint8 [H, W] mask as a GeoTIFF carrying `geo` (a Raster's tags): it lies where its image
    does in any GIS. The image's no-data value is not the mask's (it would hide a class), so it is
    left out."""
    import io

    import tifffile

    buffer = io.BytesIO()
    extratags = [(code, int(dtype), count, value, True) for code, (dtype, count, value) in sorted(geo.items())
                 if code != GDAL_NODATA]
    tifffile.imwrite(buffer, np.ascontiguousarray(labels, np.uint8), photometric="minisblack", compression="deflate",
                     extratags=extratags)
    return buffer.getvalue()


def read_raster(path) -> Raster:
    """The raster at `path` (a TIFF, a folder of band files, or any image Pillow reads); a file that
    cannot be used is a DataError naming it."""
    path = Path(path)
    if path.is_dir():
        return _read_band_folder(path)
    if path.suffix.lower() in TIFF_EXTENSIONS:
        return _read_tiff(path)
    return _read_pillow(path)


def _read_band_folder(folder: Path) -> Raster:
    files = band_files(folder)
    if not files:
        raise DataError(folder, "is a folder with no band files in it (expected one single-band image per band, such as "
                        "B04.tiff); add them or remove the folder.")
    planes, geo, shape = [], {}, None
    for f in files:
        raster = read_raster(f)
        if raster.pixels.shape[-1] != 1:
            raise DataError(f, f"holds {raster.pixels.shape[-1]} bands; in a folder of band files each file holds one "
                            "band (its name is the file's).")
        if shape is not None and raster.pixels.shape != shape:
            raise DataError(f, f"is {raster.pixels.shape[1]}x{raster.pixels.shape[0]} but {files[0].name} beside it is "
                            f"{shape[1]}x{shape[0]}; the bands of one sample must have one size (resample them).")
        shape = raster.pixels.shape
        planes.append(raster.pixels)
        geo = geo or raster.geo
    dtypes = {p.dtype for p in planes}
    pixels = np.concatenate([p.astype(np.result_type(*dtypes)) for p in planes], axis=-1)
    return Raster(_kept(pixels), tuple(f.stem for f in files), geo)


def _read_tiff(path: Path) -> Raster:
    with _tiff(path) as (series, tags):
        try:
            pixels = _channels_last(series.asarray(), series.axes, path)
        except (ValueError, KeyError, OSError, IndexError, RuntimeError) as e:
            raise _unreadable_tiff(path, e) from None
        geo = {code: (tags[code].dtype, tags[code].count, tags[code].value) for code in GEO_TAGS if code in tags}
        names = _tiff_band_names(tags, pixels.shape[-1], pixels.dtype)
    return Raster(_kept(pixels), names, geo)


def probe_raster(path) -> tuple[tuple[str, ...] | None, str | None]:
    """(band names, dtype as kept) of the image at `path` from its header alone, without decoding
    the pixels; (None, None) when the header cannot be read (reading the file names the problem)."""
    path = Path(path)
    try:
        if path.is_dir():
            probes = [probe_raster(f) for f in band_files(path)]
            if not probes or any(bands is None for bands, _ in probes):
                return None, None
            dtype = np.result_type(*[np.dtype(d) for _, d in probes])
            return tuple(f.stem for f in band_files(path)), _kept(np.zeros(0, dtype)).dtype.name
        if path.suffix.lower() in TIFF_EXTENSIONS:
            with _tiff(path) as (series, tags):
                axes, shape = series.axes.upper(), series.shape
                count = 1 if axes == "YX" else shape[-1] if axes == "YXS" else shape[0]
                return _tiff_band_names(tags, count, series.dtype), _kept(np.zeros(0, series.dtype)).dtype.name
        from PIL import Image

        require_regular_file(path)
        with Image.open(path) as im:
            if im.mode.startswith("I;16"):
                return ("1",), "uint16"
            if im.mode in ("I", "F"):
                return ("1",), "float32"
            return RGB, "uint8"
    except Exception:  # noqa: BLE001  (any header at all: a decompression bomb, a broken TIFF; reading names it)
        return None, None


@contextlib.contextmanager
def _tiff(path: Path):
    """(the first image series, the first page's tags by code) of a TIFF; a file tifffile cannot
    read is a DataError naming it."""
    import tifffile

    require_regular_file(path)
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, KeyError, OSError, IndexError) as e:
        raise _unreadable_tiff(path, e) from None
    with tif:
        try:
            series, page = tif.series[0], tif.pages[0]
            tags = {tag.code: tag for tag in page.tags.values()}
        except (tifffile.TiffFileError, ValueError, KeyError, OSError, IndexError) as e:
            raise _unreadable_tiff(path, e) from None
        yield series, tags


def _unreadable_tiff(path: Path, e: Exception) -> DataError:
    detail = str(e).strip().splitlines()[0] if str(e).strip() else "no detail"
    return DataError(path, f"unreadable TIFF ({type(e).__name__}: {detail}); re-export it or remove it.")


def _tiff_band_names(tags: dict, count: int, dtype) -> tuple[str, ...]:
    """GDAL's band descriptions; R, G, B for an 8-bit RGB photo (photometric RGB), as Pillow read it;
    else the band numbers."""
    described = tags[GDAL_METADATA].value if GDAL_METADATA in tags else ""
    names = _band_descriptions(described, count)
    photometric = tags[262].value if 262 in tags else None  # PhotometricInterpretation: 2 is RGB
    if names[0] == "1" and count == 3 and int(photometric or 0) == 2 and np.dtype(dtype) == np.uint8:
        return RGB
    return names


def _channels_last(pixels: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """[H, W, C] from tifffile's axes: 'YX' (one band), 'YXS' (interleaved samples), 'SYX' or
    'CYX'/'QYX'/'IYX' (band planes); a stack of several images is refused."""
    axes = axes.upper()
    if axes == "YX":
        return pixels[..., None]
    if axes == "YXS":
        return pixels
    if len(axes) == 3 and axes.endswith("YX"):
        return np.moveaxis(pixels, 0, -1)
    raise DataError(path, f"holds a {pixels.ndim}-dimensional stack (axes {axes}), not one image of bands; save each image "
                    "as its own file.")


def _band_descriptions(metadata, count: int) -> tuple[str, ...]:
    """The band names GDAL wrote (<Item name="DESCRIPTION" sample="i" role="description">), where
    every band has one and they differ; else "1" .. "count"."""
    names = {}
    if isinstance(metadata, bytes):
        metadata = metadata.decode("utf-8", "replace")
    for sample, name in _DESCRIPTION.findall(metadata or ""):
        names[int(sample)] = name.strip()
    described = tuple(names.get(i, "") for i in range(count))
    if all(described) and len(set(described)) == count:
        return described
    return tuple(str(i + 1) for i in range(count))


def _read_pillow(path: Path) -> Raster:
    im = open_image(path)
    if im.mode in ("I;16", "I;16B", "I;16L"):  # 16-bit greyscale (PNG): kept at full depth
        return Raster(np.asarray(im).astype(np.uint16)[..., None], ("1",), {})
    if im.mode in ("I", "F"):
        return Raster(_kept(np.asarray(im)[..., None]), ("1",), {})
    return Raster(to_rgb(im), RGB, {})


def _kept(pixels: np.ndarray) -> np.ndarray:
    """`pixels` in one of KEPT_DTYPES: as they are, or converted without losing range."""
    if not pixels.dtype.isnative:  # big-endian TIFF data: the same values in this machine's order
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    dtype = pixels.dtype
    if dtype in KEPT_DTYPES:
        return pixels
    if dtype == np.bool_:
        return pixels.astype(np.uint8)
    if dtype == np.int8:
        return pixels.astype(np.int16)
    return pixels.astype(np.float32)
