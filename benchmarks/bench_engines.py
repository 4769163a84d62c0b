"""`seglab predict` on the local engine against `--engine ray`, side by side.

Each way runs as its own `seglab predict` process over the same images, in alternating rounds;
prints one JSON line per way and round (wall seconds of the whole command, images/s, and the
stages predictions.json reports), then one line of medians. The Ray ways start a local Ray
instance each time: its start and the actors' model loads are in the wall time, as a user
would see them.

  python benchmarks/bench_engines.py --run runs/pets-tta --images ../shared/data/oxford-pets/images
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit

WAYS = {
    "local": [],
    "ray, 1 actor x 2 CPUs": ["--engine", "ray", "--actors", "1"],
    "ray, 2 actors x 1 CPU": ["--engine", "ray", "--actors", "2", "--cpus-per-actor", "1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run or export folder")
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    walls = {way: [] for way in WAYS}
    for round_ in range(args.rounds):
        for way, extra in WAYS.items():
            with tempfile.TemporaryDirectory() as out:
                began = time.perf_counter()
                subprocess.run([sys.executable, "-m", "seglab", "predict", args.run, args.images, "--out", out,
                                "--batch-size", str(args.batch_size), *extra], check=True, capture_output=True)
                wall = time.perf_counter() - began
                summary = json.loads((Path(out) / "predictions.json").read_text())
            walls[way].append(wall)
            emit({"way": way, "round": round_, "images": summary["predicted"], "wall_s": round(wall, 2),
                  "images_per_s": round(summary["predicted"] / wall, 1), "seconds": summary["seconds"]})
    emit({"median_wall_s": {way: round(statistics.median(w), 2) for way, w in walls.items()},
          "ratio_to_local": {way: round(statistics.median(w) / statistics.median(walls["local"]), 2)
                             for way, w in walls.items()}})


if __name__ == "__main__":
    main()
