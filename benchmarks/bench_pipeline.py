"""Input-pipeline throughput: seglab's tf.data pipeline vs the tutorials' reference pipeline.

Prints one JSON line per measurement. The two pipelines are alternated in one run, so their ratio
is meaningful on a noisy machine; absolute images/s are not.

  python benchmarks/bench_pipeline.py --data ../shared/data/oxford-pets --sizes 128 256 --rounds 3

seglab variants: `plain` (decode, correct nearest-neighbour masks, no augmentation), `augment`
(flip, scale-and-crop, brightness/contrast), `cached` (augment on decoded samples cached in memory,
from the second epoch on). The reference resizes masks bilinearly and does no augmentation.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from json_line import emit  # noqa: E402

from seglab.data import open_source  # noqa: E402
from seglab.data.pipeline import make_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def images_per_second(ds, epochs: int = 2) -> float:
    """Best of `epochs` full passes, after one warm-up pass (tracing, thread pools, cache fill)."""
    for _ in ds:
        pass
    best = 0.0
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for images, _masks in ds:
            count += int(images.shape[0])
        best = max(best, count / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))
    parser.add_argument("--data", default=str(shared / "data" / "oxford-pets"))
    parser.add_argument("--reference", default=str(shared / "reference"), help="folder holding seed_pipeline.py")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of reference and seglab")
    parser.add_argument("--variants", nargs="+", default=["plain", "augment", "cached"], help="seglab variants to time")
    args = parser.parse_args()

    sys.path.insert(0, args.reference)
    import seed_pipeline

    source = open_source(args.data, "oxford-pets", val_fraction=0.0)
    start = time.perf_counter()
    make_dataset(source, "train", size=args.sizes[0], batch_size=args.batch)  # validation pass, timed once
    validate_s = time.perf_counter() - start
    emit({"bench": "pipeline", "impl": "seglab", "what": "validate", "pairs": len(source.pairs),
          "seconds": round(validate_s, 2)})

    for size in args.sizes:
        pipelines = {
            "reference": lambda: seed_pipeline.dataset(args.data, size=size, batch_size=args.batch),
            "plain": lambda: make_dataset(source, "train", size=size, batch_size=args.batch, validate_first=False),
            "augment": lambda: make_dataset(source, "train", size=size, batch_size=args.batch, augment=True,
                                            validate_first=False),
            "cached": lambda: make_dataset(source, "train", size=size, batch_size=args.batch, augment=True, cache=True,
                                           validate_first=False),
        }
        pipelines = {k: v for k, v in pipelines.items() if k == "reference" or k in args.variants}
        results = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            for name, build in pipelines.items():
                results[name].append(images_per_second(build()))
        ref = statistics.median(results["reference"])
        for name, values in results.items():
            med = statistics.median(values)
            emit({"bench": "pipeline", "impl": "seed" if name == "reference" else "seglab", "variant": name,
                  "size": size, "batch": args.batch, "img_s": round(med, 1), "runs": [round(v, 1) for v in values],
                  "ratio_vs_reference": round(med / ref, 3), "tensorflow": tf.__version__})


if __name__ == "__main__":
    main()
