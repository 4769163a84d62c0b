"""`seglab predict` on odd inputs: every readable image gets a full-size mask, unreadable ones a report."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from seglab.commands.prediction import predict


def odd_images(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 25, 4), dtype=np.uint8)).save(folder / "rgba.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "tiny.png")
    rotated = Image.fromarray(rng.integers(0, 256, (30, 60, 3), dtype=np.uint8))  # stored 60 wide, 30 high
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": shown 30 wide, 60 high
    rotated.save(folder / "exif.jpg", exif=exif)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:200])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_writes_full_size_masks_and_reports_bad_files(tiny_run, tmp_path):
    folder = odd_images(tmp_path / "in")
    summary = predict(tiny_run.path, [folder], tmp_path / "out", batch_size=4)
    sizes = {entry["file"].split("/")[-1]: (entry["width"], entry["height"]) for entry in summary["images"]}
    assert sizes == {"rgb.jpg": (70, 50), "gray.png": (30, 40), "rgba.png": (25, 20), "tiny.png": (1, 1), "exif.jpg": (30, 60)}
    assert [f["file"].split("/")[-1] for f in summary["failed"]] == ["truncated.jpg"]
    assert summary["skipped_non_images"][0].endswith("notes.txt")
    for entry in summary["images"]:
        mask = Image.open(tmp_path / "out" / entry["mask"])
        assert mask.mode == "P" and mask.size == (entry["width"], entry["height"])
        assert np.asarray(mask).max() < 4
        assert Image.open(tmp_path / "out" / entry["overlay"]).size == mask.size
        assert sum(entry["class_fraction"].values()) == pytest.approx(1.0, abs=1e-5)
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert saved["predicted"] == 5 and len(saved["failed"]) == 1
    seconds = saved["seconds"]  # where the time went: each stage once, adding up to the total
    assert {"model", "waiting for masks and overlays to be written", "waiting for decoded images", "total"} <= set(seconds)
    assert min(seconds.values()) >= 0 and sum(seconds.values()) - seconds["total"] == pytest.approx(seconds["total"], abs=0.01)


def test_the_command_line_counts_what_it_skipped(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from seglab.cli import app

    folder = odd_images(tmp_path / "in")
    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Predicted 5 image(s)" in result.output and "1 failed and skipped" in result.output
    assert "1 non-image file(s) ignored" in result.output and "truncated.jpg" in result.output


def test_fifos_devices_and_huge_non_images_are_named_not_waited_on(tiny_run, tmp_path):
    """A FIFO would block the first read forever and /dev/zero never ends: both are refused from
    their file type, before anything opens them, and a large non-image costs only its first bytes."""
    import os
    import resource
    import threading

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")  # inside a folder: skipped and listed
    (folder / "loop.png").symlink_to("loop.png")  # a link to itself: skipped and listed, not followed
    named_fifo = tmp_path / "x.png"
    os.mkfifo(named_fifo)  # named on its own: a failure that names it
    (tmp_path / "z.png").symlink_to("/dev/zero")
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(300 * 1024 * 1024)  # a sparse 300 MB file of zeros: no disk, but 300 MB to read whole
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done = {}
    worker = threading.Thread(target=lambda: done.update(summary=predict(
        tiny_run.path, [folder, named_fifo, tmp_path / "z.png", big], tmp_path / "out")), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert "summary" in done, "predict waited on a FIFO or a device"
    summary = done["summary"]
    assert [e["file"].split("/")[-1] for e in summary["images"]] == ["good.png"]
    failed = {f["file"].split("/")[-1]: f["message"] for f in summary["failed"]}
    assert set(failed) == {"x.png", "z.png", "big.png"}
    assert "FIFO" in failed["x.png"] and "device" in failed["z.png"] and "not an image" in failed["big.png"]
    assert [p.split("/")[-1] for p in summary["skipped_non_images"]] == ["loop.png", "pipe.png"]
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 200 * 1024 * 1024


def test_a_disk_that_fills_up_stops_predict_in_one_line_and_leaves_only_whole_files(tiny_run, tmp_path):
    """The disk filling up, as the kernel reports a file-size limit (EFBIG, the same OSError from
    the same writes as ENOSPC): small images' outputs fit, the large one's overlay does not. Predict
    stops in one line that says how many were written and where; every file under a final name
    decodes, predictions.json lists exactly those, and no temporary file is left."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a0", "a1", "a2"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / "b.png")  # overlay ~190 KB
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / "c.png")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = tmp_path / "out"
    process = subprocess.run([sys.executable, "-m", "seglab", "predict", str(tiny_run.path), str(folder), "--out", str(out),
                              "--batch-size", "2"], capture_output=True, text=True, timeout=300, preexec_fn=small_files,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    output = " ".join((process.stdout + process.stderr).split())
    assert process.returncode == 2 and "Traceback" not in output, output
    summary = json.loads((out / "predictions.json").read_text())
    written = {e["file"].split("/")[-1] for e in summary["images"]}
    assert {"a0.png", "a1.png", "a2.png"} <= written and "b.png" not in written  # c.png: written if it was under way
    assert f"{out}: the disk filled up" in output and f"after {len(written)} of 5 images" in output, output
    assert summary["stopped"].startswith("the disk filled up")
    listed = {e["mask"] for e in summary["images"]} | {e["overlay"] for e in summary["images"]}
    present = {str(p.relative_to(out)) for p in out.rglob("*.png")}
    assert present == listed
    for path in present:
        Image.open(out / path).load()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_rerun_into_the_same_out_starts_without_the_old_index(tiny_run, tmp_path):
    """A rerun killed midway must not leave the earlier run's predictions.json describing masks it
    has since replaced: the index goes when the rerun prepares its folders, before any mask."""
    from seglab.commands.prediction import _make_output_dirs

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "good.png")
    out = tmp_path / "out"
    predict(tiny_run.path, [folder], out)
    assert (out / "predictions.json").exists()
    _make_output_dirs(out)  # what the rerun does first: a kill after it leaves no stale index
    assert not (out / "predictions.json").exists() and (out / "masks" / "good.png.png").exists()
