"""Training-step time with seglab's FusedBatchNormalization vs Keras 3's own BatchNormalization code.

Both variants are the same model, weights and batch; the only difference is whether the
BatchNorm layers call TensorFlow's fused kernel or fall back to Keras's generic ops
(seglab.models.batch_norm). Each round runs each variant in its own process (alternated, so the
machine's drift hits both), times `--steps` training steps after a warm-up, and prints a JSON line
with wall seconds and process CPU seconds per step; CPU seconds are steadier on a shared VM whose
wall clock comes in slices. The last line has the ratios of the medians.

  python benchmarks/bench_batch_norm.py --model deeplabv3plus --size 320 --batch 16 --rounds 3 \\
      --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from json_line import emit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def child(args) -> None:
    import numpy as np
    import tensorflow as tf

    from seglab.commands.compiled import compiled_model
    from seglab.engines.distribute import Cluster
    from seglab.models.batch_norm import FusedBatchNormalization
    from seglab.models.inputs import ImageInput
    from seglab.runs.config import TrainConfig, resolve

    if args.child == "keras":
        FusedBatchNormalization._fusable = lambda self, inputs, mask: False
    config = resolve(TrainConfig.of(model=args.model, size=args.size, batch_size=args.batch, weights=args.weights,
                                 precision=args.precision), args.classes)
    model = compiled_model(config, args.classes, 10, Cluster("none"), ImageInput(3))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.size, args.size, 3)).astype("float32")
    masks = rng.integers(0, args.classes, (args.batch, args.size, args.size)).astype("int32")
    stream = tf.data.Dataset.from_tensors((images, masks)).repeat()
    model.fit(stream, steps_per_epoch=2, epochs=1, verbose=0)  # tracing and first-call set-up
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0)
    emit({"batch_norm": args.child, "model": args.model, "size": args.size, "batch": args.batch,
          "step_s": round((time.perf_counter() - wall) / args.steps, 3),
          "cpu_s_per_step": round((time.process_time() - cpu) / args.steps, 3)}, config.setup.precision)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--weights", default=None, help="encoder weights (default: the model's recipe)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per round (15 s or more is steadier)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["keras", "fused"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    forwarded = [f"--{k}={v}" for k, v in vars(args).items() if k not in ("rounds", "child") and v is not None]
    results = {"keras": [], "fused": []}
    for _ in range(args.rounds):
        for variant in results:
            out = subprocess.run([sys.executable, __file__, *forwarded, f"--child={variant}"], check=True,
                                 capture_output=True, text=True).stdout
            line = out.strip().splitlines()[-1]
            print(line, flush=True)  # the child's own line, machine and precision in it
            results[variant].append(json.loads(line))
    median = {v: {k: statistics.median(r[k] for r in rows) for k in ("step_s", "cpu_s_per_step")}
              for v, rows in results.items()}
    emit({"summary": args.model, "size": args.size, "batch": args.batch, "rounds": args.rounds, "median": median,
          "keras_over_fused_step_s": round(median["keras"]["step_s"] / median["fused"]["step_s"], 2),
          "keras_over_fused_cpu_s": round(median["keras"]["cpu_s_per_step"] / median["fused"]["cpu_s_per_step"], 2)},
         results["fused"][0]["precision"])


if __name__ == "__main__":
    main()
