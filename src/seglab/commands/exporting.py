"""`seglab export`: a run's best model as ONNX, a TensorFlow SavedModel or LiteRT, checked against Keras.

The exported graph is a float32 copy of model.keras (a model trained in mixed precision too),
with a dynamic height and width when the model is fully convolutional, and an optional head that
turns logits into probabilities or labels. The folder is written under a temporary name, checked
(the parity check runs the file in its own runtime on the run's validation images), and only then
renamed into place: a folder named `export/<format>` holding `export.json` is always complete.
"""
from __future__ import annotations

import contextlib
import datetime
import glob
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np

from seglab.core.decision import OUTPUTS, decide, probabilities_of
from seglab.core.errors import BadArgument, OutputError, ParityFailed
from seglab.core.machine import describe
from seglab.data.classes import ClassSpec
from seglab.deploy.deployable import (
    deployable,
    float32_reference,
    holds_keras_hub,
    stride,
)
from seglab.deploy.graph_rewrites import (
    float32_nodes,
    split_concat_conv,
    static_transposed_crops,
)
from seglab.inference.runtimes import (
    EXPORT_JSON,
    FORMATS,
    PREDICTORS,
    KerasPredictor,
    export_is_current,
    is_export,
    open_predictor,
    require_runtime,
    run_export_folder,
)
from seglab.runs import Run, check_output_dir, sha256
from seglab.runs.config import TrainConfig

KERAS_FORMATS = {"onnx": "onnx", "saved_model": "tf_saved_model", "litert": "litert"}
PARITY_IMAGES = 32
MIN_AGREEMENT = 0.999
MIN_AGREEMENT_INT8 = 0.99  # int8 rounds every activation: a pixel on a class boundary may flip
CALIBRATION_IMAGES = 64


def run_source(config: TrainConfig, why: str):
    """The run's dataset, or an error saying what needs it."""
    try:
        return config.open_source()
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise BadArgument(f"{why} needs the run's dataset, which cannot be read: {e} "
                         "Put the dataset back, or export with --no-verify.") from None


def split_images(source, config: TrainConfig, split: str = "val", count: int = PARITY_IMAGES) -> np.ndarray:
    """Up to `count` images of `split` at the model's size (float32 0..255)."""
    from seglab.data.pipeline import make_dataset

    images = []
    for batch, _ in make_dataset(source, split, size=config.recipe.size, batch_size=8, shuffle=False, validate_first=False,
                                 crop=config.recipe.crop, scale=config.recipe.scale):
        images.append(batch.numpy())
        if sum(len(b) for b in images) >= count:
            break
    return np.concatenate(images)[:count]


def validation_miou(model, source, config: TrainConfig, classes: ClassSpec) -> float:
    """Dataset-level mIoU of `model` (a Predictor) on the whole validation split at the model's size."""
    from seglab.data.pipeline import make_dataset
    from seglab.scoring.metrics import confusion_matrix, mean_iou

    k = classes.num_classes
    total = np.zeros((k, k), np.int64)
    for images, truths in make_dataset(source, "val", size=config.recipe.size, batch_size=8, validate_first=False,
                                       crop=config.recipe.crop, scale=config.recipe.scale):
        images = images.numpy()
        predicted = np.stack(model.labels(images, [images.shape[1:3]] * len(images)))
        total += confusion_matrix(truths.numpy(), predicted, k, classes.ignore_index)
    return round(float(mean_iou(total)), 6)


class _Calibration:
    """ONNX Runtime's calibration reader over a stack of images, one batch of 8 at a time."""

    def __init__(self, images: np.ndarray, input_name: str):
        self.batches = iter([{input_name: images[i:i + 8]} for i in range(0, len(images), 8)])

    def get_next(self):
        return next(self.batches, None)


def reduce_range_for(cpu_flags: set[str]) -> bool:
    """Whether int8 weights keep to 7 bits on this CPU. With VNNI (`avx512_vnni`, `avx_vnni`) ONNX
    Runtime multiplies uint8 by int8 into 32-bit sums directly; without it, its AVX2 and AVX-512
    kernels pair products into saturating 16-bit sums (VPMADDUBSW), where two large 8-bit products
    overflow: ONNX Runtime's quantization guide answers that with 7-bit weights (`reduce_range`)."""
    return not cpu_flags & {"avx512_vnni", "avx_vnni"}


def quantize_int8(model_file: Path, images: np.ndarray) -> dict:
    """Replace `model_file` by its int8 form: ONNX Runtime static quantization (QDQ, unsigned
    8-bit activations and signed 8-bit per-channel weights, the pairing ORT runs fastest on x86;
    7-bit weights on CPUs without VNNI, `reduce_range_for`), calibrated with min/max on `images`.
    The CPU it was calibrated for is recorded: the file runs anywhere, fastest and safest there."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    machine = describe()
    reduce_range = reduce_range_for(set(machine["cpu_flags"]))
    fp32 = model_file.with_name("model.fp32.onnx")
    os.replace(model_file, fp32)
    try:
        # ONNX shape inference and fusions first, as ONNX Runtime advises (its symbolic pass would need sympy)
        quant_pre_process(str(fp32), str(fp32), skip_symbolic_shape=True)
        quantize_static(str(fp32), str(model_file), _Calibration(images, "image"), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=float32_nodes(fp32))
    finally:
        fp32.unlink(missing_ok=True)
    return {"type": "int8", "method": "onnxruntime static, QDQ, min/max calibration", "per_channel": True,
            "activations": "uint8", "weights": "int8 (7-bit range)" if reduce_range else "int8",
            "reduce_range": reduce_range, "for_cpu": machine, "calibration_images": int(len(images)),
            "float32": "the first convolution and the logits layer"}


def parity(reference: keras.Model, exported, images: np.ndarray, batch_size: int = 8) -> dict:
    """Run both on `images`; the largest difference in what the export returns (logits or
    probabilities) and the share of pixels whose label agrees (threshold 0.5 for one logit)."""
    expected, got = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        expected.append(np.asarray(reference.predict_on_batch(batch), np.float32))
        got.append(np.asarray(exported(batch)))
    expected, got = np.concatenate(expected), np.concatenate(got)
    result = {"images": int(len(images)), "compared": exported.output}
    if exported.output == "labels":
        labels = got if got.ndim == 3 else got[..., 0]
    else:
        target = expected if exported.output == "logits" else probabilities_of(expected)
        result["max_abs_diff"] = float(np.max(np.abs(got.astype(np.float32) - target)))
        labels = decide(got, exported.output)
    result["label_agreement"] = float(np.mean(labels.astype(np.int64) == decide(expected, "logits")))
    return result


def export(run_path, format: str, out=None, output: str = "logits", verify: bool = True,
           min_agreement: float | None = None, quantize: str | None = None) -> dict:
    """Export the run's best model to `out` (default RUN/export/<format>, or onnx-int8 with
    `quantize='int8'`); return export.json's content.

    Raises ParityFailed (and leaves nothing at `out`) when under `min_agreement` (default 0.999,
    0.99 for int8) of the validation pixels get the same label from the exported file as from Keras."""
    min_agreement = _checked_options(format, output, min_agreement, quantize)
    run = Run.open(run_path)
    config, classes = run.config, run.classes
    out = Path(out) if out is not None else run.path / "export" / (f"{format}-{quantize}" if quantize else format)
    _check_replaceable(check_output_dir(out))
    model = run.load_model(compile=False)
    checksum = sha256(run.model_path)
    source = run_source(config, "The parity check" if verify else "Calibrating int8") if (verify or quantize) else None
    images = split_images(source, config) if verify else None

    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep_killed(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model_file, graph, dynamic = write_graph(model, format, tmp, output, int8=bool(quantize))
        quantization = quantize_int8(model_file, split_images(source, config, "train", CALIBRATION_IMAGES)) if quantize else None
        classes.save(tmp / "classes.json")
        exported = PREDICTORS[format](model_file, classes, config.recipe.size, output)
        if verify:
            reference, kind = float32_reference(model)
            check = {"verified": True, "reference": kind, **parity(reference, exported, images), "min_agreement": min_agreement}
            if quantize:  # what int8 costs in the score, on the whole validation split
                keras_model = KerasPredictor(model, classes, config.recipe.size)
                check["val_miou"] = {"keras_fp32": validation_miou(keras_model, source, config, classes),
                                     "exported": validation_miou(exported, source, config, classes)}
        else:
            check = {"verified": False, "reason": "--no-verify"}
        meta = _metadata(run, config, classes, format, output, graph, model.output_shape[-1] == 1, dynamic,
                         stride(model), checksum, check)
        meta["quantization"] = quantization
        (tmp / EXPORT_JSON).write_text(json.dumps(meta, indent=2) + "\n")
        if verify and check["label_agreement"] < min_agreement:
            raise ParityFailed(
                f"{format} export of {run.model_path} disagrees with Keras: {check['label_agreement']:.4%} of "
                f"{check['images']} validation images' pixels get the same label, under the {min_agreement:.2%} "
                f"required (largest difference {check.get('max_abs_diff', 'n/a')}). Nothing was written to {out}.")
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _checked_options(format: str, output: str, min_agreement: float | None, quantize: str | None) -> float:
    """Refuse what cannot be exported before anything is read; return the label agreement required."""
    if quantize not in (None, "int8"):
        raise BadArgument(f"Unknown quantization {quantize!r}: use int8 (ONNX only).")
    if quantize and format != "onnx":
        raise BadArgument(f"--quantize int8 is for --format onnx (ONNX Runtime static quantization); got {format}.")
    if min_agreement is None:
        min_agreement = MIN_AGREEMENT_INT8 if quantize else MIN_AGREEMENT
    if format not in FORMATS:
        raise BadArgument(f"Unknown format {format!r}. Use one of: {', '.join(FORMATS)}.")
    if output not in OUTPUTS:
        raise BadArgument(f"Unknown output {output!r}. Use one of: {', '.join(OUTPUTS)}.")
    if not 0 <= min_agreement <= 1:
        raise BadArgument(f"min_agreement must be between 0 and 1; got {min_agreement}.")
    require_runtime(format)
    if format == "onnx" and importlib.util.find_spec("tf2onnx") is None:
        raise BadArgument("Exporting to ONNX needs tf2onnx: pip install 'seglab[onnx]'.")
    return min_agreement


def predictor_for(path, runtime: str | None = None):
    """`open_predictor(path, runtime)`, exporting the run first (with the parity check) where its
    export for `runtime` is missing or was made from another model.keras than the run's current one."""
    run = path if isinstance(path, Run) else None
    if runtime not in (None, "keras") and (run is not None or not is_export(path)):
        run = run or Run.open(path)
        if not export_is_current(run, runtime):
            if not run.model_path.is_file():
                run.load_model()  # the error that says the run has no finished epoch
            export(run.path, runtime, run_export_folder(run, runtime))
    return open_predictor(run or path, runtime)


def _check_replaceable(out: Path) -> None:
    """An existing folder is replaced only when it is an export seglab wrote: an export.json of
    seglab's schema, and nothing beside it but export files. Anything else is kept, and named."""
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not entries:
        return
    ours = {EXPORT_JSON, "classes.json", *(model_file for model_file, _, _ in FORMATS.values())}
    others = [name for name in entries if name not in ours]
    if not others and _seglab_export_json(out / EXPORT_JSON):
        return
    shown = others or entries
    listed = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
    what = (f"files that are not part of a seglab export ({listed})" if others
            else f"{listed}, without the export.json seglab writes")
    raise OutputError(f"--out {out} holds {what}; nothing was changed. Give a new or empty folder, or remove those files.")


def _seglab_export_json(path: Path) -> bool:
    """Whether `path` reads as an export.json seglab wrote (its format, input and output sections)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and meta.get("format") in FORMATS and isinstance(meta.get("input"), dict)
            and isinstance(meta.get("output"), dict))


def _sweep_killed(out: Path) -> None:
    """Clear what exports of `out` killed midway left beside it: their unfinished `.tmp-PID`
    folders go; an `.old-PID` (the previous export, moved aside just before the new one was to
    take its place) is put back where no export stands now, else goes. Only folders whose process
    is gone on this machine are touched (an export running elsewhere on shared storage keeps its own)."""
    for path in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, pid = path.name.removeprefix(f".{out.name}.").partition("-")
        if kind not in ("tmp", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.replace(path, out)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished folder into place; an older export there goes only once the new one is in."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_graph(model: keras.Model, format: str, folder: Path, output: str = "logits",
                int8: bool = False) -> tuple[Path, keras.Model, bool]:
    """Write `deployable(model, output)` into `folder` as `format` (for ONNX, with the rewrites of
    seglab.deploy.graph_rewrites; `int8`: ready to be quantized); return the model file, the exported
    Keras graph and whether its height and width are dynamic."""
    subpixel = ("all" if int8 else "free") if format == "onnx" else None  # measured on ONNX Runtime only
    graph, dynamic = deployable(model, output, subpixel)
    path = Path(folder) / FORMATS[format][0]
    _write_graph(graph, format, path)
    if format == "onnx":
        if dynamic:  # a fixed-size graph's crops are constants already
            static_transposed_crops(path, stride(model))
        split_concat_conv(path)
    return path, graph, dynamic


def _write_graph(graph: keras.Model, format: str, path: Path) -> None:
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # tf2onnx 1.17's reshape optimizer folds the MiT attention's reshapes wrongly (keeping the
    # flattened batch x tokens dimension as the batch), and ONNX Runtime then fails on any batch.
    skipped = ("reshape_optimizer",) if format == "onnx" and holds_keras_hub(graph) else ()
    try:
        with warnings.catch_warnings(), _tf2onnx_without(skipped):
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's numpy 2 shim asks for np.object
            graph.export(str(path), format=KERAS_FORMATS[format], verbose=False)
    except Exception as e:  # noqa: BLE001  (converters raise anything; the message is what matters)
        text = str(e).strip().splitlines()
        raise BadArgument(f"Keras could not export the model to {format} ({type(e).__name__}: "
                         f"{text[0][:200] if text else 'no detail'}).") from None


@contextlib.contextmanager
def _tf2onnx_without(optimizers: tuple[str, ...]):
    """While inside, tf2onnx converts without the named graph optimizers. Keras's ONNX export
    calls tf2onnx.convert.from_function, which takes no `optimizers` and applies the module's
    whole table (tf2onnx.optimizer._optimizers, read at each conversion)."""
    if not optimizers:
        yield
        return
    from tf2onnx import optimizer

    table = optimizer._optimizers
    optimizer._optimizers = type(table)((name, o) for name, o in table.items() if name not in optimizers)
    try:
        yield
    finally:
        optimizer._optimizers = table


def _channels(config) -> dict:
    """What the model's input channels are: 8-bit RGB in 0..255, or the named bands' raw values
    (the model stretches them itself, seglab.models.inputs)."""
    if config.data.bands is None:
        return {"channels": "RGB", "range": [0, 255], "bands": None}
    return {"channels": len(config.data.bands), "range": "the bands' own values", "bands": list(config.data.bands)}


def _metadata(run, config, classes, format, output, graph, binary, dynamic, step, checksum, check) -> dict:
    height, width = (None, None) if dynamic else graph.input_shape[1:3]
    shape = list(graph.output_shape)
    return {
        "format": format,
        "file": FORMATS[format][0],
        "input": {"name": "image", "layout": "NHWC", "dtype": "float32", **_channels(config),
                  "display_bands": list(config.setup.display_bands) if config.setup.display_bands else None,
                  "height": height, "width": width, "multiple_of": step if dynamic else None,
                  "size": config.recipe.size, "crop": config.recipe.crop, "scale": config.recipe.scale},
        "output": {"kind": output, "shape": shape, "dtype": "int32" if output == "labels" else "float32",
                   "classes": list(classes.names),
                   # labels of a one-logit model are decided inside the graph, at this threshold
                   "binary_threshold": 0.5 if output == "labels" and binary else None},
        "source": {"run": str(run.path.resolve()), "checkpoint": run.model_path.name, "sha256": checksum,
                   "model": config.recipe.model, "best_epoch": run.state.get("best_epoch")},
        "versions": _versions(format),
        "parity": check,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _versions(format: str) -> dict:
    packages = {"seglab": "seglab", "keras": "keras", "tensorflow": "tensorflow",
                "onnx": "onnxruntime", "litert": "ai-edge-litert"}
    wanted = ["seglab", "keras", "tensorflow"] + ([format] if format in ("onnx", "litert") else [])
    if format == "onnx":
        wanted.append("tf2onnx")
        packages["tf2onnx"] = "tf2onnx"
    versions = {}
    for key in wanted:
        try:
            versions[packages[key]] = importlib.metadata.version(packages[key])
        except importlib.metadata.PackageNotFoundError:
            versions[packages[key]] = None
    return versions
