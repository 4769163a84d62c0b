"""One `seglab train` process against two multi-worker processes on 127.0.0.1, same arguments.

Both train the same model on the same data with the same global batch and seed; prints one JSON
line per way (epoch seconds from history.csv after the first epoch, which traces, training
images/s, final val mIoU) and one line comparing them. On one machine the two workers share its
cores, so this measures the cost of the strategy and its gRPC all-reduces, not a speed-up; run
the workers on separate machines (or GPUs) for that.

  python benchmarks/bench_distribute.py                              # tiny U-Net on the synthetic data
  python benchmarks/bench_distribute.py -- --model unet --size 128 --batch-size 16 --epochs 3
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit

from seglab.data import open_source
from seglab.engines.distribute import local_cluster
from seglab.runs import Run

DEFAULT = ["--size", "64", "--batch-size", "16", "--epochs", "4", "--option", "filters=8,16,32", "--precision", "float32"]


def _train(args: list[str], out: Path, workers: int) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    began = time.perf_counter()
    processes = []
    for config in local_cluster(workers) if workers > 1 else [None]:
        if config is not None:
            env = {**env, "TF_CONFIG": json.dumps(config)}
        processes.append(subprocess.Popen([sys.executable, "-m", "seglab", "train", *args, "--out", str(out)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in processes:
        _, stderr = p.communicate()
        if p.returncode:
            raise SystemExit(f"seglab train failed:\n{stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("train_args", nargs="*", help="after --: seglab train options")
    args = parser.parse_args()
    train_args = [args.data, *(args.train_args or DEFAULT)]
    train_images = len(open_source(args.data).split("train"))  # the default split, as train makes it
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way, workers in (("one process", 1), ("two workers on 127.0.0.1", 2)):
            out = Path(tmp) / f"run{workers}"
            wall = _train(train_args, out, workers)
            with (out / "history.csv").open() as f:
                history = list(csv.DictReader(f))
            config = Run(out).config
            epoch_s = [float(row["seconds"]) for row in history[1:]] or [float(history[0]["seconds"])]
            epoch_s = sum(epoch_s) / len(epoch_s)
            batch = config.recipe.batch_size
            steps = -(-train_images // batch)
            results[way] = {"way": way, "replicas": config.setup.replicas, "replica_batch": config.setup.replica_batch,
                            "wall_s": round(wall, 1), "epoch_s": round(epoch_s, 2),
                            "images_per_s": round(steps * batch / epoch_s, 1),
                            "val_miou": float(history[-1]["val_miou"]), "precision": config.setup.precision}
            emit(results[way])
    one, two = results.values()
    emit({"epoch_time_ratio_two_workers_to_one": round(two["epoch_s"] / one["epoch_s"], 2),
          "val_miou_difference": round(two["val_miou"] - one["val_miou"], 4)}, one["precision"])


if __name__ == "__main__":
    main()
