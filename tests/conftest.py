"""Shared fixtures: small datasets written to temporary folders, and the real data beside the project."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def reordered_sum_tolerance(reference, terms: int) -> float:
    """How far float32 results may move when a graph computes the same sums in another order (a
    batch norm folded into the weights, a concatenation split into two convolutions, another
    runtime's kernels, AVX2 or AVX-512 accumulation): the classic bound for a sum of n products,
    n x eps x the sum of their magnitudes, with n the longest accumulation (kernel taps x input
    channels) and the largest output standing for that magnitude. Independent of the CPU, and
    orders of magnitude below what a wrong rewrite changes (a whole tap, channel or crop)."""
    return terms * float(np.finfo(np.float32).eps) * float(np.max(np.abs(reference)))


# Tests that read the data beside the project are `shared`; tests that drive a real browser are
# `slow` (Chromium starts in seconds). Plain `pytest` (and `make check`) leaves both out.
SHARED_FIXTURES = {"shared_data", "shared_weights", "shared_reference"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SHARED_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.shared)
        if "browser" in item.fixturenames:
            item.add_marker(pytest.mark.slow)
    # The longest tests first, then the other slow ones (a stable sort keeps each file's order):
    # with two workers, a long test drawn last would run alone at the end while the other idles.
    items.sort(key=lambda item: (item.get_closest_marker("long") is None, item.get_closest_marker("slow") is None))


def seglab_cli(*args, env=None):
    """`seglab ARGS` run in-process (CliRunner), as a user runs it, without a new interpreter's
    start (importing TensorFlow alone takes seconds): -> returncode, stdout, stderr, like
    subprocess.run. Where the process itself is tested (a signal, a kill, a worker), tests run
    `python -m seglab` instead."""
    from typer.testing import CliRunner

    from seglab.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "160", **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def shared_dir() -> Path:
    return Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))


def _shared(folder: str, what: str) -> Path:
    path = shared_dir() / folder
    if not path.is_dir():
        pytest.skip(f"{what} not found at {path}: set SEGLAB_SHARED to the folder holding {folder}/")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared("data", "real data")


def noise_image(rng, h, w) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_folder(root: Path, masks: dict[str, np.ndarray], classes=None, image_ext=".png", rng=None) -> Path:
    """A `folder`-layout dataset: images/<stem><ext> (noise of the mask's size) and masks/<stem>.png."""
    rng = rng or np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for stem, mask in masks.items():
        Image.fromarray(noise_image(rng, *mask.shape[:2])).save(root / "images" / f"{stem}{image_ext}")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    if classes is not None:
        (root / "classes.json").write_text(json.dumps(classes))
    return root


def blocks_mask(h=32, w=48, num_classes=3) -> np.ndarray:
    """Vertical bands of classes 0..num_classes-1: every class present, easy to reason about."""
    mask = np.zeros((h, w), np.uint8)
    for c in range(num_classes):
        mask[:, c * w // num_classes:(c + 1) * w // num_classes] = c
    return mask


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    return _shared("weights", "pretrained weights")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    return _shared("reference", "reference implementations")


# A real training run small enough to take seconds: for the tests of the verbs that read run folders.
# float32 on every machine: "auto" is mixed_bfloat16 on CPUs with bfloat16 instructions, and the
# tests comparing Keras with exported float32 files expect the same masks bit for bit.
TINY_TRAINING = {"model": "unet", "size": 32, "batch_size": 16, "model_options": {"filters": (4, 8)}, "previews": 2,
                 "precision": "float32"}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    """The tiny run, trained once per test session: the first xdist worker to need it trains it
    (under a file lock, in the folder the workers share) and each worker gets a copy of its own,
    since tests write into it (metrics, reports, exports). Tracing the training step is most of
    the 20 s a training takes, so a second worker training it too cost `make check` that much."""
    from seglab.commands.training import train
    from seglab.runs import Run

    mine = tmp_path_factory.mktemp("runs") / "tiny"
    if worker_id == "master":  # no xdist
        return train("synthetic", mine, epochs=2, verbose=0, **TINY_TRAINING)
    shared = tmp_path_factory.getbasetemp().parent / "tiny_run"  # this session's, shared by its workers
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "run").is_dir():
            # what a worker that died training it left (xdist starts another worker and goes on)
            shutil.rmtree(shared / "training", ignore_errors=True)
            train("synthetic", shared / "training", epochs=2, verbose=0, **TINY_TRAINING)
            (shared / "training").rename(shared / "run")  # complete before any worker copies it
    shutil.copytree(shared / "run", mine)
    return Run(mine)
