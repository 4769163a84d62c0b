"""Quality of architecture x encoder recipes: trains each on a real dataset and scores it.

Each recipe is one `seglab train` in a fresh process, then `seglab evaluate` of its best epoch on
the validation split (at the model's size, as training scored it). Prints one JSON line per
recipe: parameters, training wall time (the whole `seglab train` command), val pixel accuracy
and mIoU. The goals of issue 19 (2 CPU cores): Oxford pets >= 0.92 pixel accuracy and >= 0.78 mIoU
within 10 minutes of training; CamVid 11 classes >= 0.70 mIoU within 20 minutes.

  python benchmarks/zoo_quality.py --data oxford-pets --recipes deeplabv3plus:mobilenet_v2 fpn:mobilenet_v2
  python benchmarks/zoo_quality.py --data camvid --recipes deeplabv3plus:mobilenet_v2 --epochs 30

A recipe is MODEL[:ENCODER]; its encoder starts from the weights file under ../shared/weights
where one is there for it (MobileNetV2, VGG16), else from random weights (no downloads here).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit, run_precision

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))
WEIGHT_FILES = {"mobilenet_v2": "mobilenet_v2_1.0_notop.weights.h5", "mobilenet_unet": "mobilenet_v2_1.0_notop.weights.h5",
                "vgg16": "vgg16_notop.weights.h5", "fcn8s": "vgg16_notop.weights.h5"}


def seglab(*args) -> str:
    result = subprocess.run([sys.executable, "-m", "seglab", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise SystemExit(f"seglab {' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def run_recipe(recipe: str, data: Path, out: Path, args) -> dict:
    model, _, encoder = recipe.partition(":")
    weights = WEIGHT_FILES.get(encoder or model)
    options = ["--model", model, "--epochs", args.epochs, "--size", args.size, "--batch-size", args.batch_size,
               "--weights", SHARED / "weights" / weights if weights else "none"]
    if encoder:
        options += ["--encoder", encoder]
    if args.learning_rate:
        options += ["--lr", args.learning_rate]
    if args.view:
        options += ["--view", args.view]
    run = out / recipe.replace(":", "-")
    start = time.perf_counter()
    seglab("train", data, "--out", run, *options, *args.extra)
    train_s = time.perf_counter() - start
    seglab("evaluate", run)
    metrics = json.loads((run / "metrics.json").read_text())
    from seglab.runs.saving import load_model

    parameters = load_model(run / "model.keras", compile=False).count_params()
    return {"data": data.name, "recipe": recipe, "weights": weights or "none", "size": args.size, "epochs": args.epochs,
            "batch_size": args.batch_size, "parameters": int(parameters), "train_s": round(train_s, 1),
            "val_pixel_accuracy": round(metrics["pixel_accuracy"], 4), "val_miou": round(metrics["miou"], 4),
            "iou": metrics["iou"], "view": args.view, "precision": run_precision(run)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="oxford-pets", help="A folder under ../shared/data.")
    parser.add_argument("--recipes", nargs="+", default=["deeplabv3plus:mobilenet_v2"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--view", help="Class view, e.g. binary for Oxford pets.")
    parser.add_argument("--out", type=Path, help="Where the runs go (default: a temporary folder, removed).")
    parser.add_argument("extra", nargs="*", help="More `seglab train` options, after --.")
    args = parser.parse_args()
    data = SHARED / "data" / args.data
    with tempfile.TemporaryDirectory(prefix="seglab-zoo-") as tmp:
        out = args.out or Path(tmp)
        for recipe in args.recipes:
            emit(run_recipe(recipe, data, out, args))


if __name__ == "__main__":
    main()
