"""Images decode by content into RGB uint8, whatever the file says."""
import numpy as np
import pytest
from PIL import Image

from seglab.core.errors import DataError
from seglab.data.images import read_image


@pytest.fixture
def rgb():
    return np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_png_named_jpg_is_read_by_content(tmp_path, rgb):
    path = tmp_path / "liar.jpg"
    Image.fromarray(rgb).save(path, format="PNG")
    np.testing.assert_array_equal(read_image(path), rgb)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA"])
def test_modes_become_rgb(tmp_path, rgb, mode):
    im = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
    im.save(path)
    out = read_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "RGBA":
        np.testing.assert_array_equal(out, rgb)


def test_16bit_grayscale_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 32768, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    out = read_image(path)
    assert out.shape == (1, 3, 3)
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=100)
    out = read_image(path)
    assert out.shape == (20, 10, 3)
    assert out[:8].mean() > 200 and out[12:].mean() < 50  # left half is now on top


def test_truncated_jpeg_is_a_clear_error(tmp_path, rgb):
    good = tmp_path / "good.jpg"
    Image.fromarray(rgb).resize((300, 300)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DataError, match="bad.jpg.*truncated"):
        read_image(bad)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(DataError, match="notes.png.*not an image"):
        read_image(path)
