"""W&B (offline mode) and TensorBoard mirrors of a real tiny training run."""
from __future__ import annotations

import io
import re
from collections import defaultdict

import numpy as np
import pytest
from conftest import TINY_TRAINING
from PIL import Image

import seglab

pytestmark = pytest.mark.slow  # real training runs: `make test` runs them, `make check` does not


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    try:
        yield seglab.train("synthetic", tmp_path_factory.mktemp("tracked") / "run", epochs=2, verbose=0, wandb=True,
                           tensorboard=True, **TINY_TRAINING)
    finally:
        mp.undo()


def test_wandb_offline_run_holds_per_epoch_mask_media(tracked_run):
    runs = list((tracked_run.path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline W&B run inside the run folder"
    masks = sorted((runs[0] / "files" / "media" / "images" / "mask").glob("*.mask.png"))
    by_epoch = defaultdict(list)  # W&B names media <key>_<history step>_<hash>
    for mask in masks:
        by_epoch[re.match(r"samples_(\d+)_", mask.name).group(1)].append(mask)
    assert len(by_epoch) == 2, sorted(m.name for m in masks)  # both epochs
    for files in by_epoch.values():
        assert len(files) >= 2 * 2 - 1  # 2 samples x (prediction, ground truth); W&B stores identical files once
        for file in files:
            labels = np.asarray(Image.open(file))
            assert labels.shape == (32, 32) and set(np.unique(labels)) <= {0, 1, 2, 3, 255}
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for needed in (b'"prediction"', b'"ground truth"', b"triangle", b"val_miou"):
        assert needed in record, needed  # the mask layers, the class labels and the metrics were logged
    assert (tracked_run.path / "wandb_id").read_text().strip() in runs[0].name


def test_tensorboard_has_scalars_and_overlays_per_epoch(tracked_run):
    import tensorflow as tf

    from seglab.callbacks.trackers.tensorboard_logger import IMAGE_TAG

    events = list((tracked_run.path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    steps = defaultdict(set)
    images = {}
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            steps[value.tag].add(event.step)
            if value.tag == IMAGE_TAG:
                images[event.step] = [Image.open(io.BytesIO(png)) for png in value.tensor.string_val[2:]]
    assert steps["val_miou"] == {1, 2} and steps["loss"] == {1, 2} and steps[IMAGE_TAG] == {1, 2}
    assert [im.size for im in images[2]] == [(64, 32), (64, 32)]  # prediction | truth, for each of the 2 samples


def test_wandb_without_the_package_is_a_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'seglab\[wandb\]'"):
        seglab.train("synthetic", tmp_path / "run", epochs=1, verbose=0, wandb=True, **TINY_TRAINING)
    assert not (tmp_path / "run").exists()
