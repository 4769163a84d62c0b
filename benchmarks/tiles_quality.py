"""Quality of the ways to predict: at the model's size, resizing the whole image and back, sliding
tiles at full resolution, each with or without test-time augmentation; scored on one run's
validation split.

Trains a run (`seglab train DATA --out RUN TRAIN-OPTIONS`, timed) unless --run names one, then
runs `seglab evaluate` once per way and prints one JSON line per way (pixel accuracy, mIoU,
per-class IoU, evaluation seconds; for a run it trained, the command's seconds and the epochs' own,
as history.csv has them), then a Markdown table of them.

  python benchmarks/tiles_quality.py --data camvid -- --model deeplabv3plus --encoder mobilenet_v2 \\
      --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5 --crop 256 --epochs 40 --batch-size 8 --class-weights auto
  python benchmarks/tiles_quality.py --data oxford-pets --ways model-size model-size+flip resize resize+flip -- \\
      --model deeplabv3plus --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5
  python benchmarks/tiles_quality.py --data oxford-pets --ways model-size resize+flip+deeplab-scales -- \\
      --model deeplabv3plus --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5 --size 320 --epochs 20
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from json_line import emit

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))
# way: the `seglab evaluate` options it adds ({tile}: the run's crop, or its size)
WAYS = {
    "model-size": [],
    "model-size+flip": ["--tta", "flip"],
    "resize": ["--full-res"],
    "resize+flip": ["--full-res", "--tta", "flip"],
    "resize+flip+scales": ["--full-res", "--tta", "flip+scales=0.75,1,1.25"],
    # the DeepLabV3+ paper's evaluation (Chen et al., 2018): left-right flips and these six scales
    "resize+flip+deeplab-scales": ["--full-res", "--tta", "flip+scales=0.5,0.75,1,1.25,1.5,1.75"],
    "tile": ["--tile", "{tile}"],
    "tile+flip": ["--tile", "{tile}", "--tta", "flip"],
    "tile+flip+scales": ["--tile", "{tile}", "--tta", "flip+scales=0.75,1,1.25"],
}


def seglab(*args) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "seglab", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise SystemExit(f"seglab {' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="camvid", help="A folder under ../shared/data (when training).")
    parser.add_argument("--run", type=Path, help="Score this run instead of training one.")
    parser.add_argument("--out", type=Path, default=Path("runs/tiles-quality"), help="Where the trained run goes.")
    parser.add_argument("--ways", nargs="+", default=["resize", "tile", "tile+flip", "tile+flip+scales"], choices=list(WAYS))
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("train", nargs="*", help="`seglab train` options, after --.")
    args = parser.parse_args()
    run, train_s, epochs_s = args.run, None, None
    if run is None:
        run = args.out
        train_s = round(seglab("train", SHARED / "data" / args.data, "--out", run, *args.train), 1)
        with open(run / "history.csv") as f:
            epochs_s = round(sum(float(row["seconds"]) for row in csv.DictReader(f)), 1)
    from seglab.runs import Run

    config = Run(run).config
    recipe = config.recipe
    tile = recipe.crop or recipe.size
    rows = []
    for way in args.ways:
        options = [o.format(tile=tile) for o in WAYS[way]]
        if "--tile" in options:
            options += ["--overlap", args.overlap]
        out = run / f"tiles-quality-{way}"
        seconds = seglab("evaluate", run, "--out", out, *options)
        metrics = json.loads(next(out.glob("metrics*.json")).read_text())
        row = {"way": way, "run": str(run), "model": recipe.model, "encoder": recipe.model_options.get("encoder"),
               "crop": recipe.crop, "scale": recipe.scale, "size": recipe.size, "tile": metrics.get("tile"),
               "overlap": metrics.get("overlap"), "tta": metrics.get("tta"), "images": metrics["images"],
               "pixel_accuracy": round(metrics["pixel_accuracy"], 4), "miou": round(metrics["miou"], 4),
               "iou": {k: None if v is None else round(v, 4) for k, v in metrics["iou"].items()},
               "evaluate_s": round(seconds, 1), "train_s": train_s, "train_epochs_s": epochs_s,
               "precision": config.setup.precision}
        rows.append(row)
        emit(row)
    print("\n| way | pixel accuracy | mIoU | evaluate s |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['way']} | {row['pixel_accuracy']:.4f} | {row['miou']:.4f} | {row['evaluate_s']} |")


if __name__ == "__main__":
    main()
