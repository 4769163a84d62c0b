"""ONNX Runtime speed of an exported model with and without seglab's ONNX-level rewrites.

The model is exported once (float32, dynamic size, the sub-pixel form where it is free, as
`seglab export` does); "plain" is the file tf2onnx wrote, "rewritten" the same file after
`static_transposed_crops` and `split_concat_conv` (seglab.deploy.graph_rewrites), and "one_session"
the rewritten file on one session where seglab's ONNX predictor runs a batch with transposed
convolutions as two halves (seglab.inference.runtimes.OnnxPredictor). All run in this one process,
alternated round by round so the machine's drift hits each; each round times `--runs` calls on
one batch after a warm-up call. Prints a JSON line per round and variant, then the medians and
their ratios.

  python benchmarks/bench_graph_rewrites.py --model mobilenet_unet --rounds 10
  python benchmarks/bench_graph_rewrites.py --model pix2pix_unet --size 256 --batch 8
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from json_line import emit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_unet")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="timed calls per round and variant")
    args = parser.parse_args()

    import keras
    import numpy as np

    from seglab.deploy.deployable import deployable, stride
    from seglab.deploy.graph_rewrites import split_concat_conv, static_transposed_crops
    from seglab.inference.runtimes import OnnxPredictor
    from seglab.models import build_model, model_spec

    keras.utils.set_random_seed(0)
    options = model_spec(args.model).encoder_options(weights="none")  # speed needs no download
    model = build_model(args.model, args.classes, args.size, **options)
    graph, _ = deployable(model, subpixel="free")
    folder = Path(tempfile.mkdtemp(prefix="seglab-rewrites-"))
    try:
        plain, rewritten = folder / "plain.onnx", folder / "rewritten.onnx"
        graph.export(str(plain), format="onnx", verbose=False)
        shutil.copy(plain, rewritten)
        counts = {"static_crops": static_transposed_crops(rewritten, stride(model)),
                  "concat_splits": split_concat_conv(rewritten)}
        predictors = {name: OnnxPredictor(path, None, args.size, "logits")
                      for name, path in (("plain", plain), ("rewritten", rewritten), ("one_session", rewritten))}
        predictors["one_session"].halves = None  # the whole batch on the session with every core
        images = np.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32)
        np.testing.assert_allclose(predictors["rewritten"](images), predictors["plain"](images), rtol=1e-4, atol=1e-4)
        speeds = {name: [] for name in predictors}
        for round_ in range(args.rounds):
            for name, predict in predictors.items():
                predict(images)  # warm-up: caches, thread pool
                began = time.perf_counter()
                for _ in range(args.runs):
                    predict(images)
                speeds[name].append(args.runs * args.batch / (time.perf_counter() - began))
                emit({"round": round_, "graph": name, "img_s": round(speeds[name][-1], 2)}, "float32")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    emit({"summary": args.model, "size": args.size, "batch": args.batch, "rounds": args.rounds, **counts,
          "plain_img_s": round(medians["plain"], 2), "rewritten_img_s": round(medians["rewritten"], 2),
          "one_session_img_s": round(medians["one_session"], 2),
          "rewritten_over_plain": round(medians["rewritten"] / medians["plain"], 3),
          "halves_over_one_session": round(medians["rewritten"] / medians["one_session"], 3)}, "float32")


if __name__ == "__main__":
    main()
