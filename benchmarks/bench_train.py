"""Training speed end to end: `seglab train` vs the reference's `bench_seed.py`, alternated in one run.

The reference times `model.fit` steps over its input pipeline after a warm-up. For seglab the
whole command is timed as a user runs it: `seglab train` for a few epochs, with everything an
epoch does (augmented training batches, validation, checkpoints, curves, previews), from the
per-epoch seconds in history.csv. Epoch 1 holds the warm-up (graph tracing, cache filling), so
`train_img_s` counts epochs 2.. and `train_img_s_all` every epoch. Same model, size and batch.
Both are timed over windows of 15 s or more (the reference's steps in bench_models.CONFIGS,
seglab's `--epochs`): on a shared 2-core VM the time a process gets comes in slices of about a
second, which skews a 5-second window by 20%.
Prints every measurement as a JSON line, then a summary line per model with ratios of medians.

  python benchmarks/bench_train.py --models mobilenet_unet unet --rounds 3
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

from bench_models import CONFIGS, SHARED, commands, run
from json_line import emit, run_precision
from train_vs_reference import seglab_train


def seglab_img_s(model: str, data: str, size: int, batch: int, epochs: int) -> dict:
    from seglab.data import open_source

    steps = math.ceil(len(open_source(data).split("train")) / batch)
    with tempfile.TemporaryDirectory() as tmp:
        history, wall = seglab_train(model, data, Path(tmp) / "run", "--size", str(size), "--batch-size", str(batch),
                                     "--epochs", str(epochs))
        precision = run_precision(Path(tmp) / "run")
    seconds = [row["seconds"] for row in history]
    images = steps * batch  # the training stream repeats, so every step is a full batch
    return {"impl": "seglab-train", "model": model, "size": size, "batch": batch, "epochs": epochs,
            "train_img_s": round(images * (epochs - 1) / sum(seconds[1:]), 2),
            "train_img_s_all": round(images * epochs / sum(seconds), 2),
            "epoch_s": [round(s, 2) for s in seconds], "wall_s": round(wall, 1), "precision": precision}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED / "data" / "oxford-pets"))
    parser.add_argument("--models", nargs="+", default=["mobilenet_unet", "unet"], choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=6, help="seglab epochs; the first is the warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2: epoch 1 is the warm-up")

    for model in args.models:
        size, batch, steps, weights_file = CONFIGS[model]
        weights = str(SHARED / "weights" / weights_file) if weights_file else None
        reference_cmd, _ = commands(model, args.data, size, batch, steps, weights, jit=False)
        results = {"seed": [], "seglab": []}
        for _ in range(args.rounds):
            results["seed"].append(run(reference_cmd))
            emit(results["seed"][-1])
            results["seglab"].append(seglab_img_s(model, args.data, size, batch, args.epochs))
            emit(results["seglab"][-1])
        seed = statistics.median(r["train_img_s"] for r in results["seed"])
        ours = statistics.median(r["train_img_s"] for r in results["seglab"])
        ours_all = statistics.median(r["train_img_s_all"] for r in results["seglab"])
        # the reference sets no precision policy: float32, Keras's default
        emit({"summary": model, "size": size, "batch": batch, "rounds": args.rounds,
              "seed_train_img_s": seed, "seglab_train_img_s": ours, "ratio": round(ours / seed, 3),
              "seglab_train_img_s_all": ours_all, "ratio_all": round(ours_all / seed, 3),
              "seglab_precision": results["seglab"][0]["precision"], "seed_precision": "float32"})


if __name__ == "__main__":
    main()
