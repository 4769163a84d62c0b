"""`seglab bench`: a real, if tiny, timing run that prints one JSON line."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seglab.cli import app
from seglab.models import build_model
from seglab.models.flops import forward_flops

pytestmark = pytest.mark.slow  # real training runs: `make test` runs them, `make check` does not


def test_bench_all_times_training_and_inference_on_the_builtin_dataset():
    result = CliRunner().invoke(app, ["bench", "all", "--model", "unet", "--size", "32", "--batch", "2", "--steps", "1"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["impl"] == "seglab" and line["model"] == "unet" and line["size"] == 32
    assert line["train_img_s"] > 0 and line["infer_img_s"] > 0 and line["peak_rss_mib"] > 0
    assert line["fwd_gflop"] == round(forward_flops(build_model("unet", 4, 32)) / 1e9, 3)  # 4 synthetic classes


def test_bench_rejects_an_unknown_mode_and_model():
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "fit", "--size", "32"])
    assert result.exit_code == 2 and "Use one of: train, predict, all" in result.output
    result = runner.invoke(app, ["bench", "train", "--model", "segnet", "--size", "32"])
    assert result.exit_code == 2 and "Available: deeplabv3plus, fcn8s, fpn, mobilenet_unet, pix2pix_unet, segformer, unet" in result.output
