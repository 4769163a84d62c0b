"""Image files: listing them, decoding them by content (whatever the extension says) into RGB
uint8 arrays, and naming the outputs made from them."""
from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from seglab.core.errors import DataError

# File extensions considered when listing image folders; anything else is counted as ignored.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def open_image(path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Open and fully decode `path` with EXIF orientation applied.

    `draft_size` (W, H) lets JPEG decoding downscale by 1/2, 1/4 or 1/8 while staying at least
    that large, which is several times faster than decoding at full size and resizing.
    Raises DataError naming the file when it is not an image or is truncated.
    """
    path = Path(path)
    require_regular_file(path)
    try:
        im = Image.open(path)
        if draft_size is not None and im.format == "JPEG" and im.getexif().get(0x0112, 1) in (1, 2, 3, 4):
            im.draft(im.mode if im.mode in ("RGB", "L") else None, draft_size)
        im.load()
    except FileNotFoundError:
        raise DataError(path, "file not found.") from None
    except Image.DecompressionBombError as e:
        # Pillow's guard against files that declare far more pixels than any photo: kept, and said.
        raise DataError(path, f"refused: {e} Shrink or tile the image; to accept such files on purpose, "
                        "set PIL.Image.MAX_IMAGE_PIXELS in Python.") from None
    except UnidentifiedImageError:
        with open(path, "rb") as f:  # its first bytes only: the file may be huge
            head = f.read(8)
        raise DataError(path, f"not an image Pillow can decode (starts with {head!r}); replace or remove the file.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(path, f"unreadable or truncated image ({e}); re-export it or remove it from the dataset.") from None
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        return im


def require_regular_file(path: Path) -> None:
    """Refuse, without opening it, what is not a regular file: reading a FIFO waits for a writer
    forever, and a device such as /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(path, "file not found.") from None
    except OSError as e:
        raise DataError(path, f"cannot be read ({e.strerror}).") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise DataError(path, f"is {kind}, not an image file; remove it from the inputs.")


def to_rgb(im: Image.Image) -> np.ndarray:
    """uint8 [H, W, 3] from any PIL mode: grayscale, palette, RGBA, CMYK, 16-bit and 32-bit."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        # 16-bit data scaled to 8 bits over its full range, not clipped at 255.
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def read_image(path, draft_size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 [H, W, 3] RGB image from any file Pillow can decode."""
    return to_rgb(open_image(path, draft_size))


def band_files(folder: Path) -> list[Path]:
    """The image files of a folder holding one file per band (`seglab.data.rasters`), in name order."""
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
                  and f.is_file())


def is_band_folder(path: Path) -> bool:
    """Whether `path` is a folder of band files (a sample stored band by band)."""
    return path.is_dir() and any(band_files(path))


def holds_bands(path: Path, bands) -> bool:
    """Whether `path` is a folder holding a file for each of `bands` (named by its stem): one
    sample stored band by band, as a model taking those bands reads it."""
    return path.is_dir() and set(bands) <= {f.stem for f in band_files(path)}


def find_images(inputs, bands=None) -> tuple[list[Path], list[Path]]:
    """Files named, and image files inside folders named (sorted) -> (images, other files skipped).
    A file named explicitly is tried whatever its extension, and reported if unreadable;
    hidden files in folders are counted among the skipped. With `bands` (a model taking bands by
    name), a folder holding a file per band is one image, named or inside a folder named."""
    images, skipped, seen = [], [], set()
    for item in map(Path, inputs):
        if bands and holds_bands(item, bands):
            images.append(item)
        elif item.is_dir():
            if bands:
                images += [p for p in sorted(item.iterdir()) if not p.name.startswith(".") and holds_bands(p, bands)]
            for path in sorted(p for p in item.iterdir() if not p.is_dir()):
                # FIFOs, devices and sockets are skipped, and said: opening one could block forever
                image = path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()
                (images if image else skipped).append(path)
        else:
            images.append(item)
    unique = []
    for path in images:  # the same file named twice is predicted once
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique, skipped


_UNSAFE = re.compile(r"[^\w.+-]|^\.", re.ASCII)


def _digest(data: str) -> str:
    return hashlib.sha1(os.fsencode(data)).hexdigest()[:8]


def output_names(paths: list[Path]) -> list[str]:
    """A file name stem for the outputs made from each input, unique within the batch.

    The stem is the input's whole file name (`x.jpg` -> `x.jpg`, so `x.jpg` and `x.png` never
    meet); a name that must be changed to be a safe file name (`..png`, spaces, non-ASCII) gets
    a hash of the original name, so it depends on nothing else. Only inputs of the same file
    name from different folders depend on each other: each then gets a hash of its full path."""
    stems = []
    for path in paths:
        safe = _UNSAFE.sub("_", path.name)
        stems.append(safe if safe == path.name else f"{safe}-{_digest(path.name)}")
    counts = Counter(stems)  # not stems.count: a folder of 10,000 images would take quadratic time
    repeated = {s for s, n in counts.items() if n > 1}
    return [f"{s}-{_digest(str(p.resolve()))}" if s in repeated else s for s, p in zip(stems, paths)]
