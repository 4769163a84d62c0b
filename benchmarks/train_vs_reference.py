"""Training quality: seglab's defaults vs the tutorials' recipes, same images, epochs and size.

For each model, runs `../shared/reference/train_seed.py` (the tutorial's recipe) and
`seglab train` (seglab's defaults, only --epochs set to the same number) one after the other, each
in a fresh process, on Oxford-IIIT Pet. Both train on seglab's `train` split and are scored on its
`val` split: the reference gets them as two Oxford-layout folders of symlinks, built here.

Prints one JSON line per run and a summary line per model. Wall time: the reference's `train_s`
is its `fit` alone; for seglab, `fit_s` is the sum of its epochs as history.csv records them
(training, validation, checkpoints, curves and previews) and `wall_s` the whole command with
start-up and data checks. seglab's `val_miou_last` is the last epoch's score (no model selection,
like the reference); `val_miou_best` is the best epoch's, the one model.keras keeps.

`--seeds 0 1 2` trains seglab once per seed (`--seed`); the reference sets its own seed (0) and
runs once per model, first. The summary line gives seglab's mean over the seeds and its spread
(lowest, highest), and the ratio of the mean epochs' time to the reference's `fit`.

  python benchmarks/train_vs_reference.py --models unet mobilenet_unet --epochs 30 20
  python benchmarks/train_vs_reference.py --models mobilenet_unet --epochs 20 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit, run_precision

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))
WEIGHTS = {"mobilenet_unet": "mobilenet_v2_1.0_notop.weights.h5", "fcn8s": "vgg16_notop.weights.h5"}


def split_folders(data: Path, out: Path) -> dict[str, Path]:
    """Oxford-layout folders of symlinks, one per seglab split, for the reference to read."""
    from seglab.data import open_source

    source = open_source(str(data), "oxford-pets")
    folders = {}
    for split in ("train", "val"):
        root = out / split
        (root / "images").mkdir(parents=True)
        (root / "annotations" / "trimaps").mkdir(parents=True)
        for pair in source.split(split):
            (root / "images" / pair.image.name).symlink_to(pair.image.resolve())
            (root / "annotations" / "trimaps" / pair.mask.name).symlink_to(pair.mask.resolve())
        folders[split] = root
    return folders


def run_json(command: list[str]) -> tuple[dict, float]:
    """Run a command; return its last JSON output line ({} if none) and its wall seconds."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), wall


def seglab_train(model: str, data, out: Path, *options: str) -> tuple[list[dict], float]:
    """Run `seglab train` in a fresh process; return the run's history rows and the wall seconds."""
    from seglab.runs import Run

    if model in WEIGHTS:
        options += ("--weights", str(SHARED / "weights" / WEIGHTS[model]))
    _, wall = run_json([sys.executable, "-m", "seglab", "train", str(data), "--model", model, "--out", str(out), *options])
    return Run(out).history(), wall


def reference(model: str, folders: dict, epochs: int, size: int) -> dict:
    command = [sys.executable, str(SHARED / "reference" / "train_seed.py"), "--train", str(folders["train"]),
               "--test", str(folders["val"]), "--model", model, "--epochs", str(epochs), "--size", str(size)]
    if model in WEIGHTS:
        command += ["--weights", str(SHARED / "weights" / WEIGHTS[model])]
    result, wall = run_json(command)
    return {**result, "wall_s": round(wall)}


def seglab(model: str, data: Path, epochs: int, size: int, out: Path, seed: int) -> dict:
    history, wall = seglab_train(model, data, out, "--epochs", str(epochs), "--size", str(size), "--seed", str(seed))
    best = max(history, key=lambda row: row["val_miou"])
    return {"impl": "seglab", "model": model, "size": size, "epochs": epochs, "seed": seed,
            "fit_s": round(sum(row["seconds"] for row in history)), "wall_s": round(wall),
            "val_pixel_accuracy_last": round(history[-1]["val_pixel_accuracy"], 4),
            "val_miou_last": round(history[-1]["val_miou"], 4),
            "val_miou_best": round(best["val_miou"], 4), "best_epoch": best["epoch"], "precision": run_precision(out)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED / "data" / "oxford-pets"))
    parser.add_argument("--models", nargs="+", default=["unet", "mobilenet_unet"])
    parser.add_argument("--epochs", nargs="+", type=int, default=None,
                        help="epochs per model, in --models order (default: seglab's default for each)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seglab's --seed, one run each (default: 0)")
    parser.add_argument("--keep", type=Path, default=None, help="keep seglab's run folders here (default: deleted)")
    args = parser.parse_args()
    if not (SHARED / "reference" / "train_seed.py").is_file():
        sys.exit(f"reference trainer not found under {SHARED}: set SEGLAB_SHARED")
    from seglab.models import model_spec

    epochs = args.epochs or [model_spec(m).defaults.epochs for m in args.models]
    with tempfile.TemporaryDirectory() as tmp:
        folders = split_folders(Path(args.data), Path(tmp))
        for model, n in zip(args.models, epochs):
            seed = reference(model, folders, n, args.size)
            emit(seed)
            ours = []
            for each in args.seeds:
                ours.append(seglab(model, Path(args.data), n, args.size, (args.keep or Path(tmp)) / f"run-{model}-{each}",
                                   each))
                emit(ours[-1])
            fit = _mean_and_spread("seglab_fit_s", [r["fit_s"] for r in ours], 1)
            # the tutorial sets no precision policy: float32, Keras's default
            emit({"summary": model, "epochs": n, "size": args.size, "seeds": args.seeds,
                  "seed_miou": seed["miou"], **_mean_and_spread("seglab_miou_last", [r["val_miou_last"] for r in ours], 4),
                  "seed_pixel_accuracy": seed["pixel_accuracy"],
                  **_mean_and_spread("seglab_pixel_accuracy_last", [r["val_pixel_accuracy_last"] for r in ours], 4),
                  "seed_train_s": seed["train_s"], **fit,
                  "time_ratio": round(fit["seglab_fit_s"] / max(seed["train_s"], 1), 3),
                  "seglab_precision": ours[0]["precision"], "seed_precision": "float32"})


def _mean_and_spread(key: str, values: list[float], digits: int) -> dict:
    """{key: the mean, key_spread: [lowest, highest]} (the spread only over several seeds)."""
    mean = {key: round(statistics.mean(values), digits)}
    return mean if len(values) == 1 else {**mean, f"{key}_spread": [min(values), max(values)]}


if __name__ == "__main__":
    main()
