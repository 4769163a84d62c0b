"""Inference speed on every runtime vs the tutorials' Keras models, alternated in one run.

For each model, each round runs `../shared/reference/bench_seed.py` (the tutorial's model,
`predict_on_batch`), then `seglab bench predict --runtime R` for Keras, ONNX Runtime (float32 and
int8) and LiteRT, each in a fresh process, and measures this machine's float32 matmul peak (numpy,
all cores) in between. Prints every measurement as a JSON line, then one summary line per model:
medians, ratios to the tutorial's images/s, and achieved GFLOP/s as a share of the peak.

  python benchmarks/bench_runtimes.py --rounds 3
  python benchmarks/bench_runtimes.py --models unet --rounds 5 --runtimes onnx onnx_int8
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from bench_models import CONFIGS, SHARED, run
from json_line import emit

RUNTIMES = {"keras": [], "onnx": ["--runtime", "onnx"], "onnx_int8": ["--runtime", "onnx", "--quantize", "int8"],
            "litert": ["--runtime", "litert"]}


def matmul_peak_gflop_s(n: int = 4096, repeats: int = 5) -> float:
    """The best of `repeats` float32 n x n matmuls, in GFLOP/s (2 n^3 per product)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED / "data" / "oxford-pets"))
    parser.add_argument("--models", nargs="+", default=["unet", "mobilenet_unet"], choices=list(CONFIGS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    args = parser.parse_args()
    if not (SHARED / "reference" / "bench_seed.py").is_file():
        sys.exit(f"reference benchmark not found under {SHARED}: set SEGLAB_SHARED")

    common = ["--model", "", "--size", str(args.size), "--batch", str(args.batch), "--data", args.data]
    for model in args.models:
        common[1] = model
        weights_file = CONFIGS[model][3]
        weights = ["--weights", str(SHARED / "weights" / weights_file)] if weights_file else []
        reference = [sys.executable, str(SHARED / "reference" / "bench_seed.py"), *common, "--steps", "2", *weights]
        ours = {name: [sys.executable, "-m", "seglab", "bench", "predict", *common, *weights, *RUNTIMES[name]]
                for name in args.runtimes}
        results = {"seed": [], **{name: [] for name in ours}, "peak": []}
        for _ in range(args.rounds):
            for name, command in (("seed", reference), *ours.items()):
                results[name].append(run(command))
                emit({"impl": name, **results[name][-1]})
            results["peak"].append(matmul_peak_gflop_s())
            emit({"matmul_peak_gflop_s": round(results["peak"][-1], 1)})
        seed = statistics.median(r["infer_img_s"] for r in results["seed"])
        peak = statistics.median(results["peak"])
        summary = {"summary": model, "size": args.size, "batch": args.batch, "rounds": args.rounds,
                   "seed_infer_img_s": seed, "matmul_peak_gflop_s": round(peak, 1)}
        for name in ours:
            img_s = statistics.median(r["infer_img_s"] for r in results[name])
            gflop_s = statistics.median(r["infer_gflop_s"] for r in results[name])
            summary |= {f"{name}_img_s": img_s, f"{name}_vs_seed": round(img_s / seed, 3),
                        f"{name}_share_of_peak": round(gflop_s / peak, 3)}
        emit(summary)  # each runtime's precision is in its name (and in its own lines)


if __name__ == "__main__":
    main()
