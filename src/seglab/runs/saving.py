"""Seglab's `.keras` files: loading one (an unreadable file becomes an error that says what to do),
and writing one a run saves after every epoch from a snapshot of its variables (`SnapshotWriter`)."""
from __future__ import annotations

import datetime
import io
import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

import seglab.models  # noqa: F401  (registers seglab's layers, losses and metrics, so safe mode loads them)
from seglab.core.errors import BadArgument, NotFound


def load_model(path, compile: bool = True) -> keras.Model:
    """Load a `.keras` file written by seglab (in Keras's safe mode); a missing, truncated or
    corrupt file is a ValueError naming it and how to recover."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path} not found.")
    hint = (" A run keeps two models: model.keras (the best epoch) and last.keras (the latest, for --resume);"
            " if one is damaged, the other may still load, else train again.")
    if not zipfile.is_zipfile(path):
        raise BadArgument(f"{path} is unreadable: not a Keras model archive (truncated or corrupt, "
                         f"{path.stat().st_size:,} bytes).{hint}")
    try:
        return keras.models.load_model(path, compile=compile)
    except ValueError as e:
        if "safe_mode" not in str(e):
            raise _unreadable(path, e, hint) from None
        # Keras refuses a layer that would run the file's own Python code (a Lambda): the file may
        # be whole, and seglab, which never writes such layers, will not run it
        raise BadArgument(f"{path} holds Python code (a Lambda layer or similar) that Keras's safe mode will not run; "
                          "seglab never writes such layers and never loads such files. Use a model seglab trained, "
                          "or rebuild this one without code in the file.") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, TypeError) as e:
        raise _unreadable(path, e, hint) from None


def _unreadable(path: Path, e: Exception, hint: str) -> BadArgument:
    return BadArgument(f"{path} is unreadable: Keras could not load it ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}).{hint}")


WEIGHTS_MEMBER = "model.weights.h5"  # Keras's name for the weights inside a `.keras` archive


class SnapshotWriter:
    """Writes a model's `.keras` files, one an epoch, each byte for byte the file `model.save`
    writes for that state, most without Keras's walk of the model.

    `model.save` serializes the model's config and walks every layer for its variables: about a
    second of CPU for MobileNetV2 U-Net's 368 variables (45 MB) on 2 cores, where writing the bytes
    takes a tenth of that, and a run saves after every epoch, on a core the training step wants.
    The archive is stored, not compressed, and its weights file holds each variable in one
    contiguous dataset. So a weights file Keras writes serves as a template: later ones are its
    bytes with every variable's bytes written over at their offsets, found by saving the model
    once with variable k filled with the number k (`_learn`).

    The first file is Keras's own, and its config is kept. The second learns the offsets (one more
    Keras save, of the numbers), and from then on files are written from the template. Of the
    config only the optimizer's changes while a run trains (the learning rate, a variable, that a
    plateau lowers); a file whose optimizer config differs from the kept one is Keras's own again.
    Where Keras lays the weights out otherwise, every file is Keras's own."""

    def __init__(self):
        self.members: dict[str, bytes] | None = None  # the last Keras-written file's members, in its order
        self.optimizer_config = None  # the optimizer's config in that file
        self.layout = None  # (template weights file, places) once learned; False: Keras's own files only

    def write(self, model: keras.Model, arrays: list[np.ndarray], path) -> None:
        """Write `path` for `model`, which holds `arrays` (its variables' values, in the order of
        `variables(model)`)."""
        if self.layout is None and self.members is not None:  # the second file
            self.layout = self._learn(model) or False
        if self.layout and model.optimizer.get_config() == self.optimizer_config:
            self._patch(arrays, path)
            return
        model.save(path)
        if self.layout is not False:
            with zipfile.ZipFile(path) as archive:  # all but the weights: the config and metadata
                self.members = {info.filename: b"" if info.filename == WEIGHTS_MEMBER else archive.read(info)
                                for info in archive.infolist()}
            self.optimizer_config = model.optimizer.get_config()

    def _patch(self, arrays: list[np.ndarray], path) -> None:
        template, places = self.layout
        weights = bytearray(template)
        for k, offset, dtype, shape in places:
            value = np.asarray(arrays[k], dtype)
            if value.shape != shape:
                raise RuntimeError(f"variable {k} is {value.shape} in the snapshot, {shape} in the model's file")
            np.frombuffer(weights, dtype, value.size, offset)[...] = value.ravel()
        metadata = json.loads(self.members["metadata.json"])
        metadata["date_saved"] = datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")  # as Keras writes it
        fresh = {WEIGHTS_MEMBER: weights, "metadata.json": json.dumps(metadata).encode()}
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in self.members.items():
                archive.writestr(name, fresh.get(name, data))

    @staticmethod
    def _learn(model: keras.Model) -> tuple[bytes, list] | None:
        """(the weights file Keras writes with variable k filled with k, where each variable's bytes
        lie in it), or None where Keras lays the file out otherwise (see `_places`) or a variable's
        type cannot hold its number. The model's variables are put back as they were."""
        held = variables(model)
        values = snapshot(model)
        try:
            for k, (variable, value) in enumerate(zip(held, values)):
                marked = np.full(value.shape, k, value.dtype)
                if value.size and marked.flat[0] != k:
                    return None
                variable.assign(marked)
            with tempfile.TemporaryDirectory(prefix="seglab-template-") as tmp:
                model.save(Path(tmp) / "numbers.keras")
                with zipfile.ZipFile(Path(tmp) / "numbers.keras") as archive:
                    template = archive.read(WEIGHTS_MEMBER) if WEIGHTS_MEMBER in archive.namelist() else None
        finally:
            for variable, value in zip(held, values):
                variable.assign(value)
        places = None if template is None else _places(template, values)
        return None if places is None else (template, places)


def variables(model: keras.Model) -> list:
    """A model's variables and its optimizer's, in the order a snapshot of them keeps."""
    return [*model.weights, *model.optimizer.variables]


def snapshot(model: keras.Model) -> list[np.ndarray]:
    """Copies of the model's weights and optimizer variables, as `variables` orders them (tens of
    milliseconds)."""
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables(model)]


def _places(weights: bytes, values: list[np.ndarray]) -> list[tuple[int, int, np.dtype, tuple]] | None:
    """Where each variable's bytes lie in a weights file saved with variable k filled with k (see
    `SnapshotWriter._learn`): (k, byte offset, dtype, shape) for each dataset, a variable saved
    twice (Keras's loss-scale optimizer saves its inner optimizer's variables twice) in two places;
    None where the file is not one contiguous dataset per saved variable, each holding a number k
    of a variable of its type and shape, every variable saved."""
    datasets = []
    with h5py.File(io.BytesIO(weights), "r") as h5:
        h5.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
        places = []
        for dataset in datasets:
            if dataset.size == 0:
                continue  # no bytes to write
            offset, saved = dataset.id.get_offset(), dataset[()]
            k = saved.flat[0]
            if (offset is None or dataset.chunks or dataset.attrs or not (saved == k).all()
                    or not float(k).is_integer() or not 0 <= k < len(values)):
                return None
            k = int(k)
            if dataset.dtype != values[k].dtype or dataset.shape != values[k].shape:
                return None
            places.append((k, offset, dataset.dtype, dataset.shape))
    if {k for k, *_ in places} != {k for k, value in enumerate(values) if value.size}:
        return None  # a variable Keras did not save
    return places
