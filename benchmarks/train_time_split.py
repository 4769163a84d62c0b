"""Where a `seglab train` epoch's time goes: the input pipeline, the training steps, validation and
the per-epoch writing, for one recipe on this machine.

Trains the recipe with `seglab train DATA OPTIONS --epochs E` in a fresh process (its epochs'
seconds, history.csv: everything an epoch does), then, in this process, rebuilds the same model
and datasets from that run's config.yaml (`training.prepare`, `training.fit_datasets`) and times
each part of an epoch alone:
- `pipeline_first_epoch_s`, `pipeline_epoch_s`: the training stream alone, one epoch of batches:
  the first pass reads, decodes and caches; later passes augment the cached samples;
- `steps_epoch_s`: one epoch of training steps on an epoch of batches held in memory (no pipeline);
- `fit_epoch_s`: one epoch of `fit` over the training stream (steps and pipeline together, no
  validation, no callbacks);
- `validation_s`: `evaluate` over the validation set.
Each after a warm-up pass, the median of `--repeats`. Derived: `pipeline_wait_s` = fit - steps
(what the steps lost to the pipeline: waiting for batches, or cores shared with it) and
`writing_and_callbacks_s` = the run's later epochs - fit - validation (checkpoints, previews and
curves, written in a thread beside the next epoch, and Keras's own bookkeeping).

  python benchmarks/train_time_split.py --data oxford-pets -- --model mobilenet_unet \\
      --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5 --size 128 --batch-size 16
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))


def timed(work, repeats: int) -> float:
    """Median seconds of `work()` over `repeats` calls, after one untimed call (tracing, caches)."""
    work()
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def parts(run: Path, repeats: int) -> dict:
    """The epoch's parts, each timed alone, for the recipe of the run folder `run`."""
    from seglab.commands.training import fit_datasets, prepare
    from seglab.engines.distribute import Cluster
    from seglab.engines.jit import compile_steps
    from seglab.runs import Run

    cluster = Cluster("none")
    source, config, model, _ = prepare(Run(run).config, cluster, quiet=True)
    train_ds, val_ds = fit_datasets(source, config, model, cluster)
    batch = config.recipe.batch_size
    model.jit_compile = config.setup.jit  # as the run trained: config.yaml says whether XLA compiled its steps
    if config.setup.jit:
        compile_steps(model, train_ds, val_ds, batch, len(source.split("val")))
    steps = math.ceil(len(source.split("train")) / batch)
    batches = iter(train_ds)

    def pipeline_epoch():
        for _ in range(steps):
            next(batches)

    began = time.perf_counter()
    pipeline_epoch()  # the first pass: reading, decoding, caching
    first = time.perf_counter() - began
    # an epoch of the stream's own batches, kept in memory after their first pass: the steps
    # without the pipeline's work, on batches of the stream's shapes and types (a batch of fixed
    # shape would be traced and run as another function)
    held = train_ds.take(steps).cache().repeat()
    gc.freeze()  # as `seglab train` does around fit: full collections skip the libraries' objects
    try:
        return {"steps_per_epoch": steps, "validation_batches": math.ceil(len(source.split("val")) / batch),
                "pipeline_first_epoch_s": round(first, 2),
                "pipeline_epoch_s": round(timed(pipeline_epoch, repeats), 2),
                "steps_epoch_s": round(timed(lambda: model.fit(held, steps_per_epoch=steps, verbose=0), repeats), 2),
                "fit_epoch_s": round(timed(lambda: model.fit(train_ds, steps_per_epoch=steps, verbose=0), repeats), 2),
                "validation_s": round(timed(lambda: model.evaluate(val_ds, verbose=0), repeats), 2),
                "precision": config.setup.precision, "jit": config.setup.jit}
    finally:
        gc.unfreeze()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="oxford-pets", help="a folder under ../shared/data, or synthetic")
    parser.add_argument("--epochs", type=int, default=4, help="of the `seglab train` run; the first is left out")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("train", nargs="*", help="`seglab train` options, after --")
    args = parser.parse_args()
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2: the first epoch traces the step")
    data = args.data if args.data == "synthetic" else str(SHARED / "data" / args.data)
    with tempfile.TemporaryDirectory(prefix="seglab-time-split-") as tmp:
        run = Path(tmp) / "run"
        command = [sys.executable, "-m", "seglab", "train", data, "--out", str(run), "--epochs", str(args.epochs),
                   *args.train]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if done.returncode:
            sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
        from seglab.runs import Run

        recipe = Run(run).config.recipe
        epochs = [row["seconds"] for row in Run(run).history()]
        measured = parts(run, args.repeats)
    epoch = statistics.median(epochs[1:])
    emit({"data": args.data, "model": recipe.model, "encoder": recipe.model_options.get("encoder"), "size": recipe.size,
          "crop": recipe.crop, "batch_size": recipe.batch_size, "options": " ".join(args.train),
          "seglab_first_epoch_s": round(epochs[0], 2), "seglab_epoch_s": round(epoch, 2), **measured,
          "pipeline_wait_s": round(measured["fit_epoch_s"] - measured["steps_epoch_s"], 2),
          "writing_and_callbacks_s": round(epoch - measured["fit_epoch_s"] - measured["validation_s"], 2)})


if __name__ == "__main__":
    main()
