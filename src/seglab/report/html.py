"""`seglab report`: one self-contained report.html for a run. Images are embedded as data URIs, the
mask viewer's script is inline and nothing links outside the file, so it opens offline and can be
mailed around."""
from __future__ import annotations

import base64
import dataclasses
import html
import json
from pathlib import Path

from seglab.report.plan_tables import shown_value
from seglab.report.viewer import viewer_fragment
from seglab.runs import Run, write_text
from seglab.runs.samples import SampleLog

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; } img { max-width: 100%; } .previews img { margin: 0 8px 8px 0; vertical-align: top; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
"""


def image_tag(path: Path, alt: str) -> str:
    """A PNG file as an <img> that carries its bytes (data URI): the page opens offline."""
    return png_tag(path.read_bytes(), alt)


def png_tag(data: bytes, alt: str) -> str:
    """PNG bytes as an <img> that carries them (data URI)."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _number(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _metrics_table(metrics: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td class=num>{_number(metrics['iou'][name])}</td>"
                   f"<td class=num>{_number(metrics['dice'][name])}</td></tr>" for name in metrics["iou"])
    headline = (f"<p>{metrics['images']} images, {metrics['pixels']:,} labelled pixels ({html.escape(metrics['split'])} split, "
                f"{'full resolution' if metrics['full_res'] else str(metrics['size']) + ' px'}): "
                f"pixel accuracy <b>{_number(metrics['pixel_accuracy'])}</b>, mIoU <b>{_number(metrics['miou'])}</b> "
                f"(dataset-level), per-image mIoU {_number(metrics.get('image_miou'))}, mean Dice {_number(metrics['mean_dice'])}. "
                "<span class=muted>Classes absent from truth and prediction have no score and are left out of the means.</span></p>")
    return headline + f"<table><tr><th>class</th><th>IoU</th><th>Dice</th></tr>{rows}</table>"


def _why(run: Run) -> list[str]:
    """"Why these settings": a planned run's values with the plan's reason for each (config.yaml)."""
    try:
        config = run.config
    except (OSError, ValueError):
        return []  # the configuration section below shows the file as it is
    plan = config.plan
    if plan.budget is None:
        return []
    given = set(plan.user_set or ())
    def shown(value) -> str:  # a section (augment) as its fields
        return shown_value(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)

    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(shown(config.get(name)))}</td>"
                   f"<td>{'given on the command line' if name in given else html.escape(why)}</td></tr>"
                   for name, why in plan.reasons.items() if name not in ("crop", "scale") or config.recipe.crop)
    estimate = plan.estimate
    inference = plan.inference
    return [f"<h2>Why these settings</h2><p>Planned by <code>seglab train --budget {plan.budget:.0f}s</code> from the "
            f"dataset's fingerprint and a measured step time (plan.json holds both): estimated {estimate.get('total', 0):.0f} s, "
            f"{estimate.get('per_epoch', 0):.1f} s an epoch.</p><table><tr><th>setting</th><th>value</th><th>why</th></tr>"
            f"{rows}</table>" + (f"<p>Evaluate and predict: {html.escape(inference.get('why', ''))}.</p>" if inference else "")]


def write_report(run_path) -> Path:
    """Write RUN/report.html from what the run folder holds; sections for missing files say how to make them."""
    run = Run(run_path)
    state = run.state
    parts = [f"<h1>seglab run: {html.escape(run.path.name)}</h1>",
             f"<p class=muted>{html.escape(str(run.path.resolve()))} · status <b>{html.escape(state.get('status', '?'))}</b>, "
             f"{state.get('epochs_done', 0)} epochs, best validation mIoU {_number(state.get('best_val_miou'))} "
             f"at epoch {state.get('best_epoch', '–')}</p>"]
    metrics_file = run.path / "metrics.json"
    parts.append("<h2>Evaluation</h2>")
    if metrics_file.is_file():
        parts.append(_metrics_table(json.loads(metrics_file.read_text())))
        if (run.path / "confusion_matrix.png").is_file():
            parts.append(image_tag(run.path / "confusion_matrix.png", "confusion matrix"))
        for name in ("worst", "best"):
            if (run.path / f"{name}.png").is_file():
                parts.append(f"<h3>{name.capitalize()} images</h3>" + image_tag(run.path / f"{name}.png", f"{name} images"))
    else:
        parts.append(f"<p class=muted>Not evaluated yet: run <code>seglab evaluate {html.escape(str(run.path))}</code>.</p>")
    if SampleLog(run.path).exists():
        parts.append("<h2>Validation samples, epoch by epoch</h2><p class=muted>Switch the prediction and ground-truth "
                     "layers and each class; step through the epochs; worst images first.</p>" + viewer_fragment(run.path))
    parts.append("<h2>Training curves</h2>")
    parts.append(image_tag(run.curves_path, "training curves") if run.curves_path.is_file() else "<p class=muted>No finished epoch yet.</p>")
    previews = sorted(run.previews_path.glob("epoch_*.png")) if run.previews_path.is_dir() else []
    if previews:
        shown = previews if len(previews) <= 4 else [previews[0], previews[len(previews) // 3], previews[2 * len(previews) // 3], previews[-1]]
        parts.append("<h2>Validation previews</h2><div class=previews>" + "".join(image_tag(p, p.stem) for p in shown) + "</div>")
    parts += _why(run)
    if run.config_path.is_file():
        parts.append("<h2>Configuration</h2><pre>" + html.escape(run.config_path.read_text()) + "</pre>")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>seglab: {html.escape(run.path.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    path = run.path / "report.html"
    write_text(path, page)
    return path
