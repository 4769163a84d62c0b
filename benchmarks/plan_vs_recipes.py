"""A planned run against the best hand-tuned recipe in docs/benchmarks.md (issue 38's goal: >= 98%
of its validation mIoU within the same training time, on the same machine).

Runs `seglab train DATA --budget B` with no other option in a fresh process (timed whole), then
scores its best epoch on the validation split twice: the way the hand recipe was scored (`--score`,
`seglab evaluate` options) and the way the plan says to (config.yaml's plan.inference). Prints one
JSON line with the machine, the plan chosen, both scores, the hand recipe's mIoU and the ratio.

  python benchmarks/plan_vs_recipes.py --data oxford-pets --view binary --budget 269 --hand 0.888
  python benchmarks/plan_vs_recipes.py --data camvid --view road --budget 336 --hand 0.973

The datasets are read from ../shared/data (or $SEGLAB_SHARED/data); the plan finds the MobileNetV2
weights in ../shared/weights, a weights/ folder above the dataset.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGLAB_SHARED", ROOT.parent / "shared"))


def seglab(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "seglab", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise SystemExit(f"seglab {' '.join(map(str, args))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def flags(options: dict) -> list[str]:
    out = []
    for key, value in options.items():
        out.append("--" + key.replace("_", "-"))
        if value is not True:
            out.append(str(value))
    return out


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of ../shared/data")
    parser.add_argument("--view", default=None)
    parser.add_argument("--budget", type=float, required=True, help="seconds: the hand recipe's training time")
    parser.add_argument("--hand", type=float, required=True, help="the hand recipe's validation mIoU in the docs")
    parser.add_argument("--score", default="", help="seglab evaluate options the hand recipe was scored with")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="plan-vs-recipe-"))
    run = out / f"{args.data}-{args.view or 'all'}"
    data = SHARED / "data" / args.data
    started = time.perf_counter()
    seglab("train", data, "--out", run, "--budget", f"{args.budget:g}s", *(["--view", args.view] if args.view else []))
    took = time.perf_counter() - started
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    recipe, plan = config["recipe"], config["plan"]
    state = json.loads((run / "state.json").read_text())
    scores = {}
    for name, options in (("hand_scoring", args.score.split()), ("plan_scoring", flags(plan["inference"]["options"]))):
        printed = seglab("evaluate", run, "--out", out / f"eval-{name}", "--json", *options).stdout
        scores[name] = json.loads(printed.strip().splitlines()[-1])["miou"]
    emit({
        "data": args.data, "view": args.view,
        "budget_s": args.budget, "train_command_s": round(took, 1), "budget_used": round(took / args.budget, 3),
        "stopped_at_budget": state.get("budget_stop"),
        "plan": {k: recipe[k] for k in ("model", "size", "crop", "scale", "batch_size", "epochs", "learning_rate", "loss",
                                        "class_weights")} | {"encoder": recipe["model_options"].get("encoder")},
        "hand_score_options": args.score, "plan_score_options": plan["inference"]["options"],
        "miou_hand_scoring": round(scores["hand_scoring"], 4), "miou_plan_scoring": round(scores["plan_scoring"], 4),
        "hand_recipe_miou": args.hand, "ratio": round(scores["hand_scoring"] / args.hand, 4),
        "run": str(run)}, config["setup"]["precision"])


if __name__ == "__main__":
    main()
