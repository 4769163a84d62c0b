"""COCO instance annotations read as a semantic-segmentation dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from seglab.data import open_source, rle
from seglab.data.check import check


@pytest.fixture
def tiny_coco(tmp_path, monkeypatch):
    """Two 20x20 images: a big 'car' square with a small 'person' on top of it, and a crowd region."""
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    for name in ("1.jpg", "2.jpg"):
        Image.new("RGB", (20, 20), "gray").save(root / "val2017" / name)
    crowd = np.zeros((20, 20), bool)
    crowd[:, 15:] = True
    data = {
        "images": [{"id": 1, "file_name": "1.jpg", "height": 20, "width": 20},
                   {"id": 2, "file_name": "2.jpg", "height": 20, "width": 20}],
        "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 16,
             "segmentation": [[4, 4, 7, 4, 7, 7, 4, 7]]},
            {"id": 11, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 100,
             "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]},
            {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 100, "segmentation": rle.encode(crowd)},
        ],
    }
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


def test_coco_instances_become_class_index_masks(tiny_coco):
    source = open_source(tiny_coco)
    assert source.format == "coco"
    assert source.classes.names == ("background", "person", "car")  # categories in id order after background
    assert len(source.pairs) == 2 and {p.split for p in source.pairs} <= {"train", "val"}
    mask = np.asarray(Image.open(next(p.mask for p in source.pairs if p.image.name == "1.jpg")))
    assert (mask[0:10, 0:10][mask[0:10, 0:10] != 1] == 2).all()  # the car square ...
    assert (mask[4:8, 4:8] == 1).all()  # ... with the smaller person drawn on top
    assert (mask[:, 15:] == 255).all()  # the crowd region is ignored
    assert (mask[12:, :15] == 0).all()
    assert "2 instances and 1 crowd regions" in " ".join(source.notes)
    assert check(source).ok


def test_a_coco_file_whose_images_are_missing_is_reported(tiny_coco):
    (tiny_coco / "val2017" / "2.jpg").unlink()
    report = check(open_source(tiny_coco))
    assert not report.ok and any("2.jpg" in str(p) and "not found" in str(p) for p in report.errors)


@pytest.mark.shared
def test_coco128_reads_as_a_coco_dataset(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path))
    source = open_source(shared_data / "coco128")
    assert source.format == "coco" and len(source.pairs) == 128 and source.classes.num_classes == 81
    assert any("128 images, 80 categories, 929 instances and 10 crowd regions" in n for n in source.notes)
    assert check(source).ok
