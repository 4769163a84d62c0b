"""`seglab predict`: masks at each image's original resolution, overlays, and predictions.json.

Any image Pillow reads (EXIF orientation applied; grayscale, palette, RGBA, 16-bit made RGB).
A file that cannot be read or written is reported, skipped and counted, never the end of the batch.
Images are resized to the model's size, or covered by sliding tiles at their own resolution
(`seglab.inference.tiling`), with or without test-time augmentation.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seglab.commands.exporting import predictor_for
from seglab.core.errors import BadArgument, DataError, OutputError
from seglab.core.progress import GrowingBar, Stopwatch, progress
from seglab.data.bands import display_bands as display_bands_of
from seglab.data.images import IMAGE_EXTENSIONS, find_images, output_names
from seglab.data.rasters import RGB
from seglab.engines.ray_engine import RayOptions, predict_on_ray
from seglab.engines.ray_engine import session as ray_session
from seglab.inference.chunks import (
    Written,
    chunk_labels,
    failure,
    large_images_allowed,
    read_input,
    write_outputs,
)
from seglab.inference.tiling import TTA, Inference
from seglab.runs import check_output_dir, make_output_dir, write_text

ENGINES = ("local", "ray")


def predict(run_path, inputs, out, threshold: float = 0.5, batch_size: int = 8, runtime: str | None = None, *,
            tile: int | None = None, overlap: float = 0.25, tta: str | TTA | None = None,
            engine: str = "local", ray: RayOptions | None = None, display_bands=None) -> dict:
    """Predict every image in `inputs` (files or folders) with the run's best model (on `runtime`:
    Keras by default; see `seglab.inference.runtimes.open_predictor`), or with the model of an export folder;
    write out/masks/<name>.png (indexed, class palette), out/overlays/<name>.png and
    out/predictions.json. <name> is the input's file name (`photo.jpg` -> masks/photo.jpg.png),
    made unique and safe by `seglab.data.images.output_names`.

    `tile`: slide tile x tile windows overlapping by `overlap` over each image at its own
    resolution (after the run's --scale), `batch_size` tiles per model call; default: the run's
    crop for a run trained on crops, else none (0: none), i.e. resize each image to the model's
    size. `tta`: test-time augmentation ('flip', 'flips', 'scales=0.75,1,1.25'; see TTA.parse).

    A model trained on bands (config.yaml's `bands`) reads those bands of each image by name (a
    folder of band files is one image); an image lacking one is a failure naming the bands it has.
    A georeferenced image's mask is also written as out/masks/<name>.tif with its georeference.
    Overlays show `display_bands` (default: the run's, else R,G,B or B04,B03,B02, else the first three).

    `engine`: 'local' (this process) or 'ray': the same chunks of images, decoded, predicted and
    encoded by a pool of Ray Data actors (`ray`: where and how many; see `seglab.engines.ray_engine`),
    and written here, so the outputs are the same files."""
    if engine not in ENGINES:
        raise BadArgument(f"Unknown engine {engine!r}. Use one of: {', '.join(ENGINES)}.")
    if not 0 < threshold < 1:
        raise BadArgument(f"threshold must be between 0 and 1; got {threshold}.")
    if batch_size < 1:
        raise BadArgument(f"batch_size must be at least 1; got {batch_size}.")
    tta = TTA.parse(tta) if isinstance(tta, str) or tta is None else tta
    out = check_output_dir(out)
    model = predictor_for(run_path, runtime)
    paths, skipped = find_images(inputs, model.bands)
    if not paths:
        raise BadArgument(f"No images found in {', '.join(map(str, inputs))} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}"
                          f"{'; or folders holding a file per band ' + ', '.join(model.bands) if model.bands else ''}).")
    shown = display_bands_of(model.bands or RGB, display_bands or model.display_bands)
    tile = model.crop if tile is None else (tile or None)
    inference = Inference(model, tile, overlap, tta, batch_size, model.scale)
    named = list(zip(paths, output_names(paths)))
    per_call = 1 if tile else batch_size  # tiles: one image at a time, its tiles batched
    chunks = [named[i:i + per_call] for i in range(0, len(named), per_call)]
    if engine == "ray":
        ray = ray or RayOptions()
        ray.check()  # Ray installed, options sane: before anything is written
        job = {"run": str(run_path), "cwd": os.getcwd(), "runtime": runtime, "tile": tile, "overlap": overlap, "tta": tta,
               "batch_size": batch_size, "threshold": threshold, "shown": shown}
        with ray_session(ray) as starting:  # joined (or refused) before anything is written
            _make_output_dirs(out)
            written, seconds = predict_on_ray(ray, job, chunks, out)
        seconds = {**seconds, "starting ray": round(starting, 3)}
    else:
        _make_output_dirs(out)
        written, seconds = _predict_here(inference, chunks, out, threshold, shown)
    order = {str(p): i for i, p in enumerate(paths)}  # input order, whichever finished first
    written.results.sort(key=lambda r: order[r["file"]])
    written.failed.sort(key=lambda r: order[r["file"]])
    summary = {**model.source, "size": model.size, **inference.describe(), "threshold": threshold,
               "predicted": len(written.results), "failed": written.failed,
               "skipped_non_images": [str(p) for p in skipped], "engine": engine, "seconds": seconds,
               "images": written.results}
    if written.full:
        summary["stopped"] = f"the disk filled up ({written.full.strerror or written.full})"
    index = out / "predictions.json"
    try:
        write_text(index, json.dumps(summary, indent=2) + "\n")
    except OSError as e:
        listed = f"and {index} could not be written ({e.strerror or e})"
        if not written.full:
            raise OutputError(f"{index}: cannot be written ({e.strerror or e}); the {len(written.results)} masks and "
                              f"overlays are complete in {out}. Free space (or give another --out) and run again.") from None
    else:
        listed = f"listed in {index}"
    if written.full:
        raise OutputError(
            f"{out}: {summary['stopped']} after {len(written.results)} of {len(paths)} images; their masks and overlays "
            f"are complete there, {listed}, and no partial file was left. Free space (or give another --out) and "
            "run again.")
    return summary


def _make_output_dirs(out: Path) -> None:
    """The output folders, with no index of an earlier run left in them: a rerun stopped midway
    must not leave a predictions.json describing masks it has since replaced."""
    make_output_dir(out / "masks")
    make_output_dir(out / "overlays")
    (out / "predictions.json").unlink(missing_ok=True)


def _predict_here(inference: Inference, chunks: list, out: Path, threshold: float, shown):
    """The local engine: (what was written, seconds per stage) of predicting `chunks`."""
    classes, per_call = inference.predictor.classes, len(chunks[0])
    written = Written()
    clock = Stopwatch()
    writing = deque()  # (path, future) of outputs being written, oldest first
    tiles = GrowingBar("Predicting tiles") if inference.tile else None  # for tiles, the bar counts tiles, not images

    # Files are decoded and outputs encoded in threads while the model runs (Pillow's decoders and
    # zlib let go of the GIL); at most a few batches are decoded ahead or wait to be written, so
    # memory stays bounded however many (or large) the images.
    with ThreadPoolExecutor() as pool, large_images_allowed(bool(inference.tile)), contextlib.ExitStack() as stack:
        if tiles is not None:
            stack.callback(tiles.close)
        bands = inference.predictor.bands
        decoded = _ahead(pool, lambda chunk: [(p, s, read_input(p, bands)) for p, s in chunk], chunks, 2)
        if tiles is None:
            decoded = progress(decoded, sum(map(len, chunks)), "Predicting", size=len)
        for chunk in clock.timed(decoded, "waiting for decoded images"):
            if written.full:
                break
            good = [(p, s, image) for p, s, image in chunk if not isinstance(image, DataError)]
            written.failed += [failure(p, image.problem.message) for p, _, image in chunk if isinstance(image, DataError)]
            if not good:
                continue
            labels = chunk_labels(inference, [image.pixels for _, _, image in good], threshold, clock, tiles)
            writing.extend((path, pool.submit(write_outputs, path, stem, image, mask, classes, out, shown))
                           for (path, stem, image), mask in zip(good, labels))
            with clock("waiting for masks and overlays to be written"):
                while len(writing) > 2 * per_call:
                    written.add(*_result_of(writing.popleft()))
        with clock("waiting for masks and overlays to be written"):
            while writing:
                written.add(*_result_of(writing.popleft()))
    return written, clock.summary()


def _result_of(item):
    path, future = item
    return path, future.result


def _ahead(pool, fn, items, ahead: int):
    """`pool.map(fn, items)` in order, with at most `ahead` results computed before they are asked
    for (`Executor.map` would start every item at once and hold all the results)."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
