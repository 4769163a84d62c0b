"""`seglab train`: a real run folder from a real (tiny) training, resuming after a real kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
import yaml
from conftest import TINY_TRAINING as TINY
from conftest import seglab_cli, write_folder

import seglab
from seglab.runs import Run

TINY_CLI = ["--model", "unet", "--size", "32", "--batch-size", "16", "--option", "filters=4,8"]


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(tmp_path, monkeypatch):
    import seglab.commands.training  # noqa: F401  (the function stays reachable once its module is imported)

    # Keras and TensorFlow do not build models safely beside a step traced on another thread (a
    # shadow model cloned on the writing thread once crashed a run): every clone is on this one.
    cloned_on, clone = [], keras.models.clone_model
    monkeypatch.setattr(keras.models, "clone_model", lambda *a, **k: cloned_on.append(threading.get_ident()) or clone(*a, **k))
    run = seglab.train("synthetic", tmp_path / "run", epochs=2, verbose=0, **TINY)
    assert cloned_on == [threading.get_ident()]
    state = run.state
    assert state["status"] == "complete" and state["epochs_done"] == 2
    for name in ("config.yaml", "classes.json", "model.keras", "last.keras", "history.csv", "curves.png"):
        assert (run.path / name).is_file(), name
    assert sorted(p.name for p in run.previews_path.iterdir()) == ["epoch_001.png", "epoch_002.png"]
    history = run.history()
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "val_loss", "val_miou", "val_pixel_accuracy", "learning_rate"} <= set(history[0])
    assert state["best_val_miou"] == max(row["val_miou"] for row in history)
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    recipe = config["recipe"]
    assert recipe["loss"] == "ce+dice" and recipe["epochs"] == 2 and recipe["learning_rate"] == 1e-3  # resolved defaults
    assert json.loads((run.path / "classes.json").read_text())["names"][:2] == ["background", "circle"]
    best = keras.models.load_model(run.path / "model.keras")
    assert best.output_shape == (None, 32, 32, 4)


def test_an_existing_run_folder_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--resume"):
        seglab.train("synthetic", tmp_path / "run", epochs=1, verbose=0, **TINY)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_bad_settings_fail_before_anything_is_written(tmp_path):
    for options, message in [({"optimizer": "sgd"}, "Unknown optimizer 'sgd'"),
                              ({"loss": "bce"}, "for two-class data"),
                              ({"size": 30}, "divisible by 4"),
                              ({"crop": 64}, "--size 32 and --crop 64 disagree"),
                              ({"size": None, "crop": 30}, "divisible by 4"),
                              ({"scale": 0.5}, "--scale resizes images before cropping: it needs --crop"),
                              ({"size": None, "crop": 32, "scale": 0}, "scale must be a number from 0.01 to 4")]:
        with pytest.raises(ValueError, match=message):
            seglab.train("synthetic", tmp_path / "run", epochs=1, verbose=0, **{**TINY, **options})


def test_model_option_defaults_merge_with_the_users_key_by_key():
    from seglab.runs.config import TrainConfig, resolve

    default = resolve(TrainConfig.of(model="mobilenet_unet", weights="none"), 3)
    assert default.recipe.model_options == {"alpha": 1.0, "decoder_filters": (256, 128, 64, 32)}  # every value used
    mine = resolve(TrainConfig.of(model="mobilenet_unet", weights="none", model_options={"alpha": 0.35}), 3)
    assert mine.recipe.model_options == {"decoder_filters": (256, 128, 64, 32), "alpha": 0.35}
    wide = resolve(TrainConfig.of(model="mobilenet_unet", weights="none",
                               model_options={"decoder_filters": (512, 256, 128, 64)}), 3)
    assert wide.recipe.model_options == {"alpha": 1.0, "decoder_filters": (512, 256, 128, 64)}
    unet = resolve(TrainConfig.of(model="unet"), 3)
    assert {"filters", "batch_norm", "dropout", "head_kernel_size"} <= set(unet.recipe.model_options)


def _seglab(*args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "seglab", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("crops,jit,stop", [(True, False, signal.SIGKILL), (False, True, signal.SIGTERM)],
                         ids=["crops-sigkill", "xla-sigterm"])
def test_a_run_killed_mid_training_resumes_to_the_same_result(tmp_path, crops, jit, stop):
    """SIGKILL gives the run no chance to clean up: its state says `running`, and resume goes on
    from the last finished epoch. SIGTERM (what `timeout`, Slurm, Kubernetes and systemd send
    first) stops it as Ctrl-C does: state `interrupted`, exit 143 with what to do next. Either
    way the resumed run ends exactly where an uninterrupted one does, with XLA too. Only the
    killed run needs a process of its own; the resume and the uninterrupted run are the same
    command run here."""
    data, epochs = "synthetic", ["--epochs", "5", "--jit" if jit else "--no-jit"]
    if crops:  # random crops of a tiny folder's images at their own size (x 0.75), new ones every epoch
        rng = np.random.default_rng(0)
        masks = {f"s{i}": rng.integers(0, 3, (44 + 4 * i, 64), dtype=np.uint8) for i in range(10)}
        data = str(write_folder(tmp_path / "data", masks, classes=["bg", "a", "b"]))
        epochs += ["--crop", "32", "--scale", "0.75"]
    killed = _seglab("train", data, "--out", str(tmp_path / "killed"), *TINY_CLI, *epochs)
    run = Run(tmp_path / "killed")
    deadline = time.time() + 240
    while time.time() < deadline and not (run.exists() and run.state.get("epochs_done", 0) >= 2):
        time.sleep(0.05)
    killed.send_signal(stop)
    output = killed.communicate(timeout=120)[0]
    if stop == signal.SIGTERM:
        assert killed.returncode == 143, output
        assert "stopped by SIGTERM" in output and f"seglab train --resume {run.path}" in output
        assert run.state["status"] == "interrupted" and len(run.history()) == run.state["epochs_done"]
    else:
        assert run.state["status"] == "running"
    assert 2 <= run.state["epochs_done"] < 5

    resumed = seglab_cli("train", "--resume", run.path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = seglab_cli("train", data, "--out", tmp_path / "whole", *TINY_CLI, *epochs)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert run.state["status"] == "complete" and run.state["epochs_done"] == 5
    if crops:
        config = yaml.safe_load(run.config_path.read_text())
        assert (config["recipe"]["crop"], config["recipe"]["scale"], config["recipe"]["size"]) == (32, 0.75, 32)
    assert yaml.safe_load(run.config_path.read_text())["setup"]["jit"] is jit
    history, reference = run.history(), Run(tmp_path / "whole").history()
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    # Every epoch's preview and viewer sample are there, and no temporary file is left behind.
    assert sorted(p.name for p in run.previews_path.iterdir()) == [f"epoch_{e:03d}.png" for e in range(1, 6)]
    assert [e["epoch"] for e in json.loads((run.path / "samples" / "samples.json").read_text())["epochs"]] == [1, 2, 3, 4, 5]
    assert not [p for p in run.path.rglob("*") if ".tmp" in p.name]
    for ours, theirs in zip(history, reference):
        assert ours["val_miou"] == pytest.approx(theirs["val_miou"], abs=1e-5)
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    a = run.load_model("last").get_weights()
    b = Run(tmp_path / "whole").load_model("last").get_weights()
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_an_epoch_killed_while_its_files_were_written_is_written_again_on_resume(tmp_path):
    """The checkpoint lands last: a run whose epoch 2 wrote its preview but not last.keras (a
    SIGKILL in between) trains and writes epoch 2 again, and the stale temporaries go."""
    run = seglab.train("synthetic", tmp_path / "run", epochs=1, verbose=0, **TINY)
    config = run.config_path.read_text()
    run.config_path.write_text(config.replace("epochs: 1", "epochs: 2"))
    (run.path / ".last.tmp.keras").write_bytes(b"half a model")  # what a kill mid-save leaves
    (run.previews_path / "epoch_002.png").write_bytes(b"stale")  # epoch 2 got this far before the kill
    seglab.train(resume=run.path, verbose=0)
    assert run.state["status"] == "complete" and [r["epoch"] for r in run.history()] == [1, 2]
    assert (run.previews_path / "epoch_002.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run.path / ".last.tmp.keras").exists()


@pytest.mark.slow
def test_a_second_writer_is_refused_with_the_first_ones_pid_and_the_lock_dies_with_its_process(tmp_path):
    run = seglab.train("synthetic", tmp_path / "run", epochs=1, verbose=0, **TINY)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom seglab.runs import Run\n"
                               f"with Run({str(run.path)!r}).lock():\n    print('locked', flush=True)\n    time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = seglab_cli("train", "--resume", run.path)
        assert second.returncode == 1 and f"PID {holder.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
    finally:
        holder.send_signal(signal.SIGKILL)  # no chance to clean up: the OS lock goes with the process
        holder.wait()
    with Run(run.path).lock():
        pass


@pytest.mark.slow
def test_the_command_line_trains_and_refuses_bad_options(tmp_path):
    from typer.testing import CliRunner

    from seglab.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "synthetic", "--out", str(tmp_path / "run"), *TINY_CLI, "--epochs", "1",
                                 "--seed", "1", "--split-seed", "0"])
    assert result.exit_code == 0, result.output
    assert "Run complete" in result.output and Run(tmp_path / "run").state["status"] == "complete"
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (config["setup"]["seed"], config["data"]["split_seed"]) == (1, 0)
    result = runner.invoke(app, ["train", "synthetic", "--out", str(tmp_path / "other"), "--model", "segnet"])
    assert result.exit_code == 2 and "Available: deeplabv3plus, fcn8s, fpn, mobilenet_unet, pix2pix_unet, segformer, unet" in result.output
    assert not (tmp_path / "other").exists()


def test_split_seed_keeps_the_validation_images_while_seed_changes(tmp_path):
    from conftest import blocks_mask

    from seglab.runs.config import TrainConfig

    data = write_folder(tmp_path / "data", {f"img{i:02d}": blocks_mask() for i in range(40)})

    def val(**seeds):
        return sorted(pair.image.name for pair in TrainConfig.of(path=str(data), **seeds).open_source().split("val"))

    assert val(seed=1, split_seed=0) == val(seed=0) != val(seed=1)
    TrainConfig.of(path=str(data), seed=1, split_seed=0).save(tmp_path / "config.yaml")
    assert TrainConfig.load(tmp_path / "config.yaml").data.split_seed == 0
    written_before = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del written_before["data"]["split_seed"]  # a run from before the key: its split was --seed's, and stays so
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(written_before))
    assert TrainConfig.load(tmp_path / "config.yaml").data.split_seed is None


def test_the_plateau_schedule_takes_up_its_patience_count_on_resume():
    from seglab.commands.training import ResumablePlateau

    scores = [0.5, 0.6, 0.6, 0.59, 0.6, 0.61, 0.61, 0.6, 0.6, 0.6]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1.0), "mse")
    stock = keras.callbacks.ReduceLROnPlateau(monitor="val_miou", mode="max", factor=0.5, patience=3)
    stock.set_model(model)
    stock.on_train_begin()
    for done, score in enumerate(scores, start=1):
        stock.on_epoch_end(done - 1, {"val_miou": score})
        resumed = ResumablePlateau([{"val_miou": s} for s in scores[:done]], monitor="val_miou", factor=0.5, patience=3)
        resumed.on_train_begin()
        assert (resumed.best, resumed.wait) == (stock.best, stock.wait), f"after epoch {done}"
    assert float(model.optimizer.learning_rate) == 0.25  # the stock callback did halve it, twice


def test_the_best_model_keeps_its_bytes_when_last_is_replaced(tmp_path):
    from seglab.runs import atomic_path, link_or_copy

    last, best = tmp_path / "last.keras", tmp_path / "model.keras"
    with atomic_path(last) as tmp:
        tmp.write_bytes(b"epoch 1")
        with atomic_path(best) as tmp_best:
            link_or_copy(tmp, tmp_best)
    with atomic_path(last) as tmp:
        tmp.write_bytes(b"epoch 2")
    assert (best.read_bytes(), last.read_bytes()) == (b"epoch 1", b"epoch 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.keras", "model.keras"]


@pytest.mark.slow
def test_a_run_that_cannot_write_its_epoch_fails_in_one_line_and_resumes(tmp_path):
    """A full disk, as the kernel reports a file-size limit: the same OSError from the same writes.
    The run says `failed` with the reason, the command prints one line, and --resume continues
    once writing works again."""
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    out = tmp_path / "run"
    process = _seglab("train", "synthetic", "--out", str(out), *TINY_CLI, "--epochs", "2", preexec_fn=small_files)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 1, output
    assert "Traceback" not in output and "writing epoch 1 failed" in output and "--resume" in output, output
    state = Run(out).state
    assert state["status"] == "failed" and "writing epoch 1 failed" in state["error"]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    resumed = seglab_cli("train", "--resume", out)  # writing works again (here, without the limit)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert Run(out).state["status"] == "complete" and [r["epoch"] for r in Run(out).history()] == [1, 2]
