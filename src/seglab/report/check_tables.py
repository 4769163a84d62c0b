"""The tables `seglab check` prints."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from seglab.data.check import CheckReport
from seglab.report.tables import print_table

SHOWN = 25  # problems listed before "... and N more" (--json lists them all)


def print_check(report: CheckReport, console: Console) -> None:
    data = report.to_json()
    splits = ", ".join(f"{n} {k}" for k, n in data["pairs"].items())
    console.print(f"[bold]{escape(data['root'])}[/]  format [cyan]{data['format']}[/], masks: {data['mask_encoding']}", soft_wrap=True)
    console.print(f"{data['total_pairs']} pairs ({splits or 'none'})")
    for note in data["notes"]:
        console.print(f"  [dim]note: {note}[/]")

    rows = []
    for i, (name, colour) in enumerate(zip(data["classes"], data["class_colors"])):
        swatch = Text("■ ", style=f"rgb({colour[0]},{colour[1]},{colour[2]})") + Text(name)
        rows.append([str(i), swatch, f"{data['class_pixels'][name]:,}", f"{data['class_pixel_fraction'][name]:.2%}",
                     f"{data['suggested_class_weights'][name]:.3f}"])
    rows.append([str(data["ignore_index"]), Text("(ignored)", style="dim"), f"{data['ignored_pixels']:,}",
                 f"{data['ignored_pixel_fraction']:.2%} of all", "-"])
    print_table(console, ["index", "class", "pixels", "fraction", "suggested weight"], rows,
                numeric={"index", "pixels", "fraction", "suggested weight"}, title="Classes")
    console.print("[dim]fractions are of labelled pixels; weights by median-frequency balancing[/]")

    if data["mask_values_expected"] is not None:
        console.print(f"Mask values found: {_values(data['mask_values_found'])} (expected {_values(data['mask_values_expected'])})")
    sizes = data["image_sizes"]
    if sizes:
        console.print(f"Image sizes (WxH): min {sizes['min'][0]}x{sizes['min'][1]}, median {sizes['median'][0]:g}x{sizes['median'][1]:g}, "
                      f"max {sizes['max'][0]}x{sizes['max'][1]}; {sizes['distinct']} distinct, most common "
                      f"{sizes['most_common'][0]}x{sizes['most_common'][1]} ({sizes['most_common_count']})")
    bands = data["bands"]
    if bands and bands["per_band"]:  # none for 8-bit RGB photos
        rows = [[name, *(f"{v[key]:g}" for key in ("min", "p1", "mean", "std", "p99", "max"))]
                for name, v in bands["per_band"].items()]
        print_table(console, ["band", "min", "p1", "mean", "std", "p99", "max"], rows,
                    numeric={"min", "p1", "mean", "std", "p99", "max"},
                    title=f"Bands: {bands['channels']} ({', '.join(bands['dtypes'])})")
    if data["ignored_files"]:
        exts = sorted({f.rsplit('.', 1)[-1] if '.' in f else '(none)' for f in data["ignored_files"]})
        console.print(f"Ignored {len(data['ignored_files'])} non-image file(s) ({', '.join('.' + e for e in exts)}), e.g. {data['ignored_files'][0]}")
    for w in data["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    errors = data["errors"]
    if errors:
        console.print(f"[bold red]{len(errors)} problem(s):[/]")
        for e in errors[:SHOWN]:
            console.print(f"  [red]✗[/] {escape(e['file'])}: {escape(e['message'])}", highlight=False, soft_wrap=True)
        if len(errors) > SHOWN:
            console.print(f"  ... and {len(errors) - SHOWN} more (seglab check --json lists all)")
    else:
        console.print("[bold green]✓ no problems found[/]")


def _values(values: list[int]) -> str:
    return ", ".join(map(str, values)) if len(values) <= 16 else f"{len(values)} values, {values[0]}..{values[-1]}"


def print_colors(colors, console: Console, why: str) -> None:
    """The colours found in colour masks without a colour table, and how to name them."""
    console.print(f"[bold red]error:[/] {escape(why)}", soft_wrap=True)
    total = sum(n for _, n in colors) or 1
    rows = [[Text("■ ", style=f"rgb({c[0]},{c[1]},{c[2]})") + Text(f"{c[0]}, {c[1]}, {c[2]}"), f"{n:,}", f"{n / total:.2%}"]
            for c, n in colors]
    print_table(console, ["colour (r, g, b)", "pixels", "share"], rows, numeric={"pixels", "share"},
                title=f"Colours in the masks: {len(colors)}")
    console.print("Name them: seglab check DATA --write-classes writes classes.json with these colours.", markup=False)
