"""`seglab plan` and `seglab train --budget`: the fingerprint measures what it says, the rules follow
from it, and a planned run ends within its budget with the plan and its reasons recorded."""
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from conftest import noise_image, seglab_cli
from PIL import Image

from seglab.commands.planning import (
    MIN_EPOCHS,
    SAFETY,
    batch_for,
    needed_scale,
    parse_budget,
)
from seglab.core.errors import BadArgument
from seglab.data import open_source
from seglab.data.check import inspect_pairs
from seglab.data.fingerprint import fingerprint


@pytest.mark.parametrize("text, seconds", [("15m", 900), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("600", 600),
                                           ("1.5h", 5400), ("2min", 120)])
def test_budgets_are_read_as_people_write_them(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "15x", "30s", "-5m"])
def test_a_budget_that_is_no_duration_or_too_short_is_refused(text):
    with pytest.raises(BadArgument, match="--budget"):
        parse_budget(text)


def write_strokes_and_blobs(root, count=12, side=96, stroke=3, rng=np.random.default_rng(0)):
    """Class 1: vertical strokes `stroke` px wide over the whole height; class 2: one 40 x 40 square
    in the bottom half. Every image has both."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(count):
        mask = np.zeros((side, side), np.uint8)
        for x in range(8 + i % 5, side, 24):
            mask[:, x:x + stroke] = 1
        top = side // 2 + (i % 3) * 4
        mask[top:top + 40, 30:70] = 2
        Image.fromarray(noise_image(rng, side, side)).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")
    return root


def test_the_fingerprint_measures_object_sizes_stroke_widths_and_where_classes_sit(tmp_path):
    source = open_source(write_strokes_and_blobs(tmp_path / "data"))
    fp = fingerprint(source, inspect_pairs(source.pairs, source))
    strokes, blobs = fp.classes[1], fp.classes[2]
    # 2 x area / boundary: a 3 px stroke whose every pixel but the middle column touches the outside
    # (8-connected erosion) gives 2 x 3 / 2 = 3
    assert strokes.width == pytest.approx(3.0, abs=0.2)
    assert blobs.object_size == pytest.approx(np.sqrt(40 * 40 / 96 ** 2), rel=0.01)  # one square of 40 in 96
    masks = [np.asarray(Image.open(p.mask)) == 1 for p in source.pairs if p.split == "train"]
    top = sum(m[:48].sum() for m in masks) / sum(m.sum() for m in masks)  # the square covers strokes below
    assert blobs.top_share == 0 and strokes.top_share == pytest.approx(top, abs=0.001)
    assert strokes.left_share == pytest.approx(0.5, abs=0.1)
    assert fp.median_size == (96, 96) and fp.bands == ("R", "G", "B") and fp.dtype == "uint8"
    scale, why = needed_scale(fp)
    # the strokes, not the background (the largest class) or the square, set the scale: each stroke is
    # a 3 x 96 component (sqrt(288) = 17 px across, some cut short by the square), which must keep 12 px
    limits = [12 / (strokes.small_object_size * 96), 2 / strokes.width, 12 / (blobs.small_object_size * 96), 2 / blobs.width]
    assert scale == pytest.approx(min(1, max(limits))) and "'class_1'" in why


def _sided(root, pair: bool, count=24, side=32):
    """Class 1 in the left quarter of every mask; class 2 in the right quarter (`pair`: a left and
    a right class, as lungs are) or across the middle half (one class off-centre, as a street's
    pavement is)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(count):
        mask = np.zeros((side, side), np.uint8)
        mask[4:28, 1:1 + side // 4] = 1
        if pair:
            mask[4:28, side - 1 - side // 4:side - 1] = 2
        else:
            mask[4:28, side // 4:3 * side // 4] = 2
        Image.fromarray(noise_image(np.random.default_rng(i), side, side)).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:02d}.png")
    return root


@pytest.mark.parametrize("pair", [True, False], ids=["a-mirrored-pair", "one-class-off-centre"])
def test_horizontal_flips_are_off_only_where_a_flip_would_swap_two_classes(tmp_path, pair):
    from seglab.commands.planning import Planner, Resolution
    from seglab.data.augment import Augment

    tiled, timing = Resolution(16, 16), {"val_step": 0.1, "batch_size": 4}
    source = open_source(_sided(tmp_path / "data", pair))
    planner = Planner(source, inspect_pairs(source.pairs, source), 600)
    flip = planner._augment(Augment())["flip"]
    why = planner.reasons["augment"]
    options = planner._inference(tiled, timing, 0.01, flip=flip > 0)["options"]  # TTA follows the decision
    if pair:
        assert flip == 0.0 and "'class_1' lies on the left (100% of its pixels) and 'class_2' on the right (100%)" in why
        assert "tta" not in options
    else:
        assert flip == 0.5 and why.startswith("horizontal flips on")
        assert options["tta"] == "flip"


def test_batches_fit_memory_and_give_small_datasets_several_updates():
    assert batch_for(128, 1000) == 16
    assert batch_for(512, 1000) == 4  # 16 x 320^2 pixels at most
    assert batch_for(128, 30) == 2  # an eighth of 30
    assert batch_for(128, 8) == 2


@pytest.mark.long
@pytest.mark.slow
def test_a_planned_run_ends_within_its_budget_and_records_the_plan(tmp_path):
    """The whole command within its budget (+10%), the user's option kept over the plan's, the
    plan's values, reasons and user-set fields in config.yaml, its fingerprint in plan.json and the
    report's "why these settings"."""
    data = write_strokes_and_blobs(tmp_path / "data", count=24, side=64)
    out = tmp_path / "run"
    # a process of its own, as the planned run below: TensorFlow's import is part of its estimate
    planned = subprocess.run([sys.executable, "-m", "seglab", "plan", str(data), "--budget", "1m", "--json"],
                             capture_output=True, text=True, timeout=300)
    assert planned.returncode == 0, planned.stderr[-3000:]
    shown = json.loads(planned.stdout.strip().splitlines()[-1])
    # The run's budget: a minute, or what this machine needs for MIN_EPOCHS as the plan just
    # measured it. No plan ends within a budget that its fixed costs and one epoch exceed (it
    # trains one and says the budget is too small): on 2 AVX2 cores beside another test, a
    # minute held one epoch of 11 s, and the command took 67 s.
    estimate = shown["estimate_s"]
    budget = max(60, math.ceil((estimate["total"] - estimate["epochs"] + MIN_EPOCHS * estimate["per_epoch"]) / SAFETY))
    assert shown["values"]["model"] == "unet" and shown["values"]["size"] == 128  # the smallest size: images are 64 px
    assert {"model", "size", "batch_size", "epochs", "learning_rate", "loss", "class_weights", "augment"} <= set(shown["reasons"])
    assert shown["timings"][0]["train_step"] > 0
    assert shown["fingerprint"]["masks_measured"] == shown["fingerprint"]["train_pairs"] < 24  # every training mask
    assert estimate["total"] <= 60 or shown["warnings"]  # within the minute, or it says why not
    refused = seglab_cli("train", "--resume", out, "--budget", "1m")
    assert refused.returncode == 2 and "--budget plans a new run" in refused.stderr
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "seglab", "train", str(data), "--budget", f"{budget}s", "--out", str(out),
                           "--batch-size", "4"], capture_output=True, text=True, timeout=budget * 3)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr[-3000:]
    assert took <= budget * 1.1, (took, done.stderr[-2000:])
    config = yaml.safe_load((out / "config.yaml").read_text())
    plan = config["plan"]
    assert plan["budget"] == budget and plan["user_set"] == ["batch_size"]
    assert config["recipe"]["batch_size"] == 4  # the user's, not the plan's
    assert config["recipe"]["model"] == "unet"  # no pretrained weights here: from scratch
    for field in ("model", "size", "epochs", "learning_rate", "loss", "augment"):
        assert plan["reasons"].get(field), field
    assert plan["inference"]["options"]
    saved = json.loads((out / "plan.json").read_text())
    assert saved["fingerprint"]["classes"][1]["width"] == pytest.approx(3.0, abs=0.2)
    assert saved["timings"] and saved["machine"]["cores"] >= 1
    state = json.loads((out / "state.json").read_text())
    assert state["status"] == "complete"
    assert "Plan for a budget of" in done.stderr
    from seglab.report.html import write_report

    report = write_report(out).read_text()
    assert "Why these settings" in report and "given on the command line" in report


@pytest.mark.slow
def test_a_given_model_is_measured_and_planned_with_its_given_encoder(tmp_path):
    """`--model unet --encoder mobilenet_v2` (a tune trial's drawn decoder) is U-Net over the
    pretrained encoder, which takes the MobileNetV2 weights; plain `--model unet` is the classic
    U-Net from scratch, which takes none: the weights found are not put on it."""
    from seglab.commands.planning import Planner
    from seglab.commands.training import checked_source
    from seglab.runs.config import TrainConfig

    data = write_strokes_and_blobs(tmp_path / "data", count=12, side=64)
    config = TrainConfig.of(path=str(data))
    source = config.open_source()
    reports = checked_source(source, config)
    weights = str(tmp_path / "mobilenet_v2_1.0_notop.weights.h5")  # only recorded: the step is measured without it
    over = Planner(source, reports, 60, {"model": "unet", "model_options": {"encoder": "mobilenet_v2"},
                                         "weights": weights}, base=config).plan().values
    assert over["model"] == "unet" and over["model_options"]["encoder"] == "mobilenet_v2"
    assert over["weights"] == weights
    found = tmp_path / "weights"  # a weights/ folder above the dataset, as ../shared/weights
    found.mkdir()
    (found / "mobilenet_v2_1.0_notop.weights.h5").touch()
    plain = Planner(source, reports, 60, {"model": "unet"}, base=config).plan().values
    assert plain["model"] == "unet" and plain.get("weights") is None
