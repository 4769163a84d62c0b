"""Trials/hour of `seglab tune` with one worker against two on the same machine (issue 39: say how
trials/hour changes with two workers on this machine's cores, and why).

Every trial runs one fixed recipe (a --space file fixing every field, pruning never fires on equal
trials), so the arms differ only in how many workers share the cores. Arms alternate (1, 2, 1, 2,
...), each a fresh study with the same --budget per worker. Throughput is counted over the
window from the first trial's start to the last trial's end, so the first worker's planning is
left out. Prints one JSON line per arm and a summary line with the medians and their ratio.

  python benchmarks/tune_workers.py --data oxford-pets --budget 240 --repeats 2

The dataset is read from ../shared/data (or $SEGLAB_SHARED/data); 'synthetic' needs nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_line import emit  # noqa: E402
from plan_vs_recipes import ROOT, SHARED  # noqa: E402

FIXED = """\
model: deeplabv3plus/mobilenet_v2
size: {size}
batch_size: 16
epochs: {epochs}
learning_rate: 0.001
loss: ce+dice
class_weights: none
augment: {{zoom: null, brightness: null, contrast: null}}
"""


def run_arm(workers: int, data: str, budget: float, space: Path, out: Path) -> dict:
    """`workers` seglab tune processes on one new study; the trials it finished and their window."""
    import optuna

    command = [sys.executable, "-m", "seglab", "tune", data, "--budget", f"{budget:g}s", "--space", str(space),
               "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(workers)]
    for p in procs:
        printed = p.communicate()[0]
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{printed[-3000:]}")
    url = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url)
    done = [t for t in study.trials if t.state.is_finished() and t.state.name in ("COMPLETE", "PRUNED")]
    if not done:
        raise SystemExit(f"no trial finished in {budget:g} s; give a longer --budget")
    window = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    epochs = sum(t.user_attrs.get("epochs") or 0 for t in done)
    seconds = [t.user_attrs["seconds"] for t in done]
    return {"workers": workers, "trials": len(done), "window_s": round(window, 1),
            "trials_per_hour": round(len(done) * 3600 / window, 2), "epochs_per_hour": round(epochs * 3600 / window, 1),
            "seconds_per_trial_median": statistics.median(seconds),
            "val_miou_median": round(statistics.median(t.value for t in done if t.value is not None), 4)}


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from seglab.core.precision import resolve_precision

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="oxford-pets", help="a folder of ../shared/data, or synthetic")
    parser.add_argument("--budget", type=float, default=240, help="seconds each worker searches for")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of arms (1 worker, 2 workers), alternated")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    data = args.data if args.data == "synthetic" else str(SHARED / "data" / args.data)
    out = args.out or Path(tempfile.mkdtemp(prefix="tune-workers-"))
    out.mkdir(parents=True, exist_ok=True)
    space = out / "fixed.yaml"
    space.write_text(FIXED.format(size=args.size, epochs=args.epochs))
    precision = resolve_precision("auto")  # what each trial's `seglab train` resolves to
    setting = {"data": args.data, "budget_s": args.budget,
               "recipe": f"deeplabv3plus/mobilenet_v2 {args.size} px, batch 16, {args.epochs} epochs"}
    arms: dict[int, list[dict]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for workers in (1, 2):
            arm = run_arm(workers, data, args.budget, space, out / f"r{repeat}-w{workers}")
            arms[workers].append(arm)
            emit({**setting, "repeat": repeat, **arm}, precision)
    median = {w: statistics.median(a["trials_per_hour"] for a in runs) for w, runs in arms.items()}
    per_trial = {w: statistics.median(a["seconds_per_trial_median"] for a in runs) for w, runs in arms.items()}
    emit({**setting, "summary": True, "trials_per_hour_1_worker": median[1],
          "trials_per_hour_2_workers": median[2], "ratio_2_to_1": round(median[2] / median[1], 3),
          "seconds_per_trial_1_worker": per_trial[1], "seconds_per_trial_2_workers": per_trial[2]}, precision)


if __name__ == "__main__":
    main()
