"""Model speed: seglab's models vs the tutorials' reference models, alternated in one run.

For each model, runs `../shared/reference/bench_seed.py` and `seglab bench all` one after the
other, `--rounds` times, each in a fresh process. Prints every measurement as a JSON line, then one
summary line per model with the medians and the seglab / reference ratios (train and inference
images/s). Ratios measured side by side are what to quote: absolute figures drift on shared machines.

  python benchmarks/bench_models.py --data ../shared/data/oxford-pets --rounds 3
  python benchmarks/bench_models.py --models unet --rounds 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from json_line import emit

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))
# model: (size, batch, timed steps, weights file in ../shared/weights). The large models get
# smaller batches so a round stays around a minute on 2 CPU cores; every model's timed steps
# take 15 s or more there, because a shared VM hands out CPU time in slices of about a second.
CONFIGS = {
    "unet": (128, 32, 10, None),
    "mobilenet_unet": (128, 32, 32, "mobilenet_v2_1.0_notop.weights.h5"),
    "pix2pix_unet": (256, 8, 5, None),
    "fcn8s": (256, 8, 5, "vgg16_notop.weights.h5"),
}


def run(command: list[str]) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def commands(model: str, data: str, size: int, batch: int, steps: int, weights: str | None, jit: bool):
    common = ["--model", model, "--size", str(size), "--batch", str(batch), "--steps", str(steps), "--data", data]
    reference = [sys.executable, str(SHARED / "reference" / "bench_seed.py"), *common]
    ours = [sys.executable, "-m", "seglab", "bench", "all", *common]
    if weights:
        reference += ["--weights", weights]
        ours += ["--weights", weights]
    if jit:
        reference.append("--jit")
        ours.append("--jit")
    return reference, ours


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED / "data" / "oxford-pets"))
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="compile both with XLA")
    args = parser.parse_args()
    if not (SHARED / "reference" / "bench_seed.py").is_file():
        sys.exit(f"reference benchmark not found under {SHARED}: set SEGLAB_SHARED")

    for model in args.models:
        size, batch, steps, weights_file = CONFIGS[model]
        weights = str(SHARED / "weights" / weights_file) if weights_file and (SHARED / "weights" / weights_file).is_file() else None
        reference_cmd, seglab_cmd = commands(model, args.data, size, batch, steps, weights, args.jit)
        results = {"seed": [], "seglab": []}
        for _ in range(args.rounds):
            for impl, command in (("seed", reference_cmd), ("seglab", seglab_cmd)):
                results[impl].append(run(command))
                emit(results[impl][-1])  # seglab bench's own line holds its precision
        summary = {"summary": model, "size": size, "batch": batch, "rounds": args.rounds,
                   "fwd_gflop": results["seglab"][0]["fwd_gflop"]}
        for key in ("train_img_s", "infer_img_s"):
            seed, ours = (statistics.median(r[key] for r in results[impl]) for impl in ("seed", "seglab"))
            summary |= {f"seed_{key}": seed, f"seglab_{key}": ours, f"{key.split('_')[0]}_ratio": round(ours / seed, 3)}
        summary["seglab_peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in results["seglab"])
        summary["seed_peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in results["seed"])
        # the reference sets no precision policy: float32, Keras's default
        emit(summary | {"seglab_precision": results["seglab"][0]["precision"], "seed_precision": "float32"})


if __name__ == "__main__":
    main()
