"""What runs a model for predict, evaluate and bench: Keras, or an exported file in its own runtime.

A `Predictor` takes raw RGB batches (float32 [B, H, W, 3], 0..255: every seglab model carries
its own preprocessing), or the raw values of the bands it names (`bands`, [B, H, W, C]), and gives labels at any size asked for. `open_predictor` opens either a
run folder (Keras, or an export of it made on first use) or a folder `seglab export` wrote.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from seglab.core.decision import OUTPUTS, decide
from seglab.core.errors import BadArgument, NotFound
from seglab.data.classes import ClassSpec
from seglab.runs import Run, sha256

RUNTIMES = ("keras", "onnx", "litert", "saved_model")
# format -> (the model file in an export folder, the packages its runtime needs, the extra that has them)
FORMATS = {
    "onnx": ("model.onnx", ("onnxruntime",), "onnx"),
    "saved_model": ("saved_model", (), None),
    "litert": ("model.tflite", ("ai_edge_litert",), "litert"),
}
EXPORT_JSON = "export.json"
FLOAT_TENSORS = ("tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)")  # ONNX Runtime's names
LITERT_NOISE = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\r?$")


def cores() -> int:
    """How many threads a runtime in this process should use: OMP_NUM_THREADS where it is set (Ray
    sets it to each worker's share of the CPUs, as seglab's Ray engine does for its actors), else
    the cores this process may run on (its CPU affinity: `taskset`, a container's cpuset)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:  # unset, 0 or not a number: ignored, as OpenMP does
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def require_runtime(format: str) -> None:
    """A one-line error naming the pip install when the runtime for `format` is missing."""
    if format not in FORMATS:
        raise BadArgument(f"Unknown format {format!r}. Use one of: {', '.join(FORMATS)}.")
    packages, extra = FORMATS[format][1], FORMATS[format][2]
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise BadArgument(f"The {format} runtime needs {', '.join(missing)}: pip install 'seglab[{extra}]'.")


class Predictor:
    """A model behind one call: `__call__(batch)` returns what the model returns (`output`);
    `labels` turns that into class indices at the sizes asked for.

    `size` is the square side images are resized to before the model (the run's training size);
    `multiple` the model's stride: the sizes it can take, where it takes more than `size`
    (`any_size`), are multiples of it.
    """

    runtime = "keras"

    def __init__(self, classes: ClassSpec, size: int, output: str = "logits", source: dict | None = None,
                 multiple: int = 1, dynamic: bool = False):
        if output not in OUTPUTS:
            raise BadArgument(f"Unknown output {output!r}. Use one of: {', '.join(OUTPUTS)}.")
        self.classes, self.size, self.output = classes, int(size), output
        self.multiple, self.dynamic = max(1, int(multiple)), dynamic
        self.crop, self.scale = None, 1.0  # a run trained on crops (of images resized by scale): see open_predictor
        # The bands it takes by name (None: 8-bit RGB), and those shown in overlays (None: the default choice)
        self.bands: tuple[str, ...] | None = None
        self.display_bands: tuple[str, ...] | None = None
        self.source = {"runtime": self.runtime, **(source or {})}  # where the model came from, for output files

    def any_size(self) -> bool:
        """Whether the model takes inputs of other sizes than `size` (multiples of `multiple`)."""
        return self.dynamic

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def output_signature(self) -> tuple[tuple, bool]:
        """(shape, floating) of what the model file returns, read from the file itself (None for a
        dimension it leaves open): what `open_export` checks export.json and classes.json against."""
        raise NotImplementedError

    def labels(self, batch: np.ndarray, shapes, threshold: float = 0.5) -> list[np.ndarray]:
        """Class indices (uint8 [h, w] each) for `batch`, resized to `shapes` [(h, w), ...]."""
        return self.to_labels(self(batch), shapes, threshold)

    def to_labels(self, outputs: np.ndarray, shapes, threshold: float = 0.5) -> list[np.ndarray]:
        """What the model returned for a batch, as class indices resized to `shapes`: scores
        bilinearly before the decision, labels by nearest neighbour."""
        import tensorflow as tf

        outputs = np.asarray(outputs)
        if self.output == "labels":
            if threshold != 0.5 and outputs.ndim == 3 and self.classes.num_classes == 2:
                raise BadArgument("This export decides labels inside the model at threshold 0.5; export it with "
                                 "--output logits to choose another --threshold.")
            labels = outputs if outputs.ndim == 3 else outputs[..., 0]
            return [np.asarray(tf.image.resize(l[..., None].astype(np.int32), shape, method="nearest"))[..., 0].astype(np.uint8)
                    if l.shape != tuple(shape) else l.astype(np.uint8) for l, shape in zip(labels, shapes)]
        result = []
        for scores, shape in zip(outputs, shapes):
            if scores.shape[:2] != tuple(shape):
                scores = np.asarray(tf.image.resize(scores[None].astype(np.float32), shape)[0])
            result.append(decide(scores, self.output, threshold))
        return result


class KerasPredictor(Predictor):
    runtime = "keras"

    def __init__(self, model, classes: ClassSpec, size: int, source: dict | None = None):
        from seglab.deploy.deployable import stride

        super().__init__(classes, size, "logits", source, multiple=stride(model))
        self.model = model
        self._checked_any_size = False

    def any_size(self) -> bool:
        """A saved model takes its training size only; the first time another size is asked for,
        it is swapped for the float32 copy with a dynamic height and width that export makes, where
        the architecture allows one (the same copy ONNX and LiteRT files are made from)."""
        if not self._checked_any_size:
            from seglab.deploy.deployable import deployable

            self._checked_any_size = True
            try:
                copy, self.dynamic = deployable(self.model)
            except ValueError:  # a copy that cannot be built: the model keeps its one size
                self.dynamic = False
            if self.dynamic:
                self.model = copy
        return self.dynamic

    def __call__(self, batch):
        return np.asarray(self.model.predict_on_batch(np.asarray(batch, np.float32)), np.float32)


class OnnxPredictor(Predictor):
    """ONNX Runtime on the CPU, on `cores()` threads. A graph with transposed convolutions runs a
    batch as two halves at once, each on its own session with half the cores: ONNX Runtime computes a
    ConvTranspose image by image, a multi-threaded GEMM and then a single-threaded scatter of
    its columns into the output (col2im), so one session leaves cores idle for part of each.
    Two on 2 cores: mobilenet_unet (128 px, batch 32) 118.1 against 107.8 images/s in one run,
    122.2 against 117.3 in another (benchmarks/bench_graph_rewrites.py); unet, which has no
    ConvTranspose left, 31.1 against 30.8: no gain, so such graphs keep one session."""

    runtime = "onnx"

    def __init__(self, path: Path, classes, size, output, source=None, multiple=1, dynamic=False):
        super().__init__(classes, size, output, source, multiple, dynamic)
        require_runtime("onnx")
        self.path = Path(path)
        graph = self.path.read_bytes()  # read once, for every session and the look at its operators
        threads = cores()
        self.session = self._session(graph, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.halves, self.pool = None, None
        if threads >= 2 and _holds_op(graph, "ConvTranspose"):
            from concurrent.futures import ThreadPoolExecutor

            self.halves = [self._session(graph, threads // 2), self._session(graph, threads - threads // 2)]
            self.pool = ThreadPoolExecutor(2, thread_name_prefix="seglab-onnx")

    def _session(self, graph: bytes, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        try:
            return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  (onnxruntime raises its own, unexported exception types)
            raise BadArgument(f"{self.path} is unreadable: ONNX Runtime could not load it ({_first_line(e)}). "
                             "Export the run again with `seglab export RUN --format onnx`.") from None

    def output_signature(self):
        output = self.session.get_outputs()[0]
        return tuple(d if isinstance(d, int) else None for d in output.shape), output.type in FLOAT_TENSORS

    def __call__(self, batch):
        batch = np.asarray(batch, np.float32)
        if self.halves is None or len(batch) < 2:
            return self.session.run(None, {self.input_name: batch})[0]
        # ONNX Runtime releases the GIL while it runs, so the two halves run at once
        parts = self.pool.map(lambda session, half: session.run(None, {self.input_name: half})[0],
                              self.halves, np.array_split(batch, 2))
        return np.concatenate(list(parts))


def _holds_op(graph: bytes, op_type: str) -> bool:
    """Whether the serialised ONNX model `graph` (its main graph) has a node of `op_type`; False where
    the onnx package is missing (ONNX Runtime alone runs an export, the graph just runs on one session)."""
    try:
        import onnx
    except ImportError:
        return False
    return any(node.op_type == op_type for node in onnx.load_from_string(graph).graph.node)


class LiteRTPredictor(Predictor):
    runtime = "litert"

    def __init__(self, path: Path, classes, size, output, source=None, multiple=1, dynamic=False):
        super().__init__(classes, size, output, source, multiple, dynamic)
        require_runtime("litert")
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=cores())
        except Exception as e:  # noqa: BLE001  (the interpreter raises ValueError or RuntimeError)
            raise BadArgument(f"{path} is unreadable: the LiteRT interpreter could not load it ({_first_line(e)}). "
                             "Export the run again with `seglab export RUN --format litert`.") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output_details = self.interpreter.get_output_details()[0]
        self.output_index = self.output_details["index"]
        self.shape = None

    def output_signature(self):
        details = self.output_details
        shape = details.get("shape_signature", details["shape"])
        return tuple(int(d) if d > 0 else None for d in shape), np.issubdtype(details["dtype"], np.floating)

    def __call__(self, batch):
        batch = np.asarray(batch, np.float32)
        if self.shape != batch.shape:  # a dynamic-size file takes any shape once its tensors are re-allocated
            from seglab.core.quiet import native_stderr_filtered

            with native_stderr_filtered(LITERT_NOISE):
                self.interpreter.resize_tensor_input(self.input["index"], batch.shape)
                self.interpreter.allocate_tensors()
            self.shape = batch.shape
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)


class SavedModelPredictor(Predictor):
    runtime = "saved_model"

    def __init__(self, path: Path, classes, size, output, source=None, multiple=1, dynamic=False):
        super().__init__(classes, size, output, source, multiple, dynamic)
        import tensorflow as tf

        try:
            self.function = tf.saved_model.load(str(path)).signatures["serving_default"]
        except Exception as e:  # noqa: BLE001  (TensorFlow raises several types for a damaged folder)
            raise BadArgument(f"{path} is unreadable: TensorFlow could not load the SavedModel ({_first_line(e)}). "
                             "Export the run again with `seglab export RUN --format saved_model`.") from None
        self.input_name = next(iter(self.function.structured_input_signature[1]))

    def output_signature(self):
        spec = next(iter(self.function.structured_outputs.values()))
        return tuple(spec.shape.as_list()), spec.dtype.is_floating

    def __call__(self, batch):
        outputs = self.function(**{self.input_name: np.asarray(batch, np.float32)})
        return next(iter(outputs.values())).numpy()


PREDICTORS = {"onnx": OnnxPredictor, "litert": LiteRTPredictor, "saved_model": SavedModelPredictor}


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def is_export(path) -> bool:
    return (Path(path) / EXPORT_JSON).is_file()


def open_export(folder) -> Predictor:
    """The model in a folder `seglab export` wrote, in its own runtime, once export.json,
    classes.json and the model file's own output agree (see `_read_export_json`, `_check_output`)."""
    folder = Path(folder)
    meta_path = folder / EXPORT_JSON
    meta = _read_export_json(meta_path)
    inputs = meta["input"]
    model_path = folder / FORMATS[meta["format"]][0]
    if not model_path.exists():
        raise NotFound(f"{model_path} not found: the export folder is incomplete. Export the run again.")
    if model_path.is_dir() != (meta["format"] == "saved_model"):
        raise BadArgument(f"{model_path} is a {'folder' if model_path.is_dir() else 'file'}, not the {meta['format']} "
                          "model seglab writes there. Export the run again with `seglab export`.")
    classes_path = folder / "classes.json"
    if not classes_path.is_file():
        raise NotFound(f"{classes_path} not found: the export folder is incomplete. Export the run again.")
    classes = ClassSpec.load(classes_path)
    origin = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    source = {"run": origin.get("run"), "checkpoint": origin.get("checkpoint"), "export": str(folder.resolve())}
    multiple = inputs.get("multiple_of")
    predictor = PREDICTORS[meta["format"]](model_path, classes, inputs["size"], meta["output"]["kind"], source=source,
                                           multiple=multiple or 1, dynamic=multiple is not None)
    predictor.crop, predictor.scale = inputs.get("crop"), float(inputs.get("scale") or 1.0)
    predictor.bands = tuple(inputs["bands"]) if inputs.get("bands") else None
    predictor.display_bands = tuple(inputs["display_bands"]) if inputs.get("display_bands") else None
    _check_output(predictor, model_path, meta_path, classes_path, meta["output"].get("classes"))
    return predictor


def _read_export_json(path: Path) -> dict:
    """export.json, every field predict reads checked once, here: a hand-edited or damaged file is
    refused naming the field, instead of failing later under the name of an option nobody gave."""
    again = "Export the run again with `seglab export`."
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadArgument(f"{path} is unreadable ({_first_line(e)}). {again}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("input"), dict) or not isinstance(meta.get("output"), dict):
        raise BadArgument(f"{path} is unreadable (it needs the sections format, input and output). {again}")
    if meta.get("format") not in FORMATS:
        raise BadArgument(f"{path}: unknown format {meta.get('format')!r}; seglab writes one of {', '.join(FORMATS)}. {again}")
    if meta["output"].get("kind") not in OUTPUTS:
        raise BadArgument(f"{path}: unknown output.kind {meta['output'].get('kind')!r}; seglab writes one of "
                          f"{', '.join(OUTPUTS)}. {again}")

    def whole(key, optional):
        value = meta["input"].get(key)
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadArgument(f"{path}: input.{key} must be a whole number of pixels, at least 1"
                              f"{' (or null)' if optional else ''}; found {value!r}. {again}")

    for key in ("bands", "display_bands"):
        names = meta["input"].get(key)
        if names is not None and (not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names)):
            raise BadArgument(f"{path}: input.{key} must be a list of band names (or null); found {names!r}. {again}")
    whole("size", optional=False)
    whole("multiple_of", optional=True)
    whole("crop", optional=True)
    scale = meta["input"].get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf):
        raise BadArgument(f"{path}: input.scale must be a number above 0 (or null); found {scale!r}. {again}")
    crop, step, size = meta["input"].get("crop"), meta["input"].get("multiple_of"), meta["input"]["size"]
    if crop is not None and (crop % step if step else crop != size):
        takes = f"a multiple of input.multiple_of, {step}" if step else f"only input.size, {size}"
        raise BadArgument(f"{path}: input.crop {crop} is not a size the model takes ({takes}). {again}")
    return meta


def _check_output(predictor: Predictor, model_path: Path, meta_path: Path, classes_path: Path, listed) -> None:
    """Refuse an export whose files disagree with the model file's own output: labels from a
    graph of scores (or the reverse) would be read as garbage, and classes.json naming fewer or more
    classes than the model scores would drop or invent classes, both with exit 0."""
    shape, floating = predictor.output_signature()
    kind, n = predictor.output, predictor.classes.num_classes
    again = "Export the run again with `seglab export`."
    if floating != (kind != "labels"):
        returns = "scores (float)" if floating else "class indices (integers)"
        raise BadArgument(f"{meta_path}: output.kind is {kind!r}, but {model_path.name} returns {returns}. {again}")
    channels = shape[-1] if floating and len(shape) == 4 else None
    if channels is not None and channels != n and not (channels == 1 and n == 2):
        raise BadArgument(f"{classes_path}: names {n} classes, but {model_path.name} scores {channels}"
                          f"{' (one logit: 2 classes)' if channels == 1 else ''}. {again}")
    if kind == "labels" and isinstance(listed, list) and len(listed) != n:
        raise BadArgument(f"{classes_path}: names {n} classes, but {meta_path.name} lists the model's {len(listed)}. {again}")


def run_export_folder(run: Run, format: str) -> Path:
    """Where a run keeps its export for `format` (what `seglab export RUN --format FORMAT` writes)."""
    return run.path / "export" / format


def export_is_current(run: Run, format: str) -> bool:
    """Whether the run's export for `format` exists, returns logits and was made from the run's
    current model.keras (its SHA-256 is in export.json)."""
    folder = run_export_folder(run, format)
    if not is_export(folder) or not run.model_path.is_file():
        return False
    try:
        meta = json.loads((folder / EXPORT_JSON).read_text())
        return meta["source"]["sha256"] == sha256(run.model_path) and meta["output"]["kind"] == "logits"
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable: not current


def open_predictor(path, runtime: str | None = None) -> Predictor:
    """A run folder's (a path or an opened `Run`) best model (on Keras by default; on another runtime, the run's current export
    for it, which `seglab.commands.exporting.predictor_for` makes first where needed) or an export
    folder (on its own runtime, the only one it can have)."""
    if runtime is not None and runtime not in RUNTIMES:
        raise BadArgument(f"Unknown runtime {runtime!r}. Use one of: {', '.join(RUNTIMES)}.")
    if not isinstance(path, Run) and is_export(path):
        predictor = open_export(path)
        if runtime not in (None, predictor.runtime):
            raise BadArgument(f"{path} is an export for {predictor.runtime}; it runs only there, not on {runtime}. "
                              "Give the run folder to choose the runtime.")
        return predictor
    run = path if isinstance(path, Run) else Run.open(path)
    if runtime not in (None, "keras"):
        if not export_is_current(run, runtime):
            raise NotFound(f"{run_export_folder(run, runtime)} is missing or was made from another model.keras: "
                           f"export it first with `seglab export {run.path} --format {runtime}`.")
        return open_export(run_export_folder(run, runtime))
    source = {"run": str(run.path), "checkpoint": run.model_path.name}
    predictor = KerasPredictor(run.load_model(), run.classes, run.config.recipe.size, source=source)
    predictor.crop, predictor.scale = run.config.recipe.crop, run.config.recipe.scale
    predictor.bands, predictor.display_bands = run.config.data.bands, run.config.setup.display_bands
    return predictor
