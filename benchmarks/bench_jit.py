"""Whole-step XLA against TensorFlow's kernels: `seglab train --jit` vs `--no-jit`, alternated.

Each round trains the same model, size, batch, precision and seed twice in fresh processes, once
each way, and reads the per-epoch seconds from history.csv (validation and per-epoch writing
included). `epoch_s` is the median of epochs 2.. (epoch 1 holds tracing and, with --jit, nothing
of the XLA compilation, which happens before it and is in `wall_s`). Prints a JSON line per run,
with the machine (CPU model and speed flags), then a summary line per model: the ratio of the
medians over rounds, above 1 where XLA is faster.

  python benchmarks/bench_jit.py --models unet mobilenet_unet deeplabv3plus --size 128 --rounds 3

The demo's recipe (`seglab demo`, which asks for XLA), both ways:

  python benchmarks/bench_jit.py --size 64 --batch 8 --epochs 32 --precision auto -- --lr 3e-3 \
      --no-augment --option filters=8,16,32,64 --option batch_norm=true
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from json_line import emit
from train_vs_reference import seglab_train


def one(model: str, data: str, jit: bool, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        history, wall = seglab_train(model, data, Path(tmp) / "run", "--jit" if jit else "--no-jit", "--size", str(args.size),
                                     "--batch-size", str(args.batch), "--epochs", str(args.epochs),
                                     "--precision", args.precision, *args.extra)
    seconds = [row["seconds"] for row in history]
    return {"model": model, "jit": jit, "size": args.size, "batch": args.batch, "precision": args.precision,
            "epoch_s": round(statistics.median(seconds[1:]), 2), "first_epoch_s": round(seconds[0], 2),
            "train_s": round(sum(seconds), 1), "wall_s": round(wall, 1), "val_miou": history[-1]["val_miou"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--models", nargs="+", default=["unet"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="the first is left out of epoch_s")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more `seglab train` options, after --")
    args = parser.parse_args()
    for model in args.models:
        runs = {True: [], False: []}
        for _ in range(args.rounds):
            for jit in (True, False):
                result = one(model, args.data, jit, args)
                runs[jit].append(result["epoch_s"])
                emit(result)
        xla, plain = statistics.median(runs[True]), statistics.median(runs[False])
        emit({"summary": model, "size": args.size, "epoch_s_xla": xla, "epoch_s_no_xla": plain,
              "xla_speedup": round(plain / xla, 2)}, args.precision)


if __name__ == "__main__":
    main()
