"""Seglab's `.keras` files: the per-epoch writer writes, byte for byte, the file Keras writes."""
from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from seglab.core.precision import precision
from seglab.models.registry import build_model
from seglab.runs.saving import SnapshotWriter, load_model, snapshot
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics

RNG = np.random.default_rng(0)


def trained(policy: str = "float32") -> keras.Model:
    """A small U-Net (batch norm: variables that do not train) compiled as `seglab train` compiles
    it, its weights random and two Adam updates applied, so that every variable holds values of
    its own (eager updates: tracing a training step would cost seconds)."""
    with precision(policy):
        model = build_model("unet", 3, 32, filters=(4, 8), batch_norm=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=make_loss("ce", 3), metrics=segmentation_metrics(3))
        model.optimizer.build(model.trainable_variables)
    for variable in model.weights:
        variable.assign(RNG.normal(size=variable.shape))
    step(model)
    step(model)
    return model


def step(model: keras.Model) -> None:
    """One optimizer update of random gradients."""
    model.optimizer.apply_gradients([(RNG.normal(size=v.shape).astype("float32"), v) for v in model.trainable_variables])


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def assert_as_keras_writes(written: dict[str, bytes], by_keras: dict[str, bytes]) -> None:
    assert list(written) == list(by_keras)
    for name in by_keras:
        if name == "metadata.json":  # the time saved, to the second, may differ
            mine, theirs = json.loads(written[name]), json.loads(by_keras[name])
            assert mine.keys() == theirs.keys() and mine["keras_version"] == theirs["keras_version"]
        else:
            assert written[name] == by_keras[name], name


def saved_by_keras(model: keras.Model) -> list[int]:
    """Counts `model.save` calls from here on (a list, one item a call)."""
    calls = []

    def save(path, *args, **kwargs):
        calls.append(1)
        keras.Model.save(model, path, *args, **kwargs)
    model.save = save
    return calls


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])  # mixed_float16: Keras's loss-scale optimizer
def test_the_snapshot_writer_writes_the_bytes_keras_writes(tmp_path, policy):
    model = trained(policy)
    writer, calls = SnapshotWriter(), saved_by_keras(model)
    for epoch in (1, 2, 3):
        arrays = snapshot(model)
        writer.write(model, arrays, tmp_path / f"{epoch}.keras")
        assert all(np.array_equal(a, b) for a, b in zip(snapshot(model), arrays)), "the model keeps its values"
        keras.Model.save(model, tmp_path / "keras.keras")
        assert_as_keras_writes(members(tmp_path / f"{epoch}.keras"), members(tmp_path / "keras.keras"))
        step(model)  # the next epoch
    # the first file by Keras, the second learns where the variables lie (a second save), the third by the writer
    assert len(calls) == 2 and writer.layout


def test_a_lowered_learning_rate_reaches_the_written_config(tmp_path):
    model = trained()
    writer, calls = SnapshotWriter(), saved_by_keras(model)
    writer.write(model, snapshot(model), tmp_path / "0.keras")
    writer.write(model, snapshot(model), tmp_path / "1.keras")
    model.optimizer.learning_rate = 1e-3  # as the plateau schedule lowers it
    for epoch in (2, 3):  # the epoch that sees the change (saved by Keras), and the next one (by the writer)
        writer.write(model, snapshot(model), tmp_path / f"{epoch}.keras")
        keras.Model.save(model, tmp_path / "keras.keras")
        assert_as_keras_writes(members(tmp_path / f"{epoch}.keras"), members(tmp_path / "keras.keras"))
    assert len(calls) == 3
    loaded = load_model(tmp_path / "3.keras")
    assert float(loaded.optimizer.learning_rate) == pytest.approx(1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(snapshot(loaded), snapshot(model)))


@keras.saving.register_keras_serializable("seglab_tests")
class Calibrated(keras.layers.Layer):
    """A layer that saves a value of its own beside its variables, as some do (a fitted constant)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones")

    def call(self, x):
        return x * self.scale

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["calibration"] = np.full((4,), 0.25, "float32")

    def load_own_variables(self, store):
        super().load_own_variables({k: store[k] for k in store.keys() if k != "calibration"})


def test_a_file_keras_lays_out_otherwise_is_saved_by_keras(tmp_path):
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Calibrated()(inputs)))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    writer, calls = SnapshotWriter(), saved_by_keras(model)
    for epoch in (1, 2, 3):
        writer.write(model, snapshot(model), tmp_path / f"{epoch}.keras")
    assert writer.layout is False and len(calls) == 4  # three files and the one that found the layout
    loaded = keras.models.load_model(tmp_path / "3.keras")
    assert all(np.array_equal(a, b) for a, b in zip(snapshot(loaded), snapshot(model)))
