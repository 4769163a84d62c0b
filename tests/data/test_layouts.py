"""Datasets in the layouts they are downloaded in: split folders outside images/ and masks/, category
subfolders, binary masks saved as JPEG, colour masks without a table, another tool's classes.json."""
import json

import numpy as np
import pytest
from conftest import blocks_mask, noise_image
from PIL import Image
from typer.testing import CliRunner

from seglab.cli import app
from seglab.core.errors import BadArgument
from seglab.data import check, detect_format, open_source

runner = CliRunner()


def write_pair(image_path, mask, rng, mask_path, **save):
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise_image(rng, *mask.shape[:2])).save(image_path)
    Image.fromarray(mask).save(mask_path, **save)


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_split_folders_outside_images_and_masks(tmp_path, val_name):
    """train/images + train/masks (and valid/ or validation/ for val, test/) as Roboflow and Kaggle ship them."""
    rng = np.random.default_rng(0)
    counts = {"train": 4, val_name: 2, "test": 1}
    for split, n in counts.items():
        for i in range(n):
            write_pair(tmp_path / split / "images" / f"{split}{i}.jpg", blocks_mask(), rng,
                       tmp_path / split / "masks" / f"{split}{i}.png")
    assert detect_format(tmp_path) == "folder"
    source = open_source(tmp_path)
    assert source.splits == {"train": 4, "val": 2, "test": 1}
    assert any(f"{val_name}/images" in note for note in source.notes), source.notes


def test_both_split_conventions_read_alike(tmp_path):
    """images/valid/ inside images/ is the same split as val."""
    rng = np.random.default_rng(1)
    for split, n in {"train": 3, "valid": 2}.items():
        for i in range(n):
            write_pair(tmp_path / "images" / split / f"{i}.png", blocks_mask(), rng, tmp_path / "masks" / split / f"{i}.png")
    assert open_source(tmp_path).splits == {"train": 3, "val": 2}


def test_category_subfolders_pair_by_relative_path(tmp_path):
    """images/<category>/x.jpg with masks/<category>/x.png: the same file name in two categories is two
    samples, paired within its category; an orphan is named by its path."""
    rng = np.random.default_rng(2)
    for category in ("cat", "dog"):
        for i in range(5):
            write_pair(tmp_path / "images" / category / f"{i}.jpg", blocks_mask(), rng,
                       tmp_path / "masks" / category / f"{i}.png")
    write_pair(tmp_path / "images" / "dog" / "deep" / "x.jpg", blocks_mask(), rng, tmp_path / "masks" / "dog" / "deep" / "x.png")
    Image.fromarray(noise_image(rng, 32, 48)).save(tmp_path / "images" / "cat" / "orphan.jpg")
    source = open_source(tmp_path)
    assert len(source.pairs) == 11
    for pair in source.pairs:
        assert pair.image.parent.relative_to(tmp_path / "images") == pair.mask.parent.relative_to(tmp_path / "masks")
    assert [p.file for p in source.problems] == [str(tmp_path / "images" / "cat" / "orphan.jpg")]
    assert any("subfolders" in note for note in source.notes), source.notes
    # names stay unique for previews and outputs: the category is part of them
    assert len({p.name for p in source.pairs}) == 11


def test_jpeg_binary_masks_are_thresholded_with_a_warning(tmp_path):
    rng = np.random.default_rng(3)
    truth = {}
    for i in range(6):
        mask = np.zeros((48, 64), np.uint8)
        mask[8 + i:30, 10:40 + i] = 255
        truth[i] = mask > 0
        write_pair(tmp_path / "images" / f"{i}.jpg", mask, rng, tmp_path / "masks" / f"{i}.jpg", quality=70)
    source = open_source(tmp_path)
    assert source.classes.names == ("background", "foreground")
    assert "thresholded" in source.encoding.kind
    warned = [n for n in source.notes if "neither 0 nor 255" in n]
    assert warned, source.notes
    report = check(source)
    assert report.ok, report.errors
    assert any("neither 0 nor 255" in w for w in report.warnings), report.warnings
    from seglab.data.masks import decode_mask
    for pair in source.pairs:
        labels = decode_mask(pair.mask, source.encoding).labels
        agree = (labels == truth[int(pair.name)]).mean()
        assert agree > 0.98, (pair.name, agree)  # JPEG's ringing moves a few border pixels at most


def test_colour_masks_without_a_table_are_listed_and_written_as_classes_json(tmp_path):
    rng = np.random.default_rng(4)
    colours = [(0, 0, 0), (200, 30, 30), (30, 30, 200)]
    for i in range(4):
        labels = blocks_mask(num_classes=3)
        mask = np.array(colours, np.uint8)[labels]
        write_pair(tmp_path / "images" / f"{i}.jpg", mask, rng, tmp_path / "masks" / f"{i}.png")
    with pytest.raises(BadArgument, match="--write-classes"):
        open_source(tmp_path)
    listed = runner.invoke(app, ["check", str(tmp_path)])
    assert listed.exit_code == 1, listed.output
    for colour in colours:
        assert str(list(colour)) in listed.output.replace(" ", "").replace(",", ", ") or \
            ",".join(map(str, colour)) in listed.output.replace(" ", ""), listed.output
    written = runner.invoke(app, ["check", str(tmp_path), "--write-classes"])
    assert written.exit_code == 0, written.output
    classes = json.loads((tmp_path / "classes.json").read_text())
    assert sorted(map(tuple, classes.values())) == sorted(colours)
    assert list(classes)[0] == "background"  # the most common colour, black, first
    source = open_source(tmp_path)
    assert check(source).ok


def test_another_tools_classes_json_shows_the_schema_seglab_reads(tmp_path):
    rng = np.random.default_rng(5)
    for i in range(3):
        write_pair(tmp_path / "images" / f"{i}.png", blocks_mask(), rng, tmp_path / "masks" / f"{i}.png")
    (tmp_path / "classes.json").write_text(json.dumps([{"id": 0, "name": "bg", "color": "#000000"},
                                                       {"id": 1, "name": "cat", "color": "#ff0000"}]))
    with pytest.raises(BadArgument) as refused:
        open_source(tmp_path)
    message = str(refused.value)
    assert str(tmp_path / "classes.json") in message
    assert '{"names": [' in message and "--write-classes" in message
