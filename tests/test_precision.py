"""Precision: `auto` follows the CPU's bfloat16 support; a run records and keeps what it used."""
from __future__ import annotations

import math

import keras
import pytest

from seglab.core.precision import cpu_has_bfloat16, precision, resolve_precision
from seglab.runs.config import TrainConfig

pytestmark = pytest.mark.slow  # real training runs: `make test` runs them, `make check` does not


def test_bfloat16_support_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_bfloat16(cpuinfo)
    assert not cpu_has_bfloat16(tmp_path / "missing")


def test_named_precisions_are_checked_and_auto_resolves_to_one_of_them():
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("auto") in ("float32", "mixed_bfloat16")
    with pytest.raises(ValueError, match="Use one of: auto, float32, mixed_bfloat16, mixed_float16"):
        resolve_precision("fp8")


def test_the_global_policy_comes_back_after_building():
    before = keras.mixed_precision.global_policy().name
    with precision("mixed_bfloat16"):
        layer = keras.layers.Dense(2)
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == before


def test_auto_is_float16_with_loss_scaling_where_there_is_a_gpu(monkeypatch):
    import seglab.core.precision

    monkeypatch.setattr(seglab.core.precision, "_has_gpu", lambda: True)
    assert resolve_precision("auto") == "mixed_float16"
    monkeypatch.setattr(seglab.core.precision, "_has_gpu", lambda: False)
    assert resolve_precision("auto") == ("mixed_bfloat16" if cpu_has_bfloat16() else "float32")


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_a_run_records_its_precision_and_its_model_keeps_it(tmp_path, name):
    import yaml
    from conftest import TINY_TRAINING

    import seglab

    run = seglab.train("synthetic", tmp_path / "run", epochs=1, verbose=0, **{**TINY_TRAINING, "precision": name})
    assert yaml.safe_load(run.config_path.read_text())["setup"]["precision"] == name
    model = keras.models.load_model(run.model_path)
    assert model.get_layer("logits").compute_dtype == "float32"  # the losses always see float32 logits
    expected = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(name, "float32")
    assert {layer.compute_dtype for layer in model.layers if layer.name != "logits" and layer.weights} == {expected}
    # float16 gradients are loss-scaled (Keras wraps the optimizer for this policy), and stay so on resume
    last = run.load_model("last")
    assert isinstance(last.optimizer, keras.optimizers.LossScaleOptimizer) == (name == "mixed_float16")
    steps = math.ceil(len(TrainConfig.load(run.config_path).open_source().split("train")) / TINY_TRAINING["batch_size"])
    assert int(last.optimizer.iterations.numpy()) == steps  # its state came back with it: resume counts epochs by it
    if name == "mixed_bfloat16":  # its float32 export is checked against the model computed in float32, not bfloat16
        from seglab.commands.exporting import export

        parity = export(run.path, "onnx")["parity"]
        assert parity["reference"] == "model.keras computed in float32 (it was trained in mixed_bfloat16)"
        assert parity["label_agreement"] >= 0.999
