"""The command line, run in-process (CliRunner) as a user runs it; one test runs `python -m seglab`."""
import json
import subprocess
import sys

import pytest
from conftest import seglab_cli as seglab
from typer.testing import CliRunner

from seglab.cli import app


def test_python_m_seglab_lists_its_verbs():
    out = subprocess.run([sys.executable, "-m", "seglab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for verb in ("check", "demo", "synthetic", "train", "predict", "evaluate", "instances"):
        assert verb in out.stdout


def test_check_help_shows_an_example():
    assert "Example: seglab check" in seglab("check", "--help").stdout


def test_synthetic_then_check(tmp_path):
    out = seglab("synthetic", tmp_path / "shapes", "--count", 12, "--size", 32)
    assert out.returncode == 0, out.stderr
    out = seglab("check", tmp_path / "shapes", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["format"] == "synthetic" and data["total_pairs"] == 12
    assert data["classes"] == ["background", "circle", "square", "triangle"] and not data["errors"]


@pytest.mark.slow
def test_demo_trains_on_the_builtin_dataset(tmp_path):
    out = seglab("demo", "--out", tmp_path / "demo", "--epochs", 1, env={"SEGLAB_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    assert f"Demo run: {tmp_path / 'demo'}" in out.stdout and "validation mIoU" in out.stdout
    assert json.loads((tmp_path / "demo" / "state.json").read_text())["status"] == "complete"
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "metrics.json").is_file()


def test_missing_folder_is_a_clear_error(tmp_path):
    out = seglab("check", tmp_path / "nope")
    assert out.returncode == 2
    assert "nope: not a folder" in out.stderr and "Traceback" not in out.stderr


def test_imagenet_weights_offline_is_a_clear_error_and_leaves_no_run(tmp_path, monkeypatch):
    # In-process, so the download itself can be cut off: tests never reach the internet.
    from keras.src.applications import (
        mobilenet_v2,  # the one place a test reaches inside Keras: to cut the download
    )

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)
    assert seglab("synthetic", tmp_path / "shapes", "--count", 8, "--size", 32).returncode == 0
    out = CliRunner().invoke(app, ["train", str(tmp_path / "shapes"), "--model", "mobilenet_unet", "--size", "32",
                                   "--out", str(tmp_path / "run")])
    assert out.exit_code == 2, out.output
    assert "Could not get the ImageNet weights for MobileNetV2" in out.output and "need internet" in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert not (tmp_path / "run").exists()


def test_a_bug_is_an_internal_error_with_its_traceback_kept_not_a_bad_argument(monkeypatch, tmp_path):
    """A plain ValueError from inside a library (not one of seglab's own errors) is a bug: exit 70,
    named as such, the traceback in a file the message gives; --debug prints it too."""
    import importlib

    data = importlib.import_module("seglab.data")  # not `import seglab.data`: `seglab` here is the helper above

    def broken(*args, **kwargs):
        raise ValueError("boom from deep inside")

    monkeypatch.setattr(data, "open_source", broken)
    out = seglab("check", "synthetic", env={"SEGLAB_ERROR_DIR": str(tmp_path / "errors")})
    assert out.returncode == 70
    assert "internal error" in out.stderr and "ValueError: boom from deep inside" in out.stderr
    assert "--debug" in out.stderr and "Traceback" not in out.stderr
    (kept,) = (tmp_path / "errors").iterdir()
    assert str(kept) in out.stderr.replace("\n", "")
    assert "Traceback" in kept.read_text() and "boom from deep inside" in kept.read_text()
    debug = seglab("--debug", "check", "synthetic", env={"SEGLAB_ERROR_DIR": str(tmp_path / "errors")})
    assert debug.returncode == 70 and "Traceback" in debug.stderr


def test_seglabs_own_errors_stay_one_line_with_their_exit_codes(tmp_path):
    missing = seglab("evaluate", tmp_path / "nowhere")
    assert missing.returncode == 2 and "is not a seglab run folder" in missing.stderr
    assert "internal error" not in missing.stderr and "Traceback" not in missing.stderr


def test_tables_in_a_pipe_keep_every_number_whole():
    """CliRunner is not a terminal: the model table is plain text, each number in full."""
    out = seglab("models")
    assert out.returncode == 0 and "…" not in out.stdout
    assert "14,793,021" in out.stdout and "parameters" in out.stdout.splitlines()[0]


def test_train_config_starts_from_a_file_and_the_options_typed_change_it(tmp_path):
    seglab("synthetic", tmp_path / "shapes", "--count", 12, "--size", 32)
    partial = tmp_path / "recipe.yaml"  # a partial configuration: the data and some recipe values
    partial.write_text(f"data: {{path: {tmp_path / 'shapes'}}}\n"
                       "recipe: {model: unet, model_options: {filters: [4, 8]}, size: 32, batch_size: 4, epochs: 3,\n"
                       "         learning_rate: 0.002, augment: {zoom: [0.9, 1.1]}}\n")
    out = seglab("train", "--config", partial, "--epochs", 1, "--option", "dropout=0.1", "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    ran = json.loads(json.dumps(__import__("yaml").safe_load((tmp_path / "run" / "config.yaml").read_text())))
    assert ran["data"]["path"] == str(tmp_path / "shapes")
    recipe = ran["recipe"]
    assert (recipe["model"], recipe["size"], recipe["batch_size"], recipe["learning_rate"]) == ("unet", 32, 4, 0.002)
    assert recipe["epochs"] == 1  # typed: it wins over the file's 3
    assert recipe["model_options"]["filters"] == [4, 8] and recipe["model_options"]["dropout"] == 0.1  # merged
    assert recipe["augment"]["zoom"] == [0.9, 1.1]
    refused = seglab("train", "--config", partial, "--resume", tmp_path / "run")
    assert refused.returncode == 2 and "--config starts a new run" in refused.stderr
    missing = seglab("train", "--config", tmp_path / "nope.yaml")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
