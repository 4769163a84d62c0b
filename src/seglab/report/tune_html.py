"""`seglab tune`'s tune.html: one self-contained page for a study, offline like report.html: the
trials, the optimisation history, how each trial fared against its schedule (what the pruner
saw), the parameters' importances, the best trial's curves and recipe, and the search space."""
from __future__ import annotations

import html
import io
import os
from pathlib import Path

from matplotlib.figure import Figure

from seglab.report.html import STYLE, image_tag, png_tag
from seglab.report.plan_tables import duration
from seglab.runs import Run, write_text

MIN_FOR_IMPORTANCE = 4  # finished trials below which importances say nothing yet


def write_tune_report(out: Path, study, url: str, best, command: str | None, config_path: Path | None,
                      ended: str) -> Path:
    """Write OUT/tune.html for an Optuna `study` whose best complete trial is `best` (None before
    one); returns its path."""
    from optuna.trial import TrialState

    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    dataset = study.user_attrs.get("dataset") or {}
    parts = [f"<h1>seglab tune: {html.escape(study.study_name)}</h1>",
             f"<p class=muted>{html.escape(dataset.get('name', '?'))} ({html.escape(str(dataset.get('format', '?')))}, "
             f"{len(dataset.get('classes', []))} classes) · storage {html.escape(url)} · "
             + ", ".join(f"{n} {state}" for state, n in counts.items() if n) + f" · {html.escape(ended)}</p>"]
    parts.append("<h2>Best trial</h2>")
    if best is None:
        parts.append("<p class=muted>No trial has finished yet.</p>")
    else:
        parts.append(f"<p>Trial {best.number}{' (the plan)' if best.user_attrs.get('origin') == 'plan' else ''}: "
                     f"validation mIoU <b>{best.value:.4f}</b> after {best.user_attrs.get('epochs', '?')} epochs "
                     f"in {_took(best)}. Run folder: {_run_link(best, out)}.</p>")
        if command:
            parts.append(f"<p>Train it again:</p><pre>{html.escape(command)}</pre>")
        if config_path is not None:
            parts.append(f"<p>or <code>seglab train --config {html.escape(str(config_path))}</code> "
                         f"(<a href=\"{html.escape(_relative(config_path, out))}\">best.yaml</a>).</p>")
        curves = _run_path(best, out)
        if curves is not None and Run(curves).curves_path.is_file():
            parts.append("<h3>Its training curves</h3>" + image_tag(Run(curves).curves_path, "training curves of the best trial"))
    if trials:
        parts.append("<h2>Optimisation history</h2><p class=muted>Each trial's validation mIoU (pruned trials at the "
                     "score they were stopped with) and the best so far.</p>" + _png(_history(trials), "optimisation history"))
    pruned_views = [t for t in trials if t.intermediate_values]
    if pruned_views:
        parts.append("<h2>Trials against their schedules</h2><p class=muted>Best validation mIoU so far at each tenth "
                     "of a trial's epochs: what the median pruner compares (from 30% of the schedule on, once two "
                     "trials have finished).</p>" + _png(_intermediate(pruned_views), "val mIoU against the share of each trial's schedule"))
    parts.append("<h2>Parameter importances</h2>" + _importances(study, counts["complete"]))
    parts.append("<h2>Trials</h2>" + _trials_table(trials, out))
    if "space" in study.user_attrs:
        trial_time = study.user_attrs.get("trial_time")
        parts.append("<h2>Search space</h2>" + (f"<p class=muted>Each trial's share of the time: "
                     f"{duration(trial_time)} (with <code>epochs: auto</code>).</p>" if trial_time else "")
                     + f"<pre>{html.escape(study.user_attrs['space'])}</pre>")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>seglab tune: {html.escape(study.study_name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out / "tune.html"
    write_text(path, page)
    return path


def _took(trial) -> str:
    seconds = trial.user_attrs.get("seconds")
    return duration(seconds) if seconds is not None else "?"


def _run_path(trial, out: Path) -> Path | None:
    """The trial's run folder where this machine has it (another worker's may be elsewhere)."""
    run = trial.user_attrs.get("run")
    if run and Path(run).is_dir():
        return Path(run)
    local = out / "trials" / f"{trial.number:04d}"
    return local if local.is_dir() else None


def _relative(path: Path, out: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(out).resolve())


def _run_link(trial, out: Path) -> str:
    path = _run_path(trial, out)
    if path is None:
        where = trial.user_attrs.get("run") or "?"
        host = (trial.user_attrs.get("worker") or {}).get("host", "another machine")
        return f"{html.escape(where)} <span class=muted>(on {html.escape(str(host))})</span>"
    target = path / "report.html" if (path / "report.html").is_file() else path
    return f'<a href="{html.escape(_relative(target, out))}">{html.escape(path.name)}</a>'


def _png(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return png_tag(buffer.getvalue(), alt)


def _score(trial) -> float | None:
    if trial.value is not None:
        return trial.value
    if trial.intermediate_values:
        return max(trial.intermediate_values.values())
    return None


def _history(trials) -> Figure:
    from optuna.trial import TrialState

    fig = Figure(figsize=(8, 3.2))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.16, top=0.95)
    ax = fig.subplots()
    for state, marker, label in ((TrialState.COMPLETE, "o", "complete"), (TrialState.PRUNED, "x", "pruned")):
        points = [(t.number, _score(t)) for t in trials if t.state == state and _score(t) is not None]
        if points:
            ax.plot(*zip(*points), marker, label=label)
    best, line = None, []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and t.value is not None and (best is None or t.value > best):
            best = t.value
        if best is not None:
            line.append((t.number, best))
    if line:
        ax.step(*zip(*line), where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("val mIoU")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _intermediate(trials) -> Figure:
    fig = Figure(figsize=(8, 3.2))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.16, top=0.95)
    ax = fig.subplots()
    for t in trials:
        steps = sorted(t.intermediate_values)
        ax.plot(steps, [t.intermediate_values[s] for s in steps], "--" if t.state.name == "PRUNED" else "-",
                marker=".", label=f"{t.number}")
    ax.set_xlabel("% of the trial's epochs")
    ax.set_ylabel("best val mIoU so far")
    ax.grid(alpha=0.3)
    if len(trials) <= 12:
        ax.legend(title="trial", fontsize=7, ncol=2)
    return fig


def _importances(study, finished: int) -> str:
    if finished < MIN_FOR_IMPORTANCE:
        return (f"<p class=muted>{finished} finished trial(s): importances need {MIN_FOR_IMPORTANCE} or more "
                "with different values.</p>")
    import optuna

    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as e:
        return f"<p class=muted>Not computed: {html.escape(str(e))}</p>"
    if not importances:
        return "<p class=muted>No searched parameter varied among the finished trials.</p>"
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td class=num>{value:.3f}</td>"
                   f"<td><div style=\"background:#4a7;height:10px;width:{300 * value:.0f}px\"></div></td></tr>"
                   for name, value in importances.items())
    return ("<p class=muted>Optuna's PED-ANOVA: how much of the spread in val mIoU among the better trials each "
            "parameter explains (shares summing to 1); few trials make them rough.</p>"
            f"<table><tr><th>parameter</th><th>importance</th><th></th></tr>{rows}</table>")


def _trials_table(trials, out: Path) -> str:
    names = sorted({name for t in trials for name in t.params})
    head = "".join(f"<th>{html.escape(n.removeprefix('augment.'))}</th>" for n in names)
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        score = _score(t)
        note = t.user_attrs.get("stopped") or t.user_attrs.get("error") or t.user_attrs.get("budget_stop") or ""
        if t.user_attrs.get("retry_of") is not None:
            note = f"retry of trial {t.user_attrs['retry_of']}. {note}".strip()
        cells = "".join(f"<td>{html.escape(_shown(t.params.get(n)))}</td>" for n in names)
        rows.append(f"<tr><td class=num>{t.number}</td><td>{t.state.name.lower()}</td>"
                    f"<td class=num>{'–' if score is None else f'{score:.4f}'}</td>"
                    f"<td class=num>{t.user_attrs.get('epochs', '–')}</td><td class=num>{_took(t)}</td>"
                    f"<td>{html.escape(t.user_attrs.get('origin', 'search'))}</td>{cells}"
                    f"<td>{_run_link(t, out) if t.user_attrs.get('run') else '–'}</td>"
                    f"<td class=muted>{html.escape(note)}</td></tr>")
    return (f"<table><tr><th>trial</th><th>state</th><th>val mIoU</th><th>epochs</th><th>time</th><th>origin</th>{head}"
            f"<th>run</th><th>note</th></tr>{''.join(rows)}</table>")


def _shown(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
