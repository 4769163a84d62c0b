"""Instance segmentation without the internet: a SavedModel built here with exactly the detection
zoo's output signature returns known detections; reframing, drawing, COCO results and COCO
evaluation are checked against hand-made answers and pycocotools."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from seglab.data import rle
from seglab.instances.detector import REQUIRED, Detector
from seglab.instances.reframe import binary_masks

pycocotools = pytest.importorskip("pycocotools")  # in the test extra; an optional extra for users
from pycocotools import mask as coco_mask  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

H, W = 60, 80
# Three detections, best first: a dog filling its box, a person with its left half, a low score.
BOXES = np.array([[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32)
CLASSES = np.array([18, 1, 3], np.float32)
SCORES = np.array([0.9, 0.6, 0.1], np.float32)
MASKS = np.zeros((3, 32, 32), np.float32)
MASKS[0] = 1.0
MASKS[1, :, :16] = 1.0
MASKS[2] = 1.0


def save_fake_model(path, keys=REQUIRED):
    """A tf.Module SavedModel whose __call__ has the detection zoo's signature and outputs."""
    import tensorflow as tf

    class FakeMaskRCNN(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)])
        def __call__(self, images):
            outputs = {"detection_boxes": tf.constant(BOXES[None]), "detection_classes": tf.constant(CLASSES[None]),
                       "detection_scores": tf.constant(SCORES[None]), "detection_masks": tf.constant(MASKS[None]),
                       "num_detections": tf.constant([3.0]) + 0.0 * tf.cast(tf.shape(images)[1], tf.float32)}
            return {k: v for k, v in outputs.items() if k in keys}

    tf.saved_model.save(FakeMaskRCNN(), str(path))
    return path


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory):
    return save_fake_model(tmp_path_factory.mktemp("model") / "mask_rcnn")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.jpg").write_bytes((folder / "a.jpg").read_bytes()[:100])  # truncated
    return folder


def test_a_box_mask_of_ones_fills_exactly_its_box():
    masks = binary_masks(np.ones((1, 33, 33)), np.array([[0.25, 0.2, 0.75, 0.7]]), 40, 60)
    expected = np.zeros((40, 60), bool)
    expected[10:30, 12:42] = True
    assert np.array_equal(masks[0], expected)


def test_a_half_mask_fills_half_its_box():
    half = np.zeros((1, 32, 32))
    half[0, :, :16] = 1
    mask = binary_masks(half, np.array([[0.25, 0.2, 0.75, 0.7]]), 40, 60)[0]
    assert mask[:10].sum() == 0 and mask[30:].sum() == 0  # nothing outside the box rows
    assert all(np.array_equal(np.flatnonzero(row), np.arange(12, 27)) for row in mask[10:30])  # 15 of its 30 columns


def test_reframing_a_box_that_leaves_the_image_is_clipped():
    mask = binary_masks(np.ones((1, 8, 8)), np.array([[-0.5, 0.9, 0.5, 1.4]]), 20, 20)[0]
    assert mask[:10, 18:].all() and mask.sum() == 10 * 2  # rows 0..9, columns 18..19


def test_rle_matches_pycocotools():
    rng = np.random.default_rng(1)
    for _ in range(100):
        h, w = rng.integers(1, 30, 2)
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        ours = rle.encode(m)
        assert ours["counts"] == coco_mask.encode(np.asfortranarray(m))["counts"].decode()
        assert np.array_equal(rle.decode(ours), m.astype(bool))
    assert np.array_equal(rle.decode({"size": [2, 3], "counts": [1, 2, 3]}), np.array([[0, 1, 0], [1, 0, 0]], bool))  # down the columns
    with pytest.raises(ValueError, match="sum to"):
        rle.decode({"size": [2, 3], "counts": [1, 2]})


def test_detector_loads_a_folder_and_an_archive(fake_model, tmp_path):
    found = Detector(str(fake_model))(np.zeros((H, W, 3), np.uint8))
    assert np.allclose(found.scores, SCORES) and found.box_masks.shape == (3, 32, 32)
    archive = tmp_path / "mask_rcnn.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fake_model, arcname="mask_rcnn/saved_model")
    found = Detector(str(archive))(np.zeros((H, W, 3), np.uint8))
    assert list(found.classes) == [18, 1, 3]


def test_a_model_without_the_expected_outputs_is_a_clear_error(tmp_path):
    path = save_fake_model(tmp_path / "boxes_only", keys=("detection_boxes", "detection_scores", "num_detections"))
    with pytest.raises(ValueError, match="lack detection_classes, detection_masks"):
        Detector(str(path))(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="no saved_model.pb"):
        Detector(str(tmp_path))


def test_instances_writes_overlays_masks_and_coco_results(fake_model, photos, tmp_path):
    from seglab.instances.segment import segment_instances

    summary = segment_instances([photos], tmp_path / "out", str(fake_model), save_masks=True)
    assert [f["file"] for f in summary["failed"]] == [str(photos / "broken.jpg")]
    assert [image["image_id"] for image in summary["images"]] == [1, 2]
    assert [d["label"] for d in summary["images"][0]["detections"]] == ["dog", "person"]  # min_score 0.3 drops the car
    for name in ("a.jpg", "b.png"):  # outputs are named after the whole file name
        assert Image.open(tmp_path / "out" / "overlays" / f"{name}.png").size == (W, H)
    dog = np.asarray(Image.open(tmp_path / "out" / "masks" / "a.jpg_0.png")) > 0
    expected = np.zeros((H, W), bool)
    expected[15:45, 20:60] = True
    assert np.array_equal(dog, expected)

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results) == 4
    assert results[0]["bbox"] == [20.0, 15.0, 40.0, 30.0] and results[0]["category_id"] == 18
    # pycocotools reads the results against a ground truth that names the same images
    gt = {"images": [{"id": i, "file_name": n, "height": H, "width": W} for i, n in ((1, "a.jpg"), (2, "b.png"))],
          "annotations": [], "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    loaded = coco.loadRes(str(tmp_path / "out" / "results.json"))
    assert np.array_equal(loaded.annToMask(loaded.loadAnns(loaded.getAnnIds(imgIds=1))[0]).astype(bool), expected)


@pytest.mark.slow
def test_instances_command_line(fake_model, photos, tmp_path):
    result = subprocess.run([sys.executable, "-m", "seglab", "instances", str(photos), "--model", str(fake_model),
                             "--out", str(tmp_path / "out"), "--max-detections", "1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 instance(s) in 2 image(s)" in result.stdout and "broken.jpg" in result.stderr
    bad = subprocess.run([sys.executable, "-m", "seglab", "instances", "eval", "--annotations", str(photos / "a.jpg"),
                          "--ground-truth-as-results"], capture_output=True, text=True)
    assert bad.returncode == 2 and "a.jpg: cannot read it as JSON" in bad.stderr


def test_an_annotation_file_that_is_not_coco_is_named(tmp_path):
    from seglab.data.coco import read_coco

    (tmp_path / "x.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"x.json: not a COCO instances file: no 'annotations', 'categories'"):
        read_coco(tmp_path / "x.json")


@pytest.fixture(scope="module")
def coco128(shared_data):
    return shared_data / "coco128" / "annotations" / "instances_val2017.json"


@pytest.mark.shared
def test_ground_truth_as_results_scores_ap_one_and_a_perturbed_copy_less(coco128):
    from seglab.instances.coco_eval import evaluate_results, ground_truth_results

    truth = ground_truth_results(coco128)
    scores = evaluate_results(coco128, truth)
    assert scores["images"] == 128 and scores["detections"] == 929
    assert scores["segm"]["AP"] == 1.0 and scores["bbox"]["AP"] == 1.0
    shifted = json.loads(json.dumps(truth))
    for r in shifted[::2]:
        mask = rle.decode(r["segmentation"])
        r["segmentation"] = rle.encode(np.roll(mask, max(2, mask.shape[1] // 20), axis=1))
        r["bbox"][0] += r["bbox"][2] * 0.3
    worse = evaluate_results(coco128, shifted)
    assert worse["segm"]["AP"] < 0.9 and worse["bbox"]["AP"] < 0.9


@pytest.mark.shared
def test_eval_command_line_on_coco128(coco128):
    result = subprocess.run([sys.executable, "-m", "seglab", "instances", "eval", "--annotations", str(coco128),
                             "--ground-truth-as-results"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.replace("\n", ""))
    assert scores["bbox"]["AP"] == 1.0 and scores["segm"]["AP"] == 1.0


@pytest.mark.shared
def test_the_label_map_is_cocos(coco128):
    from seglab.instances.labels import coco_labels

    categories = json.loads(coco128.read_text())["categories"]
    assert coco_labels() == {c["id"]: c["name"] for c in categories}
