"""Every mask encoding decodes to class indices; values outside the classes are reported."""
import numpy as np
from PIL import Image

from seglab.data.masks import ColorMap, ValueMap, decode_mask, read_raw_mask


def test_oxford_trimap_codes():
    trimap = np.array([[1, 2, 3]], np.uint8)  # 1 pet, 2 background, 3 border (official README)
    assert ValueMap({1: 0, 2: 1, 3: 2}).decode(trimap).labels.tolist() == [[0, 1, 2]]
    assert ValueMap({1: 1, 2: 0, 3: 1}).decode(trimap).labels.tolist() == [[1, 0, 1]]  # binary view


def test_unexpected_values_listed_and_ignored():
    out = ValueMap({0: 0, 1: 1, 2: 2, 255: 255}).decode(np.array([[0, 7, 2, 9, 255]], np.uint8))
    assert out.unexpected == [7, 9]
    assert out.labels.tolist() == [[0, 255, 2, 255, 255]]


def test_palette_png_gives_indices_not_colours(tmp_path):
    im = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    im.save(tmp_path / "p.png")
    raw = read_raw_mask(tmp_path / "p.png")
    assert raw.tolist() == [[0, 1], [2, 1]]


def test_16bit_label_png(tmp_path):
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "m.png")
    out = decode_mask(tmp_path / "m.png", ValueMap({0: 0, 300: 1}))
    assert out.labels.tolist() == [[0, 1]] and not out.unexpected


def test_binary_0_255():
    out = ValueMap({0: 0, 255: 1}, kind="binary").decode(np.array([[0, 255, 128]], np.uint8))
    assert out.labels.tolist() == [[0, 1, 255]] and out.unexpected == [128]


def test_colour_nearest_within_tolerance():
    enc = ColorMap(((0, 0, 0), (128, 64, 128)), (0, 1), tolerance=20, far="ignore")
    raw = np.array([[[128, 63, 126], [2, 1, 0], [255, 255, 0]]], np.uint8)  # JPEG-shifted road, black, far
    out = enc.decode(raw)
    assert out.labels.tolist() == [[1, 0, 255]]
    assert out.off_palette_fraction == 1.0


def test_colour_far_reported_when_strict():
    enc = ColorMap(((0, 0, 0), (255, 0, 0)), (0, 1), far="error")
    out = enc.decode(np.array([[[0, 0, 0], [0, 0, 255]]], np.uint8))
    assert out.unexpected == [(0, 0, 255)]


def test_side_by_side_region(tmp_path):
    arr = np.zeros((4, 8), np.uint8)
    arr[:, 4:] = 1
    Image.fromarray(arr).save(tmp_path / "pair.png")
    assert read_raw_mask(tmp_path / "pair.png", "right").tolist() == [[1] * 4] * 4
    assert read_raw_mask(tmp_path / "pair.png", "left").tolist() == [[0] * 4] * 4
