"""What a `seglab train` run spends writing each epoch, and the model file against `model.save`.

Two JSON lines, for one recipe on this machine:
- `writing_thread`: trains the recipe with `seglab train DATA OPTIONS` in this process, with the
  per-epoch writer's parts wrapped in `time.thread_time` (CPU seconds of the thread that runs
  them: the checkpoint's writing thread, beside the next epoch). Each part's mean over the epochs
  from the third on; the second epoch also learns the model file's layout once
  (`runs.saving.SnapshotWriter`) and is given alone, as `second_epoch_total_s`. `snapshot_s` is
  the copy of the variables on the training thread at each epoch's end. Work the writer hands to
  TensorFlow's own threads (the preview samples' prediction) is not in the writer's thread's CPU.
- `model_file`: loads that run's last.keras and writes it `--rounds` times each way, taking turns:
  Keras's `model.save` and the writer's file from a snapshot (after the writer's first two files,
  which are Keras's own and the layout's learning). Medians of the wall seconds, and whether the
  two files hold the same bytes (their metadata.json differs only in the time it was saved).

  python benchmarks/bench_writing.py --data oxford-pets --epochs 6 -- --model mobilenet_unet \\
      --weights ../shared/weights/mobilenet_v2_1.0_notop.weights.h5 --size 128 --batch-size 16
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

from json_line import emit, run_precision

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))


class ThreadClock:
    """CPU seconds of the calling thread spent in wrapped functions, per epoch written."""

    def __init__(self):
        self.epochs: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.epoch = 0  # the epoch being written: set by the writer's whole write, which holds the parts
        self.snapshots: list[float] = []

    @staticmethod
    def _timed(owner, name: str, record) -> None:
        """Replace `owner.name` by a version that passes the thread CPU seconds of each call to `record`."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            began = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                record(time.thread_time() - began)

        setattr(owner, name, timed)

    def wrap(self, owner, name: str, part: str) -> None:
        """Time a part of the writer's epoch."""
        def add(seconds: float) -> None:
            self.epochs[self.epoch][part] += seconds  # the epoch is known by the time the part returns

        self._timed(owner, name, add)

    def wrap_epochs(self, owner) -> None:
        """Time the writer's whole epoch (`_write_epoch_files(checkpoint, row, ...)`), and learn its epoch first."""
        original = owner._write_epoch_files

        def write(checkpoint, row, *rest):
            self.epoch = row["epoch"]
            return original(checkpoint, row, *rest)

        owner._write_epoch_files = functools.wraps(original)(write)
        self.wrap(owner, "_write_epoch_files", "total_s")

    def wrap_snapshot(self, module) -> None:
        """Time the snapshot each epoch's end takes on the training thread."""
        self._timed(module, "snapshot", self.snapshots.append)


def train_with_clock(out: Path, data: str, epochs: int, options: list[str]) -> ThreadClock:
    """`seglab train` in this process, the writer's parts timed."""
    from seglab.core.quiet import load_tensorflow

    load_tensorflow()
    import keras
    import typer

    import seglab.callbacks.checkpoint as checkpoint
    from seglab.cli import app
    from seglab.report.curves import Curves
    from seglab.runs import Run
    from seglab.runs.samples import SampleLog

    clock = ThreadClock()
    clock.wrap_epochs(checkpoint.RunCheckpoint)
    clock.wrap(checkpoint.ShadowModel, "load", "load_snapshot_s")
    clock.wrap(keras.Model, "predict_on_batch", "predict_samples_s")  # fit never calls it; the writer does
    clock.wrap(Run, "write_history", "history_s")
    clock.wrap(Curves, "draw", "curves_s")
    clock.wrap(SampleLog, "add", "sample_log_s")
    clock.wrap(checkpoint, "mosaic", "mosaic_s")
    clock.wrap(checkpoint.ShadowModel, "save", "model_file_s")
    clock.wrap_snapshot(checkpoint)
    command = typer.main.get_command(app)
    command.main(["train", data, "--out", str(out), "--epochs", str(epochs), *options],
                 standalone_mode=False)
    return clock


def same_bytes(first: Path, second: Path) -> bool:
    """Whether two `.keras` files hold the same members, metadata.json's save time aside."""
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        if a.namelist() != b.namelist():
            return False
        for name in a.namelist():
            left, right = a.read(name), b.read(name)
            if name == "metadata.json":
                left, right = ({k: v for k, v in json.loads(m).items() if k != "date_saved"} for m in (left, right))
            if left != right:
                return False
    return True


def model_file_times(last: Path, rounds: int, folder: Path) -> dict:
    """`model.save` against the writer's file for the model in `last`, taking turns."""
    from seglab.runs.saving import SnapshotWriter, load_model, snapshot

    model = load_model(last)
    writer = SnapshotWriter()
    for warm in ("first.keras", "second.keras"):  # Keras's own file, then the layout's learning
        writer.write(model, snapshot(model), folder / warm)
    keras_s, writer_s, snapshot_s = [], [], []
    for _ in range(rounds):
        began = time.perf_counter()
        model.save(folder / "keras.keras")
        keras_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        arrays = snapshot(model)
        snapshot_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        writer.write(model, arrays, folder / "writer.keras")
        writer_s.append(time.perf_counter() - began)
    return {"model_save_s": round(statistics.median(keras_s), 3), "writer_s": round(statistics.median(writer_s), 3),
            "snapshot_s": round(statistics.median(snapshot_s), 3),
            "speedup": round(statistics.median(keras_s) / statistics.median(writer_s), 1),
            "from_template": bool(writer.layout), "file_mb": round((folder / "keras.keras").stat().st_size / 1e6, 1),
            "variables": len(arrays), "same_bytes": same_bytes(folder / "keras.keras", folder / "writer.keras"),
            "rounds": rounds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", help="a folder under ../shared/data, or synthetic")
    parser.add_argument("--epochs", type=int, default=6, help="of the run; parts are averaged from the third")
    parser.add_argument("--rounds", type=int, default=5, help="model files written each way")
    parser.add_argument("train", nargs="*", help="`seglab train` options, after --")
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: the first two epochs' files are Keras's own and the layout's learning")
    data = args.data if args.data == "synthetic" else str(SHARED / "data" / args.data)
    with tempfile.TemporaryDirectory(prefix="seglab-bench-writing-") as tmp:
        run = Path(tmp) / "run"
        clock = train_with_clock(run, data, args.epochs, args.train)
        from seglab.runs import Run

        recipe = Run(run).config.recipe
        precision = run_precision(run)
        about = {"data": args.data, "model": recipe.model, "size": recipe.size, "batch_size": recipe.batch_size,
                 "options": " ".join(args.train), "epochs": args.epochs}
        later = [clock.epochs[epoch] for epoch in range(3, args.epochs + 1)]
        parts = sorted({part for epoch in later for part in epoch})
        emit({"part": "writing_thread", **about,
              **{part: round(statistics.mean(e[part] for e in later), 3) for part in parts},
              "second_epoch_total_s": round(clock.epochs[2]["total_s"], 3),
              "snapshot_s": round(statistics.mean(clock.snapshots[2:]), 3),
              "epoch_s": statistics.median(row["seconds"] for row in Run(run).history()[1:])}, precision)
        emit({"part": "model_file", **about, **model_file_times(Run(run).last_path, args.rounds, Path(tmp))}, precision)


if __name__ == "__main__":
    main()
