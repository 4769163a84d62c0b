"""`seglab tune` against the best hand-tuned recipe in docs/benchmarks.md (issue 39's goal: with
6x the hand recipe's training time, the best trial beats it on validation, scored the same way).

Runs `seglab tune DATA --budget 6xB` (default space and sampler) in a fresh process, timed whole,
then scores two run folders the way the hand recipe was scored (`--score`, `seglab evaluate`
options): the study's best trial (chosen by its validation mIoU at the training size, as the
study ranks them) and trial 0 (the plan). Prints one JSON line with the machine, the trials, the
winning recipe, both scores, the hand recipe's mIoU and the ratio.

  python benchmarks/tune_vs_recipes.py --data oxford-pets --hand-seconds 500 --hand 0.784 \\
      --score "--full-res --tta flip+scales=0.5,0.75,1,1.25,1.5,1.75"

The datasets are read from ../shared/data (or $SEGLAB_SHARED/data); the plan finds the MobileNetV2
weights in ../shared/weights, a weights/ folder above the dataset.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_line import emit  # noqa: E402
from plan_vs_recipes import ROOT, SHARED, seglab  # noqa: E402  (the same way of running seglab)

RECIPE_KEYS = ("model", "size", "crop", "scale", "batch_size", "epochs", "learning_rate", "loss", "class_weights")


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import optuna
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of ../shared/data")
    parser.add_argument("--view", default=None)
    parser.add_argument("--hand-seconds", type=float, required=True, help="the hand recipe's training time")
    parser.add_argument("--times", type=float, default=6.0, help="the budget, in hand recipe's training times")
    parser.add_argument("--hand", type=float, required=True, help="the hand recipe's validation mIoU in the docs")
    parser.add_argument("--score", default="", help="seglab evaluate options the hand recipe was scored with")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="tune-vs-recipe-"))
    study_dir = out / f"{args.data}-{args.view or 'all'}"
    budget = args.hand_seconds * args.times
    started = time.perf_counter()
    seglab("tune", SHARED / "data" / args.data, "--out", study_dir, "--budget", f"{budget:g}s",
           *(["--view", args.view] if args.view else []))
    took = time.perf_counter() - started

    names = optuna.get_all_study_names(f"sqlite:///{study_dir / 'study.db'}")
    study = optuna.load_study(study_name=names[0], storage=f"sqlite:///{study_dir / 'study.db'}")
    states = [t.state.name.lower() for t in study.trials]
    best = study.best_trial
    scored = {}
    for label, trial in (("best", best), ("plan", study.trials[0])):
        run = Path(trial.user_attrs["run"])
        printed = seglab("evaluate", run, "--out", out / f"eval-{label}", "--json", *args.score.split()).stdout
        scored[label] = json.loads(printed.strip().splitlines()[-1])["miou"]
    config = yaml.safe_load((Path(best.user_attrs["run"]) / "config.yaml").read_text())
    recipe = config["recipe"]
    emit({
        "data": args.data, "view": args.view,
        "budget_s": budget, "tune_command_s": round(took, 1),
        "trials": {s: states.count(s) for s in sorted(set(states))},
        "seconds_per_trial": [t.user_attrs.get("seconds") for t in study.trials],
        "best_trial": best.number, "best_val_miou_at_training_size": round(best.value, 4),
        "best_recipe": {k: recipe[k] for k in RECIPE_KEYS} | {"encoder": recipe["model_options"].get("encoder"),
                                                              "augment": recipe["augment"]},
        "score_options": args.score, "miou_best": round(scored["best"], 4), "miou_plan_trial": round(scored["plan"], 4),
        "hand_recipe_miou": args.hand, "ratio": round(scored["best"] / args.hand, 4), "study": str(study_dir)},
        config["setup"]["precision"])


if __name__ == "__main__":
    main()
