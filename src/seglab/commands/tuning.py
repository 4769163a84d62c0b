"""`seglab tune`: a search for the best recipe, on Optuna.

The study's first worker plans a recipe for one trial's share of the budget
(`commands.planning`), builds the search space around it (`commands.search_space`), stores
both in the study and queues the plan as trial 0, so a search never ends worse than the plan.
Every trial is an ordinary `seglab train` run folder under OUT/trials/NNNN: with `epochs: auto`
its planner fits the epochs of the trial's own model and size into the trial's share of the
time; after every epoch it reports val mIoU and stops early when the pruner says it falls behind
(`callbacks.pruning`). The budget is this worker's wall clock: a trial is not started when the
time left is less than a trial takes, and a trial running into the end stops at its last epoch
that fits. Workers sharing a storage and study name work on it together
(`commands.study`); rerunning the same command continues the study.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from seglab.callbacks.pruning import TrialPruning
from seglab.commands import study as studies
from seglab.commands.planning import SIZES, Planner, inverse_sqrt_weights, train_command
from seglab.commands.search_space import (
    SearchSpace,
    default_space,
    load_space,
    parse_space,
)
from seglab.commands.training import checked_source, dataset_path, train
from seglab.core.errors import BadArgument, SeglabError, TrainingFailed
from seglab.core.files import write_text
from seglab.report.plan_tables import duration
from seglab.report.tune_html import write_tune_report
from seglab.runs.config import TrainConfig

TRIALS_IN_BUDGET = 6  # a trial's default share of the budget: 1/6, so a search runs at least six full trials
# MedianPruner: few trials (a search of tens) give a noisy percentile, and the median is the most
# robust cut; no pruning before two trials have finished, nor before 30% of a trial's schedule
# (cosine-decayed runs reorder early on). Hyperband needs many trials per bracket to pay.
PRUNE_AFTER_TRIALS, PRUNE_FROM_STEP = 2, 30
FAILURES_IN_A_ROW = 3  # this many trials of one worker failing one after another: the space, not bad luck


@dataclass
class TuneResult:
    out: Path
    study: str
    storage: str
    finished: int
    best: dict | None  # number, value, params, run, recipe
    report: Path | None
    config: Path | None  # the best recipe, for `seglab train --config`
    command: str | None
    ended: str  # why the loop ended


def tune(data: str = "synthetic", budget: float = 7200, out=None, *, trials: int | None = None, storage: str | None = None,
         study: str | None = None, space: str | Path | None = None, trial_time: float | None = None,
         sampler: str = "tpe", weights: str | None = None, verbose: int | str | None = None, **options) -> TuneResult:
    """Search recipes for `data` within `budget` seconds of this process; returns where it ended.
    `options` are TrainConfig fields of the data and setup sections (format, classes, seed,
    precision, ...), the same in every trial."""
    started = time.monotonic()
    deadline = started + budget
    opt = studies.optuna()
    base = TrainConfig().replace(path=dataset_path(data), **options)
    name = _dataset_name(base.data.path)
    out = Path(out or Path("runs") / f"tune-{name}")
    out.mkdir(parents=True, exist_ok=True)
    url = studies.storage_url(storage, out)
    study_name = study or f"seglab-{name}"
    with _setup_lock(out):
        storage_obj = studies.open_storage(url)
        st = opt.create_study(study_name=study_name, storage=storage_obj, direction="maximize", load_if_exists=True)
        search, trial_time, first = _prepare(st, base, budget, space, trial_time, weights)
    st = opt.load_study(study_name=study_name, storage=storage_obj,
                        sampler=_sampler(opt, sampler, base.setup.seed if first else None),
                        pruner=opt.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS,
                                                        n_warmup_steps=PRUNE_FROM_STEP, interval_steps=10))
    _say(f"Study {study_name!r} in {studies.shown_url(url)}: " + (f"{trials} trials" if trials else "trials") +
         f" within {duration(budget)}" + (f", about {duration(trial_time)} each" if search.auto_epochs() else "") +
         f"; trial folders in {out / 'trials'}.")
    try:
        ended = _search(st, search, base, out, deadline, trials, trial_time, verbose)
    except TrainingFailed as e:  # the report and the best recipe so far first: they show what failed
        _finish(st, base, out, url, f"stopped: {e}")
        raise
    return _finish(st, base, out, url, ended)


def report(out, storage: str | None = None, study: str | None = None) -> TuneResult:
    """`seglab tune --report DIR`: tune.html and the best recipe from a study as it stands."""
    out = Path(out)
    url = studies.storage_url(storage, out)
    if storage is None and not (out / "study.db").is_file():
        raise BadArgument(f"{out} holds no study.db: give the --out folder of `seglab tune`, or --storage for a study "
                          "kept elsewhere.")
    opt = studies.optuna()
    storage_obj = studies.open_storage(url)
    names = [s.study_name for s in opt.get_all_study_summaries(storage_obj)]
    if study is None:
        if len(names) != 1:
            raise BadArgument(f"{studies.shown_url(url)} holds {len(names)} studies ({', '.join(names) or 'none'}): name one "
                              "with --study.")
        study = names[0]
    elif study not in names:
        raise BadArgument(f"{studies.shown_url(url)} holds no study {study!r}; it holds: {', '.join(names) or 'none'}.")
    st = opt.load_study(study_name=study, storage=storage_obj)
    base = TrainConfig.from_dict(st.user_attrs.get("base") or {})
    return _finish(st, base, out, url, "the report of the study as it stands")


# --- the study's set-up: once, by its first worker ----------------------------------------------

def _prepare(st, base: TrainConfig, budget: float, space_path, trial_time, weights) -> tuple[SearchSpace, float, bool]:
    """The space and trial time the study holds; the first worker plans them and queues the plan
    as trial 0. A later worker checks it tunes the same dataset and space."""
    source = base.open_source()
    reports = checked_source(source, base)
    dataset = {"name": _dataset_name(base.data.path), "format": source.format, "classes": list(source.classes.names),
               "pairs": dict(source.splits)}
    attrs = st.user_attrs
    if "space" in attrs:
        _same_dataset(st, attrs.get("dataset") or {}, dataset)
        stored = parse_space(yaml.safe_load(attrs["space"]), SearchSpace(), f"study {st.study_name}'s space")
        if space_path is not None:
            given = load_space(space_path, stored)
            if given.to_yaml() != stored.to_yaml() and _bare(given) != _bare(stored):
                raise BadArgument(f"study {st.study_name!r} searches another space than {space_path}: leave --space out "
                                  "to join it as it is, or give another --study.")
        _say(f"Joining study {st.study_name!r}: {len(studies.finished(st))} trials finished, space and trial time as "
             "its first worker set them.")
        return stored, float(attrs["trial_time"]), False
    trial_time = trial_time or budget / TRIALS_IN_BUDGET
    given = (load_space(space_path, SearchSpace()) if space_path is not None else SearchSpace()).fixed_recipe()
    if weights:
        given["weights"] = weights
    _say(f"Planning the first trial for {duration(trial_time)} on this machine (seglab plan) ...")
    plan = Planner(source, reports, trial_time, given, base=base).plan()
    fp = plan.fingerprint
    default = default_space(plan.values, plan.reasons, fp.num_classes, SIZES, native=int(fp.short_side),
                            sqrt_weights=inverse_sqrt_weights([c.pixel_fraction for c in fp.classes]),
                            train_pairs=fp.train_pairs)
    search = load_space(space_path, default) if space_path is not None else default
    st.set_user_attr("space", search.to_yaml())
    st.set_user_attr("trial_time", trial_time)
    st.set_user_attr("dataset", dataset)
    st.set_user_attr("base", base.to_dict())  # for `seglab tune --report`: the data and setup of best.yaml
    st.set_user_attr("plan", json.loads(json.dumps(plan.to_json()["values"])))
    st.enqueue_trial(search.params_of(plan.values), user_attrs={"origin": "plan"})
    _say("The search space (write it to a file, edit it and give it as --space to narrow or widen it):\n"
         + "\n".join("  " + line for line in search.to_yaml().splitlines()))
    return search, trial_time, True


def _bare(space: SearchSpace) -> dict:
    return {k: d.to_plain() for k, d in space.dimensions.items()}


def _same_dataset(st, stored: dict, now: dict) -> None:
    differ = [k for k in ("format", "classes", "pairs") if stored.get(k) != now.get(k)]
    if differ:
        raise BadArgument(f"study {st.study_name!r} tunes {stored.get('name')} ({', '.join(f'{k} {stored.get(k)}' for k in differ)}), "
                          f"not this dataset ({', '.join(f'{k} {now.get(k)}' for k in differ)}): give another --study, "
                          "or the dataset the study was made for.")


@contextlib.contextmanager
def _setup_lock(out: Path):
    """Workers started together in one folder set the study up one at a time (the first plans,
    the others find its space); workers on other machines rely on the storage."""
    with open(out / ".tune.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sampler(opt, kind: str, seed: int | None):
    """TPE, or random search. TPE models the study from its first trial, the plan, on: it draws
    near the best recipes so far, and the prior keeps a share of its draws wide. Its usual random
    start-up trials would spend most of a short search far from a plan that already sits near the
    hand-tuned recipes (docs/benchmarks.md#tuning: four random trials of six lost on both
    datasets). Workers after the first draw from their own seed: two workers drawing the same
    recipes would waste one."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if kind == "tpe":
        return opt.samplers.TPESampler(seed=seed, n_startup_trials=1, multivariate=True, constant_liar=True)
    if kind == "random":
        return opt.samplers.RandomSampler(seed=seed)
    raise BadArgument(f"--sampler takes tpe or random; got {kind!r}.")


# --- the trials --------------------------------------------------------------------------------

def _search(st, search: SearchSpace, base: TrainConfig, out: Path, deadline: float, trials: int | None,
            trial_time: float, verbose) -> str:
    """Run trials until the study has `trials` finished ones or the budget has no room for another;
    why it ended."""
    opt = studies.optuna()
    State = opt.trial.TrialState
    waiting_said, failures = None, []
    while True:
        if len(failures) >= FAILURES_IN_A_ROW:
            raise TrainingFailed(f"{len(failures)} trials in a row failed here; the last, {failures[-1]} Narrow the space "
                                 "(--space) to leave out what fails; tune.html lists every trial's error.")
        studies.reap(st, _say)
        done, busy = len(studies.finished(st)), studies.running(st)
        if trials is not None and done + len(busy) >= trials:
            if not busy:
                return f"the study has its {trials} trials"
            numbers = ", ".join(str(t.number) for t in busy)
            if waiting_said != numbers:
                _say(f"Waiting for trial(s) {numbers} of other workers to end (the study has {done} of {trials}).")
                waiting_said = numbers
            if time.monotonic() + studies.HEARTBEAT > deadline:
                return "the budget is spent"
            time.sleep(min(studies.HEARTBEAT, 5.0))
            continue
        left = deadline - time.monotonic()
        need = studies.typical_seconds(st) or (trial_time if search.auto_epochs() else 0.0)
        if left < need or left <= 0:
            return (f"the budget is spent: {duration(max(0, left))} left, and a trial takes about {duration(need)}"
                    if left > 0 else "the budget is spent")
        trial = st.ask()
        if trials is not None:
            ahead = [t for t in st.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED, State.RUNNING))
                     if t.number < trial.number]
            if len(ahead) >= trials:  # another worker asked for the last trial at the same moment
                trial.set_user_attr("error", "not run: the study had its trials")
                st.tell(trial, state=State.FAIL)
                continue
        error = _run_trial(st, trial, search, base, out, deadline, trial_time, verbose)
        failures = failures + [f"trial {trial.number}: {error.rstrip('.')}."] if error else []


def _run_trial(st, trial, search: SearchSpace, base: TrainConfig, out: Path, deadline: float, trial_time: float,
               verbose) -> str | None:
    """Run one trial and tell the study how it ended; the error when it failed."""
    State = studies.optuna().trial.TrialState
    params = search.sample(trial)
    values = search.recipe(params)
    folder = out / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run", str(folder.resolve()))
    origin = "the plan" if trial.user_attrs.get("origin") == "plan" else "drawn"
    if trial.user_attrs.get("retry_of") is not None:
        origin += f", again: trial {trial.user_attrs['retry_of']}'s worker died"
    _say(f"Trial {trial.number} ({origin}): {_described(params)}")
    pruning = TrialPruning(trial)
    began = time.monotonic()
    auto = search.auto_epochs()
    try:
        with studies.Liveness(trial):
            run = train(base.data.path, folder, config=base, verbose=_verbosity(verbose),
                        budget=min(trial_time, deadline - began) if auto else None, deadline=deadline,
                        callbacks=[pruning], **values)
    except SeglabError as e:  # this recipe cannot run here (too large for memory, a bad combination): the next one may
        trial.set_user_attr("error", str(e))
        st.tell(trial, state=State.FAIL)
        _say(f"Trial {trial.number} failed: {e}")
        return str(e)
    except BaseException as e:  # Ctrl-C, or a bug: the trial is failed, the study kept; rerunning continues it
        with contextlib.suppress(Exception):
            trial.set_user_attr("error", f"{type(e).__name__}: {e}")
            st.tell(trial, state=State.FAIL)
        raise
    took = time.monotonic() - began
    state = run.state
    config = run.config
    trial.set_user_attr("seconds", round(took, 1))
    trial.set_user_attr("epochs", state.get("epochs_done"))
    trial.set_user_attr("recipe", json.loads(json.dumps(config.to_dict()["recipe"])))
    if state.get("budget_stop"):
        trial.set_user_attr("budget_stop", state["budget_stop"])
    best = state.get("best_val_miou")
    if pruning.stopped:
        trial.set_user_attr("stopped", pruning.stopped)
        st.tell(trial, state=State.PRUNED)
        _say(f"Trial {trial.number}: {pruning.stopped} ({duration(took)}).")
        return None
    if best is None or not math.isfinite(best):
        error = "no finished epoch gave a validation mIoU"
        trial.set_user_attr("error", error)
        st.tell(trial, state=State.FAIL)
        _say(f"Trial {trial.number} failed: {error}.")
        return error
    st.tell(trial, best)
    leader = st.best_trial
    _say(f"Trial {trial.number}: val mIoU {best:.4f} after {state.get('epochs_done')} epochs in {duration(took)}"
         + (f" (stopped at the budget: {state['budget_stop']})" if state.get("budget_stop") else "")
         + f"; best so far {leader.value:.4f}, trial {leader.number}.")
    return None


def _verbosity(verbose):
    if verbose is not None:
        return verbose
    return "bar" if sys.stderr.isatty() else 0


def _described(params: dict) -> str:
    words = []
    for key, value in params.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        words.append(f"{key.removeprefix('augment.')} {shown}")
    return ", ".join(words) or "every value fixed by the space"


# --- the end: report and best recipe -------------------------------------------------------------

def _finish(st, base: TrainConfig, out: Path, url: str, ended: str) -> TuneResult:
    opt = studies.optuna()
    State = opt.trial.TrialState
    done = studies.finished(st)
    complete = [t for t in st.get_trials(deepcopy=False, states=(State.COMPLETE,)) if t.value is not None]
    best = max(complete, key=lambda t: t.value) if complete else None
    config_path = command = None
    if best is not None:
        config = best_config(best, base)
        config_path = out / "best.yaml"
        header = (f"# seglab tune: the best of {len(done)} trials of study {st.study_name!r} ({studies.shown_url(url)}): trial "
                  f"{best.number}, val mIoU {best.value:.4f}, run {best.user_attrs.get('run')}\n"
                  f"# Reproduce it: seglab train --config {config_path} --out runs/best\n")
        write_text(config_path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))
        command = train_command(config.data.path, config.to_dict()["recipe"])
    best_info = None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                           "run": best.user_attrs.get("run"), "recipe": best.user_attrs.get("recipe")}
    page = write_tune_report(out, st, url=studies.shown_url(url), best=best, command=command, config_path=config_path,
                             ended=ended)
    return TuneResult(out, st.study_name, studies.shown_url(url), len(done), best_info, page, config_path, command, ended)


def best_config(trial, base: TrainConfig) -> TrainConfig:
    """The configuration that trains trial `trial`'s recipe again: this worker's data and setup
    sections with the trial's resolved recipe, without the plan it was fitted by (its epochs are
    written out), for `seglab train --config`."""
    recipe = trial.user_attrs.get("recipe")
    if recipe is None:
        raise BadArgument(f"trial {trial.number} recorded no recipe: it ran on a seglab without `seglab tune`'s "
                          "records. Rerun it.")
    plain = base.to_dict()
    plain["recipe"] = recipe
    plain.pop("plan", None)
    config = TrainConfig.from_dict(plain)
    return config.replace(jit=None, replicas=None, replica_batch=None, band_adaptation=None)


def _dataset_name(path: str) -> str:
    return Path(path).name or "data"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
