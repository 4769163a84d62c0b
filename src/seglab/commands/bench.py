"""Training and inference speed of seglab's models, timed as `../shared/reference/bench_seed.py`
times the tutorials' models, so the two can be run alternately and compared by ratio.

Training: `model.fit` over seglab's input pipeline reading a dataset (decode, resize, batch), with
seglab's loss and metrics, after a 2-step warm-up (tracing, pipeline start). Inference: a
Predictor (Keras's is `predict_on_batch`) on a fixed batch for at least 5 s. One JSON-ready dict per call.
"""
from __future__ import annotations

import resource
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from seglab.core.errors import BadArgument
from seglab.core.machine import describe
from seglab.core.precision import precision as policy
from seglab.core.precision import resolve_precision
from seglab.data import open_source
from seglab.data.bands import choose_bands
from seglab.data.pipeline import make_dataset
from seglab.inference.runtimes import KerasPredictor
from seglab.models import build_model
from seglab.models.flops import forward_flops
from seglab.models.inputs import ImageInput
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics

MODES = ("train", "predict", "all")


def _peak_rss_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def time_training(model, dataset, steps: int, batch_size: int) -> float:
    """Images/s of `model.fit` over `steps` batches of a repeating dataset, after a warm-up."""
    model.fit(dataset, epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)  # the pipeline shuffles
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def time_inference(predict, images, min_seconds: float = 5.0) -> float:
    """Images/s of `predict(images)` (a Predictor's call) over at least `min_seconds`."""
    predict(images)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds or calls < 3:
        predict(images)
        calls += 1
    return calls * len(images) / (time.perf_counter() - start)


def exported(model, classes, runtime: str, folder, calibration=None):
    """`model` exported for `runtime` into `folder` (logits, float32; int8 when `calibration`
    images are given, ONNX only), opened in that runtime."""
    from seglab.commands.exporting import quantize_int8, write_graph
    from seglab.inference.runtimes import PREDICTORS, require_runtime

    require_runtime(runtime)
    path, _, _ = write_graph(model, runtime, folder, int8=calibration is not None)
    if calibration is not None:
        quantize_int8(path, calibration)
    return PREDICTORS[runtime](path, classes, model.input_shape[1], "logits")


def bench(mode: str, model_name: str, data, size: int, batch_size: int, steps: int = 10, jit: bool = False,
          seed: int = 0, precision: str = "auto", runtime: str = "keras", quantize: str | None = None,
          **model_options) -> dict:
    """Time `model_name` on the dataset at `data` (any format `seglab check` reads), in the
    precision `seglab train` would use (see seglab.core.precision). Inference runs on `runtime`:
    Keras, or the model exported (float32) and run by ONNX Runtime, LiteRT or TensorFlow."""
    if mode not in MODES:
        raise BadArgument(f"Unknown bench mode {mode!r}. Use one of: {', '.join(MODES)}.")
    if runtime != "keras" and mode != "predict":
        raise BadArgument(f"--runtime {runtime} times inference only: use `seglab bench predict`.")
    if quantize not in (None, "int8") or (quantize and runtime != "onnx"):
        raise BadArgument("--quantize takes int8, with --runtime onnx.")
    precision = resolve_precision(precision)
    keras.utils.set_random_seed(seed)
    source = open_source(data)
    source.bands = choose_bands(source)  # every band of the images: the channels the model is timed with
    num_classes = source.classes.num_classes
    with policy(precision):
        model = build_model(model_name, num_classes, size, ImageInput(source.bands.channels), **model_options)
        model.compile(optimizer="adam", loss=make_loss("ce", num_classes), metrics=segmentation_metrics(num_classes),
                      jit_compile=jit)
    fwd = forward_flops(model)
    gflop = (lambda per_second, passes=1: None) if fwd is None else (  # None: a model with blocks not counted
        lambda per_second, passes=1: round(passes * fwd / 1e9 * per_second, 1))
    result = {"impl": "seglab", "mode": mode, "model": model_name, "size": size, "batch": batch_size, "jit": jit,
              "precision": precision, "fwd_gflop": fwd and round(fwd / 1e9, 3)}
    if mode in ("train", "all"):
        split = "train" if "train" in source.splits else next(iter(source.splits))
        dataset = make_dataset(source, split, size=size, batch_size=batch_size, repeat=True, seed=seed)
        train_img_s = time_training(model, dataset, steps, batch_size)
        result |= {"train_img_s": round(train_img_s, 2), "train_gflop_s": gflop(train_img_s, passes=3)}
    if mode in ("predict", "all"):
        images = np.random.default_rng(seed).uniform(0, 255, (batch_size, size, size, source.bands.channels)).astype(np.float32)
        with tempfile.TemporaryDirectory(prefix="seglab-bench-") as folder:
            calibration = _images(source, size, 32) if quantize else None
            predict = (KerasPredictor(model, source.classes, size) if runtime == "keras"
                       else exported(model, source.classes, runtime, folder, calibration))
            infer_img_s = time_inference(predict, images)
        result |= {"runtime": runtime, "quantize": quantize, "infer_img_s": round(infer_img_s, 2), "infer_gflop_s": gflop(infer_img_s)}
        if runtime != "keras":
            result["precision"] = quantize or "float32"  # exported graphs are float32 copies, or int8
    return result | {"peak_rss_mib": _peak_rss_mib(), "tensorflow": tf.__version__, "keras": keras.__version__, **describe()}


def _images(source, size: int, count: int) -> np.ndarray:
    """`count` images of the dataset at `size` (the int8 calibration set)."""
    split = "train" if "train" in source.splits else next(iter(source.splits))
    batches = make_dataset(source, split, size=size, batch_size=count, shuffle=False, validate_first=False)
    return next(iter(batches))[0].numpy()
