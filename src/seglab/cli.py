"""The `seglab` command line: one Typer app; each verb is a thin call into a module."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from seglab.errors import DataError, DatasetError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="Train, evaluate and run image-segmentation models.\n\nStart with `seglab demo`, or `seglab check PATH` on your data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

FORMAT_HELP = "Dataset format: oxford-pets, camvid, cityscapes-pairs, folder, synthetic. Default: recognised from the folder."


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # no breaks inside paths
    raise typer.Exit(code)


@app.command()
def check(
    path: str = typer.Argument("synthetic", help="Dataset folder, or 'synthetic' for the built-in dataset."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    view: Optional[str] = typer.Option(None, help="Class view: 'binary' (oxford-pets), 'road' (camvid, cityscapes-pairs)."),
    classes: Optional[str] = typer.Option(None, help="Comma-separated class names, index order (folder format)."),
    val_fraction: float = typer.Option(0.2, help="Share held out for validation where the dataset has no val split."),
    seed: int = typer.Option(0, help="Seed of that split."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
):
    """Check a dataset before training: pairs per split, every problem with its file, class balance.

    Exits 0 when the dataset is clean, 1 when any file has a problem.

    Example: seglab check ../shared/data/oxford-pets
    """
    from seglab.data import check as run_check
    from seglab.data import open_source
    from seglab.report.check_tables import print_check

    try:
        source = open_source(path, format, view=view, val_fraction=val_fraction, seed=seed,
                             **({"classes": [c.strip() for c in classes.split(",")]} if classes else {}))
    except (ValueError, DataError) as e:
        _fail(str(e))
    report = run_check(source)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_check(report, console)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def synthetic(
    out: Path = typer.Argument(..., help="Folder to write (images/, masks/, classes.json)."),
    count: int = typer.Option(200, help="Number of image/mask pairs."),
    size: int = typer.Option(128, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same pixels."),
):
    """Write the built-in shapes dataset to a folder, in the `folder` layout.

    Example: seglab synthetic data/shapes --count 500 --size 256
    """
    from seglab.data import synthetic as synth

    if count < 1 or size < 16:
        _fail(f"--count must be at least 1 and --size at least 16; got {count} and {size}.")
    path = synth.write(out, seed=seed, count=count, size=size)
    console.print(f"Wrote {count} pairs of {size}x{size} to {path}")


@app.command()
def demo():
    """Run seglab's main job on the built-in synthetic dataset (for now: the dataset check).

    Example: seglab demo
    """
    from seglab.data import check as run_check
    from seglab.data import open_source
    from seglab.report.check_tables import print_check

    source = open_source("synthetic")
    console.print(f"Built-in synthetic dataset at {source.root}")
    report = run_check(source)
    print_check(report, console)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def bench(
    mode: str = typer.Argument("all", help="train, predict, or all (both, in one process)."),
    model: str = typer.Option("unet", "--model", "-m", help="Model name: fcn8s, mobilenet_unet, pix2pix_unet, unet."),
    data: str = typer.Option("synthetic", help="Dataset folder the training pipeline reads, or 'synthetic'."),
    size: int = typer.Option(128, help="Square image side in pixels."),
    batch: int = typer.Option(32, help="Batch size."),
    steps: int = typer.Option(10, help="Timed training steps (after 2 warm-up steps)."),
    weights: str = typer.Option("none", help="Encoder weights for mobilenet_unet and fcn8s: imagenet, none or a file."),
    jit: bool = typer.Option(False, help="Compile with XLA."),
):
    """Time training and inference of a model; prints one JSON line (images/s, GFLOP/s, peak memory).

    Timed as ../shared/reference/bench_seed.py times the tutorials' models, so the two can be run
    alternately and compared by ratio; benchmarks/bench_models.py does that.

    Example: seglab bench train --model unet --data ../shared/data/oxford-pets --size 128 --batch 32
    """
    from seglab.bench import bench as run_bench

    options = {"weights": weights} if model in ("mobilenet_unet", "fcn8s") else {}
    try:
        result = run_bench(mode, model, data, size, batch, steps=steps, jit=jit, **options)
    except (ValueError, FileNotFoundError, DataError) as e:
        _fail(str(e))
    print(json.dumps(result), flush=True)


def main():
    try:
        app()
    except DatasetError as e:
        _fail(str(e), 1)


if __name__ == "__main__":
    main()
