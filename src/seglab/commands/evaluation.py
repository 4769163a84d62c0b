"""`seglab evaluate`: score a run's best model on a split; metrics.json, a confusion-matrix plot and
mosaics of the best and worst images by per-image mIoU."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from seglab.commands.exporting import predictor_for
from seglab.core.errors import BadArgument
from seglab.data.bands import composite, display_bands
from seglab.data.classes import ClassSpec
from seglab.data.pipeline import make_dataset, model_input, read_pair, read_raster_pair
from seglab.inference.tiling import TTA, Inference
from seglab.report.mosaic import mosaic
from seglab.runs import Run, atomic_path, check_output_dir, make_output_dir, write_text
from seglab.runs.config import TrainConfig
from seglab.scoring.metrics import confusion_matrix, mean_iou, summarize

MOSAIC_IMAGES = 6


def _source(config: TrainConfig, data: str | None, classes: ClassSpec, format: str | None, view: str | None):
    source = config.open_source(data, format, view)
    if source.classes.num_classes != classes.num_classes:
        raise BadArgument(f"{source.root} has {source.classes.num_classes} classes ({', '.join(source.classes.names)}) but the "
                         f"model was trained on {classes.num_classes} ({', '.join(classes.names)}). Give data with the run's classes.")
    return source


def _at_model_size(inference: Inference, source, split, batch_size):
    """Yield (images [B, S, S, 3], truth [B, S, S], prediction [B, S, S]) at the model's input size:
    whole images resized to it, or, for a run trained on crops, their centre crops (as training
    scores them)."""
    model = inference.predictor
    for images, truths in make_dataset(source, split, size=model.size, batch_size=batch_size, crop=model.crop,
                                       scale=model.scale):
        images = images.numpy()
        yield images, truths.numpy(), np.stack(inference.resized_labels(images, [images.shape[1:3]] * len(images)))


def _at_full_resolution(inference: Inference, source, split):
    """Yield one image at a time at its original size: predicted by sliding tiles, or from the
    whole image resized to the model's size, its scores resized bilinearly back."""
    for pair in source.split(split):
        if source.bands.rgb:
            image, truth = read_pair(pair.image, pair.mask, source.encoding, pair.image_region, pair.mask_region)
        else:
            image, truth = read_raster_pair(pair.image, pair.mask, source.encoding, source.bands, pair.mask_region)
        if inference.tile:
            prediction = inference.tiled_labels(image)
        else:
            resized = np.asarray(model_input(image[None], inference.predictor.size, image.dtype.name))
            prediction = inference.resized_labels(resized, [truth.shape])[0]
        yield image[None], truth[None], prediction[None]


def output_folder(run: Run, data: str | None) -> Path:
    """Where evaluate writes by default: the run folder for the run's own data, else a folder
    named after the other dataset, so that scoring two datasets never overwrites one with the other."""
    if data is None:
        return run.path
    name = re.sub(r"[^\w.-]", "_", Path(str(data)).resolve().name) or "data"
    return run.path / f"eval-{name}"


def evaluate(run_path, data: str | None = None, split: str = "val", full_res: bool = False,
             batch_size: int | None = None, *, format: str | None = None, view: str | None = None, out=None,
             runtime: str | None = None, tile: int | None = None, overlap: float = 0.25,
             tta: str | TTA | None = None) -> dict:
    """Score the run's best model (model.keras, on `runtime`: Keras by default, or an export of it)
    on `split` of its own dataset, or of `data` (read as `format` with `view` when given); write
    metrics.json (or metrics_<split>[_full][_tile<N>][_tta-<mode>].json for other splits and
    ways of predicting), confusion_matrix.png and best/worst mosaics into `out` (default:
    `output_folder`); return the metrics.

    By default images are scored at the model's size (centre crops for a run trained on crops);
    `full_res` resizes predictions to each image's own size; `tile` (implies `full_res`)
    predicts by sliding tiles overlapping by `overlap`; `tta` averages over augmented copies."""
    run = Run.open(run_path)
    config, classes = run.config, run.classes
    out = check_output_dir(out if out is not None else output_folder(run, data))
    tta = TTA.parse(tta) if isinstance(tta, str) or tta is None else tta
    model = predictor_for(run, runtime)  # the opened run: config.yaml read once
    full_res = full_res or bool(tile)
    inference = Inference(model, tile or None, overlap, tta, batch_size or config.recipe.batch_size, model.scale)
    source = _source(config, data, classes, format, view)
    k = classes.num_classes
    shown = display_bands(source.bands.names, config.setup.display_bands)
    batches = (_at_full_resolution(inference, source, split) if full_res
               else _at_model_size(inference, source, split, batch_size or config.recipe.batch_size))

    total = np.zeros((k, k), np.int64)
    per_image, scored = [], []  # scored: (image mIoU, index, image, truth, prediction) at model size
    for images, truths, predictions in batches:
        confusions = np.stack([confusion_matrix(t, p, k, classes.ignore_index) for t, p in zip(truths, predictions)])
        total += confusions.sum(axis=0)
        for image, truth, prediction, confusion in zip(images, truths, predictions, confusions):
            per_image.append(confusion)
            score = mean_iou(confusion)
            if not math.isnan(score):  # the image number breaks ties, so arrays are never compared
                image, truth_small, prediction_small = _thumbnail(image, truth, prediction, config.recipe.size)
                picture = composite(image, shown, source.bands.rgb)
                scored.append((score, len(per_image), picture, truth_small, prediction_small))
        scored = _keep_extremes(scored)

    metrics = summarize(total, classes.names, np.stack(per_image) if per_image else None)
    metrics |= {"split": split, "data": str(source.root), "full_res": full_res, "size": config.recipe.size,
                "model": config.recipe.model, "checkpoint": run.model_path.name, "runtime": model.runtime,
                **inference.describe(), "crop": config.recipe.crop, "class_names": list(classes.names)}
    suffix = _suffix(split, full_res, inference)
    make_output_dir(out)
    write_text(out / f"metrics{suffix}.json", json.dumps(metrics, indent=2) + "\n")
    _plot_confusion(total, classes, out / f"confusion_matrix{suffix}.png")
    ranked = sorted(scored)
    for name, chosen in (("worst", ranked[:MOSAIC_IMAGES]), ("best", ranked[::-1][:MOSAIC_IMAGES])):
        if chosen:
            picture = mosaic(np.stack([c[2] for c in chosen]), np.stack([c[3] for c in chosen]), np.stack([c[4] for c in chosen]),
                             classes, title=f"{name} images by per-image mIoU", captions=[f"mIoU {c[0]:.3f}" for c in chosen])
            with atomic_path(out / f"{name}{suffix}.png") as tmp:
                picture.save(tmp)
    return metrics


def _suffix(split: str, full_res: bool, inference: Inference) -> str:
    """'' for the default scoring (val, model size), else what differs: _val_full_tile256_tta-flip."""
    parts = [split] + ["full"] * full_res + [f"tile{inference.tile}"] * bool(inference.tile)
    if inference.tta:
        parts.append("tta-" + re.sub(r"[^\w.,-]", "_", str(inference.tta)))
    return "" if parts == ["val"] else "_" + "_".join(parts)


def _thumbnail(image, truth, prediction, size):
    """Full-resolution samples are shrunk to the model size for the mosaics (nearest for labels)."""
    if truth.shape == (size, size):
        return image, truth, prediction
    shrink = lambda a, method: tf.image.resize(a[..., None] if a.ndim == 2 else a, (size, size), method=method).numpy()  # noqa: E731
    return shrink(image, "bilinear"), shrink(truth, "nearest")[..., 0], shrink(prediction, "nearest")[..., 0]


def _keep_extremes(scored):
    """The MOSAIC_IMAGES lowest and highest scores: memory stays flat however large the split."""
    if len(scored) <= 2 * MOSAIC_IMAGES:
        return scored
    ranked = sorted(scored, key=lambda s: (s[0], s[1]))
    return ranked[:MOSAIC_IMAGES] + ranked[-MOSAIC_IMAGES:]


def _plot_confusion(confusion: np.ndarray, classes: ClassSpec, path: Path) -> None:
    """Rows (truth) normalised to 1, with the pixel counts written in."""
    from matplotlib.figure import Figure

    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    k = len(classes.names)
    fig = Figure(figsize=(1.2 + 0.6 * k, 1 + 0.55 * k), layout="constrained")
    ax = fig.subplots()
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    # class names are drawn as plain text: "$x^$" is a name, not mathtext for matplotlib to parse
    ax.set_xticks(range(k), classes.names, rotation=45, ha="right", parse_math=False)
    ax.set_yticks(range(k), classes.names, parse_math=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for (t, p), value in np.ndenumerate(normalised):
            ax.text(p, t, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.5 else "black")
    ax.set_title("confusion matrix (rows sum to 1)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
