"""Sliding-window prediction of one very large image: time and peak resident memory.

Writes a WIDTH x HEIGHT RGB JPEG (a smooth pattern with shapes, so it compresses like a photo),
then runs `seglab predict RUN big.jpg --tile N` in a fresh process under GNU time (`/usr/bin/time`,
Debian's `time` package), which reports the process's peak resident set size. Prints one JSON line.
Without --run it first trains a small 3-class U-Net on the synthetic data for 1 epoch at the
tile size: memory depends on the image and the tile, hardly on the model.

  python benchmarks/bench_tiles.py                      # 10,000 x 10,000, --tile 256
  python benchmarks/bench_tiles.py --run runs/camvid --size 4000 --tta flip
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

import numpy as np
from json_line import emit
from PIL import Image


def big_image(path: Path, height: int, width: int) -> None:
    """A photo-like JPEG written a band of rows at a time (the array never exists whole here)."""
    Image.MAX_IMAGE_PIXELS = None
    canvas = Image.new("RGB", (width, height))
    x = np.arange(width, dtype=np.float32)
    for top in range(0, height, 1000):
        y = np.arange(top, min(top + 1000, height), dtype=np.float32)[:, None]
        band = np.stack([127 + 100 * np.sin(x / 97 + y / 131), 127 + 100 * np.cos(x / 53 - y / 71),
                         127 + 100 * np.sin((x + y) / 211)], axis=-1)
        band[((x // 400 + y // 400) % 3 == 0)] *= 0.3  # darker squares: something to segment
        canvas.paste(Image.fromarray(band.clip(0, 255).astype(np.uint8)), (0, top))
    canvas.save(path, quality=90)


def seglab(*args: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([*wrapper, sys.executable, "-m", "seglab", *args], capture_output=True, text=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="A run folder (default: train a small U-Net first).")
    parser.add_argument("--size", type=int, default=10_000, help="Image side in pixels.")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tta", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run
        if run is None:
            run = str(tmp / "run")
            trained = seglab("train", "synthetic", "--out", run, "--model", "unet", "--size", str(args.tile),
                             "--option", "filters=8,16,32,64", "--epochs", "1", "--batch-size", "8", "--previews", "1")
            if trained.returncode:
                sys.exit(trained.stdout[-2000:] + trained.stderr[-2000:])
        image = tmp / "big.jpg"
        big_image(image, args.size, args.size)
        command = ["predict", run, str(image), "--out", str(tmp / "out"), "--tile", str(args.tile),
                   "--overlap", str(args.overlap), "--batch-size", str(args.batch_size)]
        if args.tta:
            command += ["--tta", args.tta]
        began = time.perf_counter()
        rss = tmp / "peak_kib"
        result = seglab(*command, wrapper=("/usr/bin/time", "-f", "%M", "-o", str(rss)))
        seconds = time.perf_counter() - began
        if result.returncode:
            sys.exit(result.stdout[-2000:] + result.stderr[-2000:])
        peak_kib = int(rss.read_text().split()[-1])
        summary = json.loads((tmp / "out" / "predictions.json").read_text())
        mask = Image.open(tmp / "out" / summary["images"][0]["mask"])
        emit({"bench": "tiles", "image": f"{args.size}x{args.size}", "tile": args.tile, "overlap": args.overlap,
              "tta": args.tta, "batch_size": args.batch_size, "mask": f"{mask.width}x{mask.height}",
              "seconds": round(seconds, 1), "model_seconds": summary["seconds"].get("model"),
              "peak_rss_gb": round(peak_kib / 2**20, 3), "run": run if args.run else "small unet (trained here)"})


if __name__ == "__main__":
    main()
