"""`seglab plan`: a recipe for a dataset from its fingerprint and this machine, within a time budget.

nnU-Net showed that a recipe planned from the dataset's own fingerprint beats hand tuning across
very different datasets; seglab plans for any 2D dataset, and against a wall-clock budget on the
machine at hand. The plan is a set of TrainConfig values, each with the reason it was chosen:

- model: DeepLabV3+ over MobileNetV2 where pretrained weights can be had (a weights file found, the
  Keras cache, or the download reachable), a U-Net over the same encoder where the classes that
  matter are thin strokes, the classic U-Net from scratch where no weights can be had;
- resolution: the scale at which the smallest objects and thinnest strokes survive, then whole
  images resized where that fits the budget, else crops at that scale with tiled inference;
- size, batch and epochs from a measured step time of that model on this machine, so the epochs
  fill the budget;
- learning rate, schedule, loss, class weights and augmentation from the class shares and shapes.

Constants below say why they are what they are; none is fitted to one dataset.
"""
from __future__ import annotations

import math
import os
import re
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seglab.commands.compiled import image_input
from seglab.core.errors import BadArgument
from seglab.core.machine import available_memory, describe
from seglab.data.fingerprint import Fingerprint
from seglab.report.plan_tables import duration

# Input sizes tried: multiples of 32, the largest stride of the encoders.
SIZES = (128, 160, 192, 224, 256, 288, 320, 384, 448, 512)
# An object narrower than this many pixels at the model's input is under three cells of a
# stride-4 decoder: its outline is guesswork. Below MIN_STROKE a thin structure breaks apart.
MIN_OBJECT = 12
MIN_STROKE = 2.0
# Classes under this share of labelled pixels do not steer the resolution (stray labels), but do
# steer class weights.
MATTERS = 0.001
RARE = 0.01  # a class under this share of labelled pixels gets a class weight
# Horizontal flips are wrong only where they turn one class into another: classes that come in
# mirrored pairs (a left and a right lung, hand or kidney) lie in opposite halves of the frame.
# One class off-centre (the pavement and trees on the kerb side of a street: where the camera
# was) mirrors into a photo as plausible, so flips stay on. A class lies on one side when this
# share of its pixels is in that half.
ONE_SIDE = 0.8
# Epochs a recipe needs to converge: DeepLabV3+ over a pretrained encoder on a few hundred images
# is near its best at 20 (docs/benchmarks.md); networks from scratch need about twice as many.
EPOCHS_PRETRAINED, EPOCHS_SCRATCH = 20, 40
MAX_EPOCHS = 300  # beyond this a small dataset only overfits; the budget is then not all used
MIN_EPOCHS = 5  # fewer and the plan says the budget is too small
# Share of the time left that the epochs are planned to fill: estimates err, and BudgetStop ends
# training at the last epoch that fits should the machine run slower than measured.
SAFETY = 0.97
# Pixels per batch at which CPU memory for the activations of these models stays near 2 GB.
BATCH_PIXELS = 16 * 320 * 320
ENCODER = "mobilenet_v2"


def parse_budget(text: str) -> float:
    """'15m', '2h', '90s', '1h30m' or a number of seconds -> seconds."""
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?", value)
        if not value or parts is None or not any(parts.groups()):
            raise BadArgument(f"--budget takes a duration like 15m, 2h, 1h30m or 900s; got {text!r}.")
        h, m, s = (float(g or 0) for g in parts.groups())
        seconds = 3600 * h + 60 * m + s
    if seconds < 60:
        raise BadArgument(f"--budget {text}: at least one minute is needed to plan and train; got {seconds:g} s.")
    return seconds


@dataclass
class Plan:
    """The values a planned run takes (TrainConfig fields), the reason for each, and what they
    were planned from."""

    budget: float
    values: dict
    reasons: dict
    fingerprint: Fingerprint
    machine: dict
    timings: list = field(default_factory=list)  # measured steps
    estimate: dict = field(default_factory=dict)  # seconds
    inference: dict = field(default_factory=dict)  # evaluate and predict options, and their cost
    warnings: list = field(default_factory=list)
    user_set: tuple = ()  # fields the user gave, which win over the plan's

    def to_json(self) -> dict:
        return {"budget_s": round(self.budget, 1), "values": _plain(self.values), "reasons": self.reasons,
                "user_set": list(self.user_set), "estimate_s": self.estimate, "inference": self.inference,
                "warnings": self.warnings, "machine": self.machine, "timings": self.timings,
                "fingerprint": self.fingerprint.to_json()}

    def train_command(self, data: str) -> str:
        """The `seglab train` command line that runs this plan's recipe without --budget."""
        return train_command(data, self.values)


def train_command(data: str, values: dict) -> str:
    """The `seglab train` command line of a recipe (TrainConfig fields as a plan or a resolved
    config.yaml holds them); model options are written where they differ from the model's."""
    from seglab.models import model_options, model_spec

    v = values
    words = ["seglab train", _quote(data), f"--model {v['model']}"]
    options = dict(v.get("model_options") or {})
    if "encoder" in options:
        words.append(f"--encoder {options.pop('encoder')}")
    defaults = {**model_options(v["model"]), **model_spec(v["model"]).defaults.model_options}
    for key, value in options.items():
        if key in defaults and _plain(defaults[key]) != _plain(value):
            shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            words.append(f"--option {_quote(f'{key}={shown}')}")
    if v.get("weights") not in (None, "imagenet"):
        words.append(f"--weights {_quote(v['weights'])}")
    if v.get("fine_tune") not in (None, model_spec(v["model"]).defaults.fine_tune):
        words.append(f"--fine-tune {v['fine_tune']}")
    words.append(f"--crop {v['crop']} --scale {v['scale']:g}" if v.get("crop") else f"--size {v['size']}")
    words += [f"--batch-size {v['batch_size']}", f"--epochs {v['epochs']}", f"--lr {v['learning_rate']:.3g}",
              f"--schedule {v['schedule']}", f"--loss {v['loss']}"]
    if v.get("optimizer", "adam") != "adam":
        words.append(f"--optimizer {v['optimizer']}")
    weights = v.get("class_weights")
    if weights:
        words.append("--class-weights " + (weights if isinstance(weights, str) else ",".join(f"{w:g}" for w in weights)))
    aug = v["augment"]
    words += [f"--augment-flip {aug['flip']:g}", f"--augment-vflip {aug['vflip']:g}",
              f"--augment-zoom {aug['zoom'][0]:g},{aug['zoom'][1]:g}",
              f"--augment-brightness {aug['brightness']:g}", f"--augment-contrast {aug['contrast']:g}"]
    return " ".join(words)


def _quote(text) -> str:
    text = str(text)
    return text if re.fullmatch(r"[\w./:@%+=,-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# --- the machine -------------------------------------------------------------------------------

def machine() -> dict:
    """Cores, CPU model and speed flags, GPUs and memory: what a plan was made on."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    memory = available_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {**describe(), "cores": cores, "gpus": len(gpus),
            "memory_available_gb": round(memory / 2**30, 1) if memory else None}


def pretrained_weights(data_root: str | None, given: str | None = None) -> tuple[str | None, str]:
    """MobileNetV2 encoder weights the plan can start from, and where they come from: the file
    given, a file named like one in $SEGLAB_WEIGHTS or a weights/ folder in or above the dataset,
    Keras's cache of the ImageNet download, or the download itself when its host answers."""
    if given is not None:
        return (None, "--weights none was given") if str(given).lower() == "none" else (given, "--weights was given")
    places = [Path(p) for p in os.environ.get("SEGLAB_WEIGHTS", "").split(os.pathsep) if p]
    if data_root:
        root = Path(data_root).resolve()
        places += [folder / "weights" for folder in (root, *list(root.parents)[:2])]
    for place in places:
        if place.is_dir():
            found = sorted(f for f in place.iterdir() if f.is_file() and ENCODER in f.name.lower()
                           and "notop" in f.name.lower().replace("_", "").replace("-", "") and f.suffix == ".h5")
            if found:
                return str(found[0]), f"MobileNetV2 weights found in {place}"
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    if cache.is_dir() and any(f.name.startswith("mobilenet_v2_weights") and f.name.endswith("no_top.h5")
                              for f in cache.iterdir()):
        return "imagenet", f"ImageNet MobileNetV2 weights in Keras's cache ({cache})"
    if _reachable("storage.googleapis.com", 443):
        return "imagenet", "ImageNet MobileNetV2 weights can be downloaded (storage.googleapis.com answers)"
    return None, ("no MobileNetV2 weights: none given, none in $SEGLAB_WEIGHTS or a weights/ folder by the data, "
                  "none in Keras's cache, and the download host does not answer")


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether a TCP connection opens within `timeout`, name lookup included (in a thread: a
    lookup with no DNS answer can hang far longer than a socket timeout)."""
    result = []

    def attempt():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result)


# --- measuring a step --------------------------------------------------------------------------

def measure(config, num_classes: int, image, repeats: int = 3) -> dict:
    """Seconds of one training step, one validation step and one per-epoch save of the model that
    `config` (resolved) builds, on random batches of its size: the median of `repeats` after a
    first step that traces and compiles (timed apart, as building is)."""
    import keras

    from seglab.commands.compiled import compiled_model
    from seglab.engines.distribute import Cluster

    recipe = config.recipe
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = compiled_model(config.replace(weights="none") if recipe.weights not in (None, "none") else config,
                           num_classes, 10, Cluster("none"), image)
    model.jit_compile = config.setup.jit
    rng = np.random.default_rng(0)
    batch, size = recipe.batch_size, recipe.size
    low, high = image.low, image.high
    x = rng.uniform(0 if low is None else min(low), 255 if high is None else max(high),
                    (batch, size, size, image.channels)).astype("float32")
    y = rng.integers(0, num_classes, (batch, size, size)).astype("uint8")
    model.train_on_batch(x, y)
    model.test_on_batch(x, y)
    first = time.perf_counter() - start
    train = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        train.append(time.perf_counter() - t)
    val = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.test_on_batch(x, y)
        val.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        model.save(Path(folder) / "m.keras")
        save = time.perf_counter() - t
    del model
    keras.backend.clear_session()
    return {"model": recipe.model, "size": size, "batch_size": batch, "build_and_first_step": round(first, 2),
            "train_step": round(statistics.median(train), 4), "val_step": round(statistics.median(val), 4),
            "save": round(save, 3)}


def read_time(source, pairs) -> float:
    """Seconds to read and decode one pair, the median of a few (the first epoch reads them all)."""
    from seglab.data.pipeline import read_pair, read_raster_pair

    times = []
    for pair in pairs[:4]:
        t = time.perf_counter()
        if source.bands.rgb:
            read_pair(pair.image, pair.mask, source.encoding, pair.image_region, pair.mask_region)
        else:
            read_raster_pair(pair.image, pair.mask, source.encoding, source.bands, pair.mask_region)
        times.append(time.perf_counter() - t)
    return statistics.median(times) if times else 0.0


# --- deciding ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolution:
    """How images reach the model: resized whole to `size`, or `crop` x `crop` crops after
    scaling by `scale` (tiles of that size at inference)."""

    size: int
    crop: int | None = None
    scale: float = 1.0


def needed_scale(fp: Fingerprint) -> tuple[float, str]:
    """The largest downscale (<= 1) at which the smallest objects and thinnest strokes of the
    classes that matter survive, and why."""
    side = fp.short_side
    matters = [c for c in fp.classes if c.pixel_fraction >= MATTERS and c.images]
    dominant = max(matters, key=lambda c: c.pixel_fraction, default=None)
    limits = []
    for c in matters:
        if c is dominant and len(matters) > 1:
            continue  # the background's holes and slivers say nothing about what must be seen
        if c.small_object_size:
            limits.append((MIN_OBJECT / (c.small_object_size * side), f"'{c.name}' objects down to "
                           f"{c.small_object_size * side:.0f} px across must keep >= {MIN_OBJECT} px"))
        if c.width:
            limits.append((MIN_STROKE / c.width, f"'{c.name}' strokes {c.width:.1f} px wide must stay >= {MIN_STROKE:g} px"))
    if not limits:
        return 1 / 8, "no class needs fine detail"
    scale, why = max(limits)
    return min(1.0, scale), f"{why} (at native resolution; smallest tenth of its pixels)"


def epochs_that_fit(seconds: float, per_epoch: float) -> int:
    return max(1, min(MAX_EPOCHS, int(seconds // per_epoch)))


def batch_for(size: int, train_pairs: int) -> int:
    """Up to 16 (memory: BATCH_PIXELS), and at most an eighth of the training images, so that even
    a small dataset gives eight updates an epoch; a power of two, at least 2."""
    cap = max(2, min(16, BATCH_PIXELS // (size * size), train_pairs // 8))
    return 2 ** int(math.log2(cap))


def epoch_seconds(timing: dict, train_steps: int, val_steps: int) -> float:
    """One epoch: the training steps, the validation steps, and 0.3 s of Keras's own bookkeeping.
    The per-epoch writing (last.keras, previews, curves) runs in the checkpoint's thread beside
    the next epoch; only the last epoch's is waited for (`finish`)."""
    return train_steps * timing["train_step"] + val_steps * timing["val_step"] + 0.3


class Planner:
    """Plans a recipe for `source` (checked, with the doctor's `reports`) within `budget` seconds
    counted from `started` (time.monotonic: reading and checking the data are part of it), the
    user's `given` recipe values winning over the plan's; `base` is the configuration the plan's
    values go into (the data and setup sections as given)."""

    def __init__(self, source, reports, budget: float, given: dict | None = None, base=None, started: float | None = None):
        from seglab.data.fingerprint import fingerprint
        from seglab.runs.config import TrainConfig

        self.source, self.reports, self.budget = source, reports, budget
        self.given = {k: v for k, v in (given or {}).items() if v is not None}
        self.base = base or TrainConfig()
        self.started = time.monotonic() if started is None else started
        self.fp = fingerprint(source, reports)
        self.reasons: dict[str, str] = {}
        self.warnings: list[str] = []
        self.timings: list[dict] = []

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def plan(self) -> Plan:
        from seglab.data.augment import Augment
        from seglab.runs.config import resolve

        fp, values = self.fp, {}
        num_classes = fp.num_classes
        weights, where = pretrained_weights(self.source.root if self.source.root else None, self.given.get("weights"))
        model, options = self._model(weights, where)
        values.update(model=model, model_options=options)
        if weights is not None and _on_mobilenet(model, options):
            values["weights"] = weights
        scale_needed, detail = needed_scale(fp)
        pretrained = _takes_weights(model, options)
        target = EPOCHS_PRETRAINED if pretrained else EPOCHS_SCRATCH
        train_pairs = fp.train_pairs
        val_pairs = sum(n for split, n in fp.pairs.items() if split == "val")

        def config_at(size, crop=None, scale=1.0):
            batch = self.given.get("batch_size") or batch_for(size, train_pairs)
            config = self.base.replace(**{**values, "size": size, "crop": crop, "scale": scale, "batch_size": batch,
                                          "epochs": 1, "learning_rate": None})
            return resolve(config, num_classes)

        image = image_input(self.source, self.reports)
        read = read_time(self.source, self.source.split("train"))
        native = _round32(fp.short_side)
        timing_at = self._timer(config_at, num_classes, image, top=max(SIZES[0], native))
        resolution, why_resolution, per_epoch, timing = self._resolution(
            native, scale_needed, detail, target, train_pairs, val_pairs, timing_at)
        config = config_at(resolution.size, resolution.crop, resolution.scale)
        batch = config.recipe.batch_size
        train_steps, val_steps = math.ceil(train_pairs / batch), math.ceil(max(1, val_pairs) / batch)
        cores = max(1, min(8, os.cpu_count() or 1))
        first_read = read * (train_pairs + val_pairs) / cores  # the first epoch decodes every pair (tf.data, in parallel)
        # building the real model and tracing its steps in the first epoch, as the measurement did,
        # and drawing the preview samples
        setup = timing["build_and_first_step"] + 2.0
        finish = 1.0 + timing["save"] + timing["val_step"]  # the last epoch's writing: its model, previews, curves
        room = SAFETY * self.left() - setup - first_read - finish
        epochs = self.given.get("epochs") or epochs_that_fit(room, per_epoch)
        if epochs < MIN_EPOCHS and not self.given.get("epochs"):
            need = setup + first_read + finish + MIN_EPOCHS * per_epoch + (time.monotonic() - self.started)
            self.warnings.append(f"the budget allows only {epochs} epoch(s) of {duration(per_epoch)}; give --budget "
                                 f"{duration(need / SAFETY)} or more for {MIN_EPOCHS}")
        default_batch, default_rate = 16, config.recipe.learning_rate
        rate = self.given.get("learning_rate") or float(f"{default_rate * math.sqrt(batch / default_batch):.2g}")
        values.update(size=resolution.size, crop=resolution.crop, scale=resolution.scale, batch_size=batch,
                      epochs=epochs, learning_rate=rate, schedule="cosine", optimizer="adam",
                      loss=self._loss(num_classes), class_weights=self._class_weights(),
                      augment=self._augment(Augment()))
        if config.recipe.fine_tune and values.get("weights"):
            values["fine_tune"] = config.recipe.fine_tune
        self.reasons.update(
            size=why_resolution, crop=why_resolution, scale=why_resolution,
            batch_size=f"{batch}: up to 16 images of {resolution.size} px fit in memory, and an eighth of the "
                       f"{train_pairs} training images gives >= 8 updates an epoch",
            epochs=f"{epochs} epochs of ~{per_epoch:.1f} s (measured step {timing['train_step'] * 1000:.0f} ms x "
                   f"{train_steps} + validation {timing['val_step'] * 1000:.0f} ms x {val_steps} + writing) fill "
                   f"{SAFETY:.0%} of the {duration(self.left())} left" + (f" (at most {MAX_EPOCHS})" if epochs == MAX_EPOCHS else ""),
            learning_rate=f"{rate:g}: the model's {default_rate:g} for batch {default_batch}, scaled by "
                          f"sqrt({batch}/{default_batch})",
            schedule="cosine decay over the planned epochs: the rate reaches its floor as the budget ends",
            optimizer="Adam, as every model's recipe")
        if "fine_tune" in values:
            self.reasons["fine_tune"] = f"from {values['fine_tune']}: the encoder's early ImageNet filters are kept"
        given = dict(self.given)
        if isinstance(given.get("augment"), dict):  # the strengths given, the plan's for the rest
            given["augment"] = {**values["augment"], **given["augment"]}
        if "model_options" in given:
            given["model_options"] = {**values["model_options"], **given["model_options"]}
        chosen = given.get("model", model), given.get("model_options", options)
        if str(given.get("weights", "")).lower() == "none" and not _takes_weights(*chosen):
            del given["weights"]  # --weights none chose a model from scratch, which takes no weights at all
        values = {k: v for k, v in values.items() if k not in given} | given
        estimate = {"spent_before_plan": round(time.monotonic() - self.started, 1), "setup": round(setup, 1),
                    "first_epoch_reading": round(first_read, 1), "per_epoch": round(per_epoch, 2),
                    "epochs": round(epochs * per_epoch, 1), "finish": round(finish, 1)}
        estimate["total"] = round(sum(v for k, v in estimate.items() if k != "per_epoch"), 1)
        inference = self._inference(resolution, timing, read, flip=values["augment"]["flip"] > 0)
        return Plan(self.budget, values, self.reasons, fp, machine(), self.timings, estimate, inference,
                    self.warnings, tuple(sorted(self.given)))

    # each decision, with its reason

    def _model(self, weights, where) -> tuple[str, dict]:
        thin = [c for c in self.fp.classes if c.pixel_fraction >= MATTERS and c.width is not None and c.width < 8
                and c.object_size is not None and c.object_size > 0.2]
        given = self.given.get("model")
        if given:  # with its options, which the step is measured with too (unet/mobilenet_v2, not unet from scratch)
            return given, dict(self.given.get("model_options") or {})
        if weights is None:
            self.reasons["model"] = f"unet from scratch (the classic U-Net with batch norm): {where}"
            return "unet", {"encoder": "scratch"}
        if thin:
            self.reasons["model"] = (f"unet over MobileNetV2 ({where}): {', '.join(repr(c.name) for c in thin)} "
                                     "form thin connected strokes, which a U-Net's stride-2 skip keeps and a stride-4 "
                                     "decoder blurs")
            return "unet", {"encoder": ENCODER}
        self.reasons["model"] = f"deeplabv3plus over MobileNetV2 ({where}): ASPP context and a light encoder for CPU budgets"
        return "deeplabv3plus", {"encoder": ENCODER}

    def _timer(self, config_at, num_classes, image, top: int):
        """timing(size, crop, scale): measured at up to two sizes (128 and up to 256, not above `top`,
        the largest size the images allow), then a line through them in pixels (a step's cost grows
        with its pixels; measuring every size would eat the budget)."""
        measured: dict[tuple[int, int], dict] = {}
        given = self.given.get("size") or self.given.get("crop")

        def at(size, crop=None, scale=1.0):
            config = config_at(size, crop, scale)
            batch = config.recipe.batch_size
            probes = [given] if given else sorted({SIZES[0], min(256, top)})
            for probe in probes:
                if (probe, batch) not in measured:
                    timing = measure(config_at(probe, probe if crop else None, scale).replace(batch_size=batch),
                                     num_classes, image)
                    measured[probe, batch] = timing
                    self.timings.append(timing)
            points = sorted((p, measured[p, batch]) for p in probes)
            if len(points) == 1:
                return {**points[0][1], "size": size}
            (s0, t0), (s1, t1) = points
            out = {"size": size, "batch_size": batch, "build_and_first_step": max(t0["build_and_first_step"], t1["build_and_first_step"])}
            for key in ("train_step", "val_step"):
                slope = (t1[key] - t0[key]) / (s1 ** 2 - s0 ** 2)
                out[key] = max(t0[key], t0[key] + slope * (size ** 2 - s0 ** 2))
            out["save"] = t1["save"]
            return out
        return at

    def _resolution(self, native, scale_needed, detail, target, train_pairs, val_pairs, timing_at):
        """Whole images at the largest size that gives `target` epochs (not above native), unless the
        detail needs more pixels than that: then crops at the needed scale."""
        given_size, given_crop = self.given.get("size"), self.given.get("crop")
        room = SAFETY * self.left() - 30

        def per_epoch(size, crop=None, scale=1.0):
            t = timing_at(size, crop, scale)
            batch = t["batch_size"]
            return epoch_seconds(t, math.ceil(train_pairs / batch), math.ceil(max(1, val_pairs) / batch)), t

        if given_crop or given_size:
            size = given_crop or given_size
            cost, t = per_epoch(size, given_crop, self.given.get("scale", 1.0))
            return Resolution(size, given_crop, self.given.get("scale", 1.0) if given_crop else 1.0), "given", cost, t
        sizes = [s for s in SIZES if s <= max(SIZES[0], native)]
        affordable = [s for s in sizes if per_epoch(s)[0] * target <= room] or sizes[:1]
        whole = affordable[-1]
        needed = scale_needed * native
        if whole >= needed or whole >= native:
            cost, t = per_epoch(whole)
            why = (f"whole images resized to {whole} px: {detail}, which {whole} px keeps (the images' short side is "
                   f"{self.fp.short_side} px, {whole / self.fp.short_side:.2f}x); {whole} px is the largest size giving "
                   f"{target} epochs in the budget")
            return Resolution(whole), why, cost, t
        scale = min(1.0, math.ceil(scale_needed * 4) / 4)  # 0.25, 0.5, 0.75 or 1: tiles at a simple factor
        scaled_side = int(self.fp.short_side * scale)
        crops = [s for s in SIZES if s <= max(SIZES[0], _round32(scaled_side))]
        fits = [s for s in crops if per_epoch(s, s, scale)[0] * target <= room] or crops[:1]
        crop = fits[-1]
        cost, t = per_epoch(crop, crop, scale)
        why = (f"{crop} px crops of images scaled by {scale:g}: {detail}, which resizing whole images to {whole} px "
               f"(the largest giving {target} epochs) would lose ({whole / self.fp.short_side:.2f}x); prediction then "
               f"runs in {crop} px tiles")
        return Resolution(crop, crop, scale), why, cost, t

    def _loss(self, num_classes: int) -> str:
        if num_classes == 2:
            self.reasons["loss"] = "bce+dice: two classes, one sigmoid logit; Dice keeps a small foreground from being ignored"
            return "bce+dice"
        self.reasons["loss"] = f"ce+dice: {num_classes} classes; Dice weighs each class's overlap alike"
        return "ce+dice"

    def _class_weights(self):
        fractions = np.array([c.pixel_fraction for c in self.fp.classes])
        seen = fractions > 0
        rarest = fractions[seen].min() if seen.any() else 1.0
        if rarest >= RARE:
            self.reasons["class_weights"] = f"none: the rarest class has {rarest:.1%} of the labelled pixels"
            return None
        name = self.fp.classes[int(np.argmin(np.where(seen, fractions, np.inf)))].name
        self.reasons["class_weights"] = (f"1/sqrt(pixel share), mean 1: '{name}' has {rarest:.2%} of the labelled pixels")
        return inverse_sqrt_weights(fractions)

    def _augment(self, default):
        fp = self.fp
        matters = [c for c in fp.classes if c.pixel_fraction >= MATTERS and c.top_share is not None]
        enough = fp.masks_measured >= 8
        near_half = lambda key: enough and all(abs(getattr(c, key) - 0.5) <= 0.1 for c in matters)  # noqa: E731
        left = [c for c in matters if c.left_share >= ONE_SIDE]
        right = [c for c in matters if c.left_share <= 1 - ONE_SIDE]
        flip = 0.0 if enough and left and right else 0.5
        # Upside down only where nothing has an "up": every class as likely in the top half as the bottom,
        # and spread over the rows (not photographed in the middle of the frame, as pets are)
        vflip = 0.5 if matters and near_half("top_share") and near_half("middle_share") else 0.0
        n = fp.train_pairs
        if n < 100:
            zoom, brightness, contrast, size_words = (0.7, 1.6), 0.15, 0.25, f"strong: {n} training images"
        elif n > 2000:
            zoom, brightness, contrast, size_words = (0.85, 1.25), 0.05, 0.1, f"light: {n} training images"
        else:
            zoom, brightness, contrast, size_words = default.zoom, default.brightness, default.contrast, \
                f"the defaults: {n} training images"
        where = ", ".join(f"{c.name} {c.top_share:.0%} / {c.middle_share:.0%}" for c in matters[:4])
        flips = (f"horizontal flips off: '{left[0].name}' lies on the left ({left[0].left_share:.0%} of its pixels) "
                 f"and '{right[0].name}' on the right ({1 - right[0].left_share:.0%}), a pair a flip would swap"
                 if not flip else "horizontal flips on: no two classes lie on opposite sides, which a flip would swap")
        self.reasons["augment"] = (f"{flips}; vertical flips "
                                   + ("on: every class is as likely in the top half as the bottom, and spread over the rows"
                                      if vflip else "off: classes sit higher, lower or in the middle of the frame")
                                   + f" (top half / middle rows: {where}); zoom and colour {size_words}")
        return {"flip": flip, "vflip": vflip, "zoom": zoom, "brightness": brightness, "contrast": contrast}

    def _inference(self, resolution: Resolution, timing: dict, read: float, flip: bool) -> dict:
        """How to evaluate and predict: tiles where training saw crops, else the whole image at
        full resolution; flip TTA, where training flipped, doubles the cost for the usual
        half-point of mIoU (a model that never saw mirrored images gains nothing from them)."""
        per_batch = timing["val_step"] / timing["batch_size"]
        w, h = self.fp.median_size
        views = 2 if flip else 1
        tta = {"tta": "flip"} if flip else {}
        with_tta = ", with flip TTA" if flip else ", without flip TTA (training does not flip)"
        if resolution.crop:
            tiles = math.ceil(w * resolution.scale / (resolution.crop * 0.75)) * math.ceil(h * resolution.scale / (resolution.crop * 0.75))
            per_image = views * tiles * per_batch + read
            options = {"tile": resolution.crop, "overlap": 0.25, **tta}
            why = f"{tiles} tiles of {resolution.crop} px per median image, overlapping 25%{with_tta}"
        else:
            per_image = views * per_batch + read
            options = {"full_res": True, **tta}
            why = f"the whole image at the training size, scored at full resolution{with_tta}"
        return {"options": options, "why": why, "seconds_per_image": round(per_image, 3)}


def _encoder(model: str, options: dict) -> str | None:
    """The encoder `model` is built over with builder `options` (its defaults filled in)."""
    from seglab.models import model_options, model_spec

    return {**model_options(model), **model_spec(model).defaults.model_options, **(options or {})}.get("encoder")


def _takes_weights(model: str, options: dict) -> bool:
    """Whether `model` with builder `options` has a pretrained encoder (weights and fine_tune apply)."""
    from seglab.models import model_spec
    from seglab.models.encoders import SCRATCH

    return model_spec(model).pretrained and _encoder(model, options) != SCRATCH  # config.validate's rule


def _on_mobilenet(model: str, options: dict) -> bool:
    """Whether the MobileNetV2 weights the planner finds are the ones `model` with `options` loads."""
    return model == "mobilenet_unet" or _encoder(model, options) == ENCODER


def inverse_sqrt_weights(fractions) -> tuple[float, ...]:
    """Class weights 1/sqrt(pixel share), normalised to a mean of 1 over the classes present
    (absent classes 0): inverse frequency itself gives a class at 0.1% a weight hundreds of times
    the background's, which makes the loss noisy."""
    fractions = np.asarray(fractions, float)
    seen = fractions > 0
    weights = np.zeros_like(fractions)
    weights[seen] = 1 / np.sqrt(fractions[seen])
    weights[seen] /= weights[seen].mean()
    return tuple(round(float(w), 3) for w in weights)


def _round32(value: float) -> int:
    return max(32, int(value) // 32 * 32)
