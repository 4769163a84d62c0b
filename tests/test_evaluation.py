"""`seglab evaluate` on a real (tiny) run: the numbers agree with training's, files are written."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from seglab.commands.evaluation import evaluate
from seglab.data import open_source
from seglab.runs import Run


def test_evaluate_at_model_size_reproduces_the_best_validation_miou(tiny_run):
    metrics = evaluate(tiny_run.path)
    assert metrics["miou"] == pytest.approx(tiny_run.state["best_val_miou"], abs=1e-5)
    val = len(open_source("synthetic").split("val"))
    assert metrics["images"] == val and metrics["pixels"] == val * 32 * 32
    assert set(metrics["iou"]) == {"background", "circle", "square", "triangle"}
    assert {"pixel_accuracy", "mean_dice", "image_miou", "confusion_matrix", "dice"} <= set(metrics)
    saved = json.loads((tiny_run.path / "metrics.json").read_text())
    assert saved["miou"] == metrics["miou"] and saved["split"] == "val" and not saved["full_res"]
    for name in ("confusion_matrix.png", "best.png", "worst.png"):
        Image.open(tiny_run.path / name).verify()


def test_full_resolution_scores_every_original_pixel(tiny_run):
    metrics = evaluate(tiny_run.path, full_res=True)
    val = len(open_source("synthetic").split("val"))
    assert metrics["full_res"] and metrics["images"] == val and metrics["pixels"] == val * 128 * 128
    assert (tiny_run.path / "metrics_val_full.json").is_file()
    assert (tiny_run.path / "metrics.json").is_file()  # the model-size figures are kept beside


def test_a_run_without_a_finished_epoch_says_so(tmp_path, tiny_run):
    run = Run(tmp_path / "empty")
    run.path.mkdir()
    for name in ("config.yaml", "classes.json"):
        (run.path / name).write_text((tiny_run.path / name).read_text())
    run.write_state(status="running", epochs_done=0)
    with pytest.raises(FileNotFoundError, match="no finished epoch"):
        evaluate(run.path)


def test_the_command_line_prints_the_scores(tiny_run):
    from typer.testing import CliRunner

    from seglab.cli import app

    result = CliRunner().invoke(app, ["evaluate", str(tiny_run.path)])
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output and "(dataset-level)" in result.output and "IoU triangle" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(tiny_run.path), "--split", "test"])
    assert result.exit_code == 2 and "no pairs in split 'test'" in result.output


def test_report_is_one_offline_file_with_the_runs_figures(tiny_run):
    from seglab.report.html import write_report

    metrics = evaluate(tiny_run.path)
    page = write_report(tiny_run.path).read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script src" not in page
    # confusion matrix, worst, best, curves and both previews, all embedded
    assert page.count('src="data:image/png;base64,') == 6
    assert f"{metrics['miou']:.4f}" in page and "triangle" in page and "model: unet" in page
