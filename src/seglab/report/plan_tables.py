"""What `seglab plan` and `seglab train --budget` print of a plan (seglab.commands.planning)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from seglab.report.tables import print_table


def duration(seconds: float) -> str:
    """90 -> '1m30s', 4500 -> '1h15m': how --budget is written."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


SHOWN = ("model", "model_options", "weights", "fine_tune", "size", "crop", "scale", "batch_size", "epochs", "learning_rate",
         "schedule", "loss", "class_weights", "augment")


def shown_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {shown_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def plan_rows(plan) -> list[tuple[str, str, str]]:
    """(field, value, reason) for each value the plan sets, the user's marked as given."""
    rows = []
    for name in SHOWN:
        if name not in plan.values:
            continue
        why = "given" if name in plan.user_set else plan.reasons.get(name, "")
        if name in ("crop", "scale") and not plan.values.get("crop"):
            continue  # whole images: size says it
        rows.append((name, shown_value(plan.values[name]), why))
    return rows


def fingerprint_lines(fp) -> list[str]:
    w, h = fp.median_size
    lines = [f"{fp.format} at {fp.root}: {', '.join(f'{n} {k}' for k, n in fp.pairs.items())} pairs; images median "
             f"{w}x{h} (from {fp.min_size[0]}x{fp.min_size[1]} to {fp.max_size[0]}x{fp.max_size[1]}), "
             f"{len(fp.bands)} band(s) {','.join(fp.bands)} {fp.dtype}; {fp.ignored_fraction:.1%} of pixels ignored"]
    for c in fp.classes:
        shape = (f"objects median {c.object_size:.2f} / p10 {c.small_object_size:.3f} of the image side, "
                 f"{c.objects_per_image:g} per image, stroke {c.width:.1f} px, top half {c.top_share:.0%}, middle rows "
                 f"{c.middle_share:.0%}"
                 if c.object_size is not None else "not in the masks measured")
        lines.append(f"  {c.name}: {c.pixel_fraction:.2%} of labelled pixels; {shape}")
    return lines


def print_plan_summary(plan, stream) -> None:
    """The plan in a few lines, for `seglab train --budget` (on stderr, beside Keras's progress)."""
    print(f"Plan for a budget of {duration(plan.budget)} (seglab plan DATA --budget {duration(plan.budget)} explains "
          "each value; config.yaml records it):", file=stream)
    for name, value, why in plan_rows(plan):
        print(f"  {name}: {value}  ({why})", file=stream)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=stream)


def print_plan(plan, data: str, console: Console) -> None:
    """The fingerprint, the machine, each value with its reason, the time it will take and how to
    evaluate, and the command that runs it."""
    console.print("[bold]Dataset fingerprint[/]")
    for line in fingerprint_lines(plan.fingerprint):
        console.print(escape(line), soft_wrap=True, highlight=False)
    m = plan.machine
    console.print(f"[bold]Machine[/]: {m['cores']} cores, {escape(m['cpu'])} ({' '.join(m['cpu_flags']) or 'no AVX2'}), "
                  f"{m['gpus']} GPU(s), {m['memory_available_gb']} GB free", soft_wrap=True, highlight=False)
    for t in plan.timings:
        console.print(f"  measured {t['model']} at {t['size']} px, batch {t['batch_size']}: training step "
                      f"{t['train_step'] * 1000:.0f} ms, validation step {t['val_step'] * 1000:.0f} ms", highlight=False)
    print_table(console, ["setting", "value", "why"], [list(map(escape, row)) for row in plan_rows(plan)],
                title=f"Plan for {duration(plan.budget)}")
    e = plan.estimate
    console.print(f"Time: {e['total']:.0f} s of {plan.budget:.0f} s: {e['spent_before_plan']:.0f} s reading and planning, "
                  f"{e['setup']:.0f} s building, {e['first_epoch_reading']:.0f} s decoding in the first epoch, "
                  f"{plan.values['epochs']} epochs x {e['per_epoch']:.1f} s, {e['finish']:.0f} s writing", highlight=False)
    inference = plan.inference
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in inference["options"].items())
    console.print(f"Evaluate and predict: {inference['why']}, ~{inference['seconds_per_image']:.2f} s per image: "
                  f"seglab evaluate RUN {flags}", soft_wrap=True, highlight=False)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    console.print(f"Run it: seglab train {escape(data)} --budget {duration(plan.budget)}", soft_wrap=True, highlight=False)
    console.print(f"The same recipe without planning: {escape(plan.train_command(data))}", soft_wrap=True, highlight=False)
