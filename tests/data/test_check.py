"""The dataset doctor names every bad file; the pipeline refuses the same folder with the same messages."""
import json

import numpy as np
import pytest
from conftest import blocks_mask, noise_image, write_folder
from PIL import Image

from seglab.core.errors import DatasetError
from seglab.data import check, open_source
from seglab.data.stats import ClassStats


@pytest.fixture
def bad_folder(tmp_path):
    """Good pairs plus: a truncated JPEG, a mask of the wrong size, a mask holding 7 in a 3-class
    dataset, and an image with no mask."""
    root = write_folder(tmp_path / "bad", {f"good_{i}": blocks_mask() for i in range(4)}, classes=["a", "b", "c"])
    rng = np.random.default_rng(0)
    Image.fromarray(noise_image(rng, 32, 48)).resize((200, 200)).save(root / "images" / "truncated.jpg")
    data = (root / "images" / "truncated.jpg").read_bytes()
    (root / "images" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.fromarray(blocks_mask(200, 200)).save(root / "masks" / "truncated.png")
    Image.fromarray(noise_image(rng, 32, 48)).save(root / "images" / "wrong_size.png")
    Image.fromarray(blocks_mask(30, 40)).save(root / "masks" / "wrong_size.png")
    Image.fromarray(noise_image(rng, 32, 48)).save(root / "images" / "seven.png")
    seven = blocks_mask()
    seven[0, 0] = 7
    Image.fromarray(seven).save(root / "masks" / "seven.png")
    Image.fromarray(noise_image(rng, 32, 48)).save(root / "images" / "lonely.png")
    return root


EXPECTED = {
    "truncated.jpg": "truncated",
    "wrong_size.png": "mask is 40x30 but its image wrong_size.png is 48x32",
    "seven.png": "mask values 7 are not classes",
    "lonely.png": "image has no mask",
}


def test_check_names_each_problem(bad_folder):
    report = check(open_source(bad_folder))
    assert not report.ok
    for name, text in EXPECTED.items():
        assert any(e.file.endswith(name) and text in e.message for e in report.errors), (name, report.errors)
    assert len(report.errors) == 4


def seglab_check(*args):
    from typer.testing import CliRunner

    from seglab.cli import app

    return CliRunner().invoke(app, ["check", *map(str, args)], env={"COLUMNS": "200"})


def test_cli_check_exits_nonzero_with_json(bad_folder):
    out = seglab_check(bad_folder, "--json")
    assert out.exit_code == 1, out.output
    data = json.loads(out.stdout)
    for key in ("format", "pairs", "classes", "class_pixel_fraction", "suggested_class_weights", "errors", "ignored_files"):
        assert key in data
    files = " ".join(e["file"] for e in data["errors"])
    assert all(name in files for name in EXPECTED)


def test_cli_check_tables(bad_folder):
    out = seglab_check(bad_folder)
    assert out.exit_code == 1
    for name in EXPECTED:
        assert name in out.stdout


def test_pipeline_refuses_with_the_same_messages(bad_folder):
    from seglab.data.pipeline import make_dataset
    source = open_source(bad_folder)
    expected = {str(p) for p in check(source).errors if p.file.endswith(("truncated.jpg", "lonely.png"))}
    bad_splits = {p.split for p in source.pairs if p.image.name in ("truncated.jpg", "wrong_size.png", "seven.png")}
    messages = set()
    for split in sorted(bad_splits | {"train"}):
        with pytest.raises(DatasetError) as info:
            make_dataset(source, split, size=32)
        messages |= {str(p) for p in info.value.problems}
    assert expected <= messages
    assert {str(p) for p in check(source).errors} == messages


def test_clean_folder_passes(tmp_path):
    root = write_folder(tmp_path, {f"s{i}": blocks_mask() for i in range(6)}, classes=["a", "b", "c"])
    (root / "images" / "notes.txt").write_text("not an image")
    report = check(open_source(root))
    assert report.ok
    data = report.to_json()
    assert data["ignored_files"] == [str(root / "images" / "notes.txt")]
    assert sum(data["class_pixel_fraction"].values()) == pytest.approx(1.0, abs=1e-5)


def test_median_frequency_weights_by_hand():
    stats = ClassStats(3)
    stats.update(np.array([[0, 0, 0, 1]], np.uint8))  # class 0: 3/4, class 1: 1/4
    stats.update(np.array([[0, 2, 2, 255]], np.uint8))  # class 0: 1/3, class 2: 2/3, one ignored
    # freq0 = 4 / 7, freq1 = 1 / 4, freq2 = 2 / 3; median = 4/7
    assert stats.median_frequency_weights() == pytest.approx([1.0, (4 / 7) / (1 / 4), (4 / 7) / (2 / 3)])
    assert stats.ignored == 1 and stats.fractions == pytest.approx([4 / 7, 1 / 7, 2 / 7])


def test_jpeg_colour_masks_get_a_hint(tmp_path):
    (tmp_path / "train").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        mask = np.zeros((64, 64, 3), np.uint8)
        mask[:, : 16 + 8 * i] = (128, 64, 128)
        mask[:, 16 + 8 * i:] = (244, 35, 232)
        Image.fromarray(np.concatenate([noise_image(rng, 64, 64), mask], 1)).save(tmp_path / "train" / f"{i}.jpg", quality=70)
    report = check(open_source(tmp_path, format="cityscapes-pairs"))
    assert report.ok and report.jpeg_compressed_masks
    assert any("JPEG-compressed" in w for w in report.warnings)
    assert report.to_json()["class_pixel_fraction"]["road"] > 0.2


def test_values_found_vs_expected(bad_folder):
    data = check(open_source(bad_folder)).to_json()
    assert data["mask_values_expected"] == [0, 1, 2, 255]
    assert data["mask_values_found"] == [0, 1, 2, 7]
