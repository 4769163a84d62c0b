"""`seglab predict --engine ray`: the same files as the local engine, through a real local Ray."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from seglab.cli import app
from seglab.commands.prediction import predict
from seglab.engines.ray_engine import RayOptions


@pytest.mark.slow
def test_ray_writes_the_local_engines_files_for_oxford_images(tiny_run, shared_data, tmp_path):
    """60 of the Oxford pet photos (every fifth: 8 chunks over 2 actors; all 300 were checked the
    same way by hand), a truncated JPEG, a text file named .jpg and a non-image file, through both
    engines: byte-identical masks and overlays, and the same predictions.json but for the engine
    and its timings."""
    images = tmp_path / "images"
    images.mkdir()
    photos = sorted((shared_data / "oxford-pets" / "images").glob("*.jpg"))
    assert len(photos) == 300
    photos = photos[::5]
    for photo in photos:
        (images / photo.name).symlink_to(photo)
    (images / "truncated.jpg").write_bytes(photos[0].read_bytes()[:3000])
    (images / "notes.jpg").write_text("not an image")
    (images / "README.txt").write_text("not an image either")

    local = predict(tiny_run.path, [images], tmp_path / "local", batch_size=8)
    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(images), "--out", str(tmp_path / "ray"),
                                      "--engine", "ray", "--actors", "2", "--cpus-per-actor", "1"])
    assert result.exit_code == 0, result.output
    assert "Predicted 60 image(s)" in result.output and "2 failed and skipped" in result.output
    ray = json.loads((tmp_path / "ray" / "predictions.json").read_text())

    for kind in ("masks", "overlays"):
        local_files = sorted(p.name for p in (tmp_path / "local" / kind).iterdir())
        assert local_files == sorted(p.name for p in (tmp_path / "ray" / kind).iterdir())
        assert len(local_files) == 60
        for name in local_files:
            assert (tmp_path / "local" / kind / name).read_bytes() == (tmp_path / "ray" / kind / name).read_bytes(), name
    assert (local["engine"], ray["engine"]) == ("local", "ray")
    assert ray["seconds"]["actors"] == 2 and "actors: model" in ray["seconds"]
    same = ("images", "failed", "skipped_non_images", "predicted", "tile", "tta", "size", "threshold", "runtime")
    assert {k: ray[k] for k in same} == {k: local[k] for k in same}
    assert sorted(f["file"].rsplit("/", 1)[1] for f in ray["failed"]) == ["notes.jpg", "truncated.jpg"]


def test_ray_options_are_checked_before_anything_is_written(tiny_run, tmp_path, monkeypatch):
    image = tmp_path / "photo.png"
    shutil.copy(next((tiny_run.path / "previews").glob("*.png")), image)
    with pytest.raises(ValueError, match="--actors must be at least 1"):
        predict(tiny_run.path, [image], tmp_path / "out", engine="ray", ray=RayOptions(actors=0))
    with pytest.raises(ValueError, match="Unknown engine 'spark'"):
        predict(tiny_run.path, [image], tmp_path / "out", engine="spark")
    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(image), "--out", str(tmp_path / "out"),
                                      "--actors", "4"])
    assert result.exit_code == 2 and "are for --engine ray" in result.output
    import socket
    import time

    with socket.socket() as closed:  # a port nothing listens on: Ray itself retried for minutes
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    began = time.monotonic()
    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(image), "--out", str(tmp_path / "out"),
                                      "--engine", "ray", "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2 and f"--address 127.0.0.1:{port}: cannot reach the Ray cluster" in result.output
    assert time.monotonic() - began < 60 and "Traceback" not in result.output, result.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("ray") else real(name, *a))
    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(image), "--out", str(tmp_path / "out"),
                                      "--engine", "ray"])
    assert result.exit_code == 2 and "pip install 'seglab[ray]'" in result.output
    assert not (tmp_path / "out").exists()
