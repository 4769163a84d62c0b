"""The real datasets beside the project read with the right counts and class codes."""
import numpy as np
import pytest

from seglab.data import check, open_source

pytestmark = pytest.mark.shared


def test_oxford_pets(shared_data):
    report = check(open_source(shared_data / "oxford-pets"))
    data = report.to_json()
    assert report.ok, data["errors"][:5]
    assert data["format"] == "oxford-pets" and data["total_pairs"] == 300
    assert data["classes"] == ["pet", "background", "border"]
    assert sorted(f.rsplit("/", 1)[-1] for f in data["ignored_files"]) == [
        "Abyssinian_100.mat", "Abyssinian_101.mat", "Abyssinian_102.mat"]
    # Background is the largest class and the border the smallest on pet photos.
    frac = data["class_pixel_fraction"]
    assert frac["background"] > frac["pet"] > frac["border"] > 0.05
    assert data["suggested_class_weights"]["border"] > 1 > data["suggested_class_weights"]["background"]


def test_oxford_trimap_codes_on_a_real_file(shared_data):
    src = open_source(shared_data / "oxford-pets")
    pair = next(p for p in src.pairs if p.name == "Abyssinian_1")
    from seglab.data import decode_mask
    labels = decode_mask(pair.mask, src.encoding).labels
    h, w = labels.shape
    # The pet fills the centre of the photo; the corner is background; pet is index 0.
    assert labels[h // 2, w // 2] == 0 and labels[0, 0] == 1


def test_camvid(shared_data):
    report = check(open_source(shared_data / "camvid"))
    data = report.to_json()
    assert report.ok
    assert data["pairs"] == {"train": 367, "val": 101}
    assert len(data["classes"]) == 11 and data["classes"][3] == "road"
    assert data["ignored_pixels"] > 0  # void is ignored, not a class


def test_pipeline_on_oxford(shared_data):
    from seglab.data.pipeline import make_dataset
    src = open_source(shared_data / "oxford-pets")
    ds = make_dataset(src, "val", size=128, batch_size=16, augment=True, validate_first=False)
    n = 0
    for images, masks in ds:
        n += images.shape[0]
        assert set(np.unique(masks)) <= {0, 1, 2, 255}
    assert n == src.splits["val"]
