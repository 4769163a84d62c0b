"""Data-parallel training: the input shards, the strategy choice, and real two-worker runs."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_TRAINING

from seglab.data import open_source
from seglab.data.pipeline import make_dataset
from seglab.data.shard import Shard
from seglab.engines.distribute import (
    Cluster,
    local_cluster,
    resolve_distribute,
    tf_config,
)


def _batches(ds, n):
    return [(np.asarray(x), np.asarray(y)) for x, y in ds.take(n)]


def _sharded(source, count, replica_batch, global_batch, n, **kwargs):
    """The first `n` global batches as `count` pipelines of per-replica batches give them, joined."""
    pipelines = [_batches(make_dataset(source, shard=Shard(i, count, global_batch, replica_batch),
                                       batch_size=global_batch, **kwargs), n * global_batch // count // replica_batch)
                 for i in range(count)]
    per_step = global_batch // count // replica_batch
    joined = []
    for step in range(n):
        parts = [p[step * per_step + j] for p in pipelines for j in range(per_step)]
        joined.append((np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])))
    return joined


@pytest.mark.parametrize("count,replica_batch", [(2, 4), (1, 4), (4, 1), (2, 2)])
@pytest.mark.parametrize("crop", [None, 24])
def test_shards_of_the_training_stream_are_the_single_process_batches(count, replica_batch, crop):
    """Shuffled, repeated, augmented, cropped and resumed mid-stream: the replicas' batches of each
    step, joined, are exactly the batch one process trains on, sample for sample."""
    source = open_source("synthetic")
    options = dict(split="train", size=crop or 32, crop=crop, augment=True, cache=True, repeat=True, seed=3,
                   validate_first=False, start_batch=5)
    single = _batches(make_dataset(source, batch_size=8, **options), 3)
    joined = _sharded(source, count, replica_batch, 8, 3, **options)
    for (x, y), (sx, sy) in zip(single, joined):
        np.testing.assert_array_equal(sx, x)
        np.testing.assert_array_equal(sy, y)


def test_start_batch_skips_exactly_that_many_batches():
    source = open_source("synthetic")
    options = dict(split="train", size=32, augment=True, cache=False, repeat=True, seed=1, validate_first=False)
    whole = _batches(make_dataset(source, batch_size=8, **options), 6)
    resumed = _batches(make_dataset(source, batch_size=8, start_batch=4, **options), 2)
    for (x, y), (rx, ry) in zip(whole[4:], resumed):
        np.testing.assert_array_equal(rx, x)
        np.testing.assert_array_equal(ry, y)


def test_validation_shards_cover_every_sample_once_and_pad_with_ignore():
    """38 validation samples in global batches of 8 over 2 pipelines: 5 steps each, the real
    samples once each in order, and the padding labelled only ignore."""
    source = open_source("synthetic")
    options = dict(split="val", size=32, cache=False, validate_first=False)
    single = [(x, y) for batch in _batches(make_dataset(source, batch_size=8, **options), 99) for x, y in zip(*batch)]
    shards = [_batches(make_dataset(source, batch_size=8, shard=Shard(i, 2, 8, 4), **options), 99) for i in range(2)]
    assert [len(s) for s in shards] == [5, 5]
    joined = [(x, y) for step in range(5) for s in shards for x, y in zip(*s[step])]
    assert len(joined) == 40
    real = [(x, y) for x, y in joined if not (y == source.classes.ignore_index).all()]
    assert len(real) == len(single) == 38
    for (x, y), (sx, sy) in zip(single, real):
        np.testing.assert_array_equal(sx, x)
        np.testing.assert_array_equal(sy, y)


def test_a_global_batch_that_does_not_split_is_refused():
    with pytest.raises(ValueError, match="must split evenly over the 4 replicas"):
        Cluster("mirrored", strategy=object(), replicas=4).replica_batch(6)
    with pytest.raises(ValueError, match="does not split"):
        Shard(0, 2, 8, 3)


def test_auto_picks_multi_worker_from_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert resolve_distribute("auto") == "none"  # no GPUs here, no TF_CONFIG
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert resolve_distribute("auto") == "multi-worker"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}))
    assert resolve_distribute("auto") == "none"


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'needs "cluster"'),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "ps", "index": 0}}', "'chief' and 'worker'"),
    ('{"cluster": {"worker": ["nocolon", "b:1"]}, "task": {"type": "worker", "index": 0}}', "'nocolon' is not \"host:port\""),
    ('{"cluster": {"worker": ["a:1", "b:99999"]}, "task": {"type": "worker", "index": 0}}', "'b:99999' is not"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 5}}', "TF_CONFIG: task.index 5 names no worker"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": "zero"}}', "TF_CONFIG: task.index 'zero'"),
])
def test_a_bad_tf_config_is_a_clear_error(monkeypatch, text, match):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=match):
        tf_config()


def test_a_worker_whose_port_is_taken_or_whose_peer_never_starts_says_so_in_one_line(tmp_path):
    """A port held by another process, and a peer that never starts (which held the worker
    forever, silently): one line each, exit 2 and 1, and the wait ends under the test's timeout."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = {"cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
        worker = _seglab(["train", "synthetic", "--out", str(tmp_path / "a"), "--distribute", "multi-worker"],
                         tmp_path / "a.log", config)
        assert worker.wait(timeout=120) == 2
    output = (tmp_path / "a.log").read_text()
    assert f"port {port} is already in use" in output and "Traceback" not in output, output
    config = local_cluster(2)[0]
    worker = _seglab(["train", "synthetic", "--out", str(tmp_path / "b"), "--distribute", "multi-worker",
                      "--worker-timeout", "3"], tmp_path / "b.log", config)
    assert worker.wait(timeout=120) == 1
    output = (tmp_path / "b.log").read_text()
    peer = config["cluster"]["worker"][1]
    assert f"Waiting for the other workers of TF_CONFIG to join: worker 1 ({peer})" in output, output
    assert f"did not all join within 3 s: worker 1 ({peer})" in output and "Traceback" not in output, output
    assert not (tmp_path / "b").exists()


def test_unknown_distribute_lists_the_valid_ones():
    with pytest.raises(ValueError, match="auto, none, mirrored, multi-worker"):
        resolve_distribute("horovod")


# --- two real worker processes on this machine -------------------------------------------------

TINY = ["--size", "32", "--batch-size", "16", "--option", "filters=4,8", "--previews", "2", "--precision", "float32",
        "--seed", "0"]


def _seglab(args, log: Path, tf_config=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-m", "seglab", *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _workers(args_of, tmp_path, tag):
    """Two workers on 127.0.0.1, each with its own TF_CONFIG; `args_of(index)` their arguments."""
    return [_seglab(args_of(i), tmp_path / f"{tag}{i}.log", config) for i, config in enumerate(local_cluster(2))]


def _wait(processes, timeout):
    deadline = time.monotonic() + timeout
    codes = []
    for p in processes:
        try:
            codes.append(p.wait(max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in processes:
                q.kill()
            raise AssertionError(f"a worker still ran after {timeout} s") from None
    return codes


def _history(run: Path):
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_workers_train_as_one_process_would(tmp_path, tiny_run):
    """2 epochs on two CPU workers against the tiny run, the same training in one process with the
    same global batch and seed. The chief alone writes (worker 1 is given another --out, which
    must stay unwritten).

    The final validation mIoU agrees within 0.005, not exactly: each replica averages its loss
    over its own half of the batch (the Dice part of ce+dice is not a sum over samples, and
    augmentation pads different numbers of ignored pixels per half), and the gradients are summed
    over the replicas in another order. Batch statistics are synchronized, so those match."""
    run, elsewhere = tmp_path / "multi", tmp_path / "not-written"
    args = ["train", "synthetic", "--epochs", "2", *TINY]
    workers = _workers(lambda i: [*args, "--out", str(run if i == 0 else elsewhere)], tmp_path, "worker")
    codes = _wait(workers, 240)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs

    assert not elsewhere.exists()
    assert "the chief writes the run folder" in logs[1]
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "complete" and state["epochs_done"] == 2
    for name in ("config.yaml", "classes.json", "model.keras", "last.keras", "history.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert len(list((run / "previews").glob("epoch_*.png"))) == 2
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["setup"]["distribute"], config["setup"]["replicas"], config["setup"]["replica_batch"],
            config["recipe"]["batch_size"]) == ("multi-worker", 2, 8, 16)
    assert yaml.safe_load((tiny_run.path / "config.yaml").read_text())["setup"]["distribute"] == "none"
    _agrees_with_one_process(run, tiny_run.path)


def _agrees_with_one_process(run: Path, single: Path) -> None:
    """Final val mIoU within 0.005; the first epoch's training loss within 5% (a loss not divided
    by the replicas would be off by 2x, which Adam's scale invariance would hide from the mIoU)."""
    (multi, single) = (_history(r) for r in (run, single))
    assert abs(float(multi[-1]["val_miou"]) - float(single[-1]["val_miou"])) < 0.005, (multi[-1], single[-1])
    assert abs(float(multi[0]["loss"]) / float(single[0]["loss"]) - 1) < 0.05, (multi[0], single[0])


@pytest.mark.long
@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_resume_finishes(tmp_path, killed=1):
    """One worker is killed during epoch 2 of 3: the other stops within a minute with an error
    that says to resume (no hang), the run folder keeps epoch 1 (or 2, if the kill came late),
    and `--resume` on both finishes the run. (`killed=0`, the chief killed, passes too; it runs
    only here, by hand, to keep the suite's time down.)"""
    run = tmp_path / "run"
    args = ["train", "synthetic", "--epochs", "3", "--out", str(run), *TINY]
    workers = _workers(lambda i: args, tmp_path, "worker")
    deadline = time.monotonic() + 240
    while not (run / "last.keras").is_file():
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "epoch 1 never finished"
        time.sleep(0.2)
    workers[killed].send_signal(signal.SIGKILL)
    began = time.monotonic()
    survivor = 1 - killed
    (code,) = _wait(workers[survivor:survivor + 1], 120)
    log = (tmp_path / f"worker{survivor}.log").read_text()
    assert code == 1, log
    assert time.monotonic() - began < 60
    assert f"worker {survivor} of 2 lost contact with the others" in log and f"seglab train --resume {run}" in log
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == ("interrupted" if survivor == 0 else "running") and state["epochs_done"] in (1, 2)

    resumed = _workers(lambda i: ["train", "--resume", str(run)], tmp_path, "resumed")
    codes = _wait(resumed, 240)
    assert codes == [0, 0], [(tmp_path / f"resumed{i}.log").read_text() for i in range(2)]
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "complete" and state["epochs_done"] == 3
    assert [int(row["epoch"]) for row in _history(run)] == [1, 2, 3]


TWO_CPU_REPLICAS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import seglab
run = seglab.train("synthetic", sys.argv[1], epochs=2, verbose=0, distribute="mirrored", **json.loads(sys.argv[2]))
"""


@pytest.mark.slow
def test_mirrored_over_two_replicas_trains_as_one_process_would(tmp_path, tiny_run):
    """MirroredStrategy over two logical CPUs (where a machine has GPUs, its GPUs) against the
    tiny run, the same training in one process without a strategy: the final validation mIoU
    agrees within 0.005, for the reasons the two-worker test gives."""
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_TRAINING.items()}
    options["model_options"] = {"filters": list(TINY_TRAINING["model_options"]["filters"])}
    run = tmp_path / "mirrored"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", TWO_CPU_REPLICAS, str(run), json.dumps(options)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["setup"]["distribute"], config["setup"]["replicas"], config["setup"]["replica_batch"]) == ("mirrored", 2, 8)
    _agrees_with_one_process(run, tiny_run.path)
