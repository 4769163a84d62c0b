"""Per-epoch validation samples: chosen once with the seed, stored as indexed PNGs, scored per class."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from seglab.data.classes import ClassSpec
from seglab.runs.samples import SampleLog, choose
from seglab.scoring.metrics import per_class_iou


def test_choose_is_seeded_sorted_and_capped():
    assert choose(8, 100, seed=0) == choose(8, 100, seed=0)
    assert choose(8, 100, seed=0) != choose(8, 100, seed=1)
    picked = choose(8, 100, seed=3)
    assert picked == sorted(picked) and len(set(picked)) == 8 and all(0 <= i < 100 for i in picked)
    assert choose(8, 5, seed=0) == [0, 1, 2, 3, 4]


def test_per_class_iou_by_hand():
    classes = ClassSpec(("a", "b", "c"))
    truth = np.array([[[0, 0, 1, 1]], [[0, 0, 0, 255]]], np.uint8)
    pred = np.array([[[0, 1, 1, 1]], [[0, 0, 0, 2]]], np.uint8)
    # image 0: a 1/2, b 2/3, c absent; image 1: a 1 (the ignore pixel does not count), b, c absent
    assert per_class_iou(truth, pred, classes) == [[0.5, 0.6667, None], [1.0, None, None]]


def test_sample_log_round_trip_and_resume_truncation(tmp_path):
    classes = ClassSpec(("background", "pet"), ((0, 0, 0), (200, 30, 30)))
    truths = np.zeros((2, 8, 8), np.uint8)
    truths[:, 2:6, 2:6] = 1
    truths[1, 0, 0] = 255
    images = np.full((2, 8, 8, 3), 120, np.uint8)
    log = SampleLog(tmp_path)
    log.start(["cat_1", "dog_2"], images, truths, classes)
    from seglab.runs.samples import Epoch
    for epoch in (1, 2, 3):
        log.add(Epoch(epoch, truths * (epoch > 1), per_class_iou(truths, truths * (epoch > 1), classes)), classes)
    index = json.loads((tmp_path / "samples" / "samples.json").read_text())
    assert index["names"] == ["cat_1", "dog_2"] and [e["epoch"] for e in index["epochs"]] == [1, 2, 3]
    assert index["epochs"][0]["iou"][0] == [0.75, 0.0] and index["epochs"][2]["iou"][0] == [1.0, 1.0]
    mask = Image.open(log.truth(1))
    assert mask.mode == "P" and mask.getpalette()[3:6] == [200, 30, 30]  # indexed, in the class colours
    assert np.array_equal(np.asarray(mask), truths[1])
    assert np.array_equal(np.asarray(Image.open(log.prediction(3, 0))), truths[0])
    log.keep_epochs(2)  # a resumed run forgets the epochs after its last finished one
    assert [e["epoch"] for e in log.read()["epochs"]] == [1, 2]
    log.start(["other"], images, truths, classes)  # a resume does not redraw the samples
    assert log.read()["names"] == ["cat_1", "dog_2"]


def test_training_logs_the_samples_every_epoch(tiny_run):
    index = SampleLog(tiny_run.path).read()
    assert len(index["names"]) == 2 and [e["epoch"] for e in index["epochs"]] == [1, 2]
    assert all(len(row) == 4 for e in index["epochs"] for row in e["iou"])  # 4 synthetic classes
    for epoch in (1, 2):
        for i in range(2):
            labels = np.asarray(Image.open(SampleLog(tiny_run.path).prediction(epoch, i)))
            assert labels.shape == (32, 32) and labels.max() < 4
