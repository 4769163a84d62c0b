"""Whole-step XLA (`--jit`): compiled once, the same numbers, and a clear fallback where XLA refuses."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import TINY_TRAINING as TINY
from conftest import blocks_mask, reordered_sum_tolerance, write_folder

import seglab
from seglab.scoring import losses
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics


@pytest.mark.slow
def test_nothing_is_traced_again_after_the_first_epoch(tmp_path, monkeypatch):
    """Python runs the loss only while TensorFlow traces a step (each trace is a new XLA
    compilation): the steps are traced before the first epoch (and the last, smaller validation
    batch in it), never in the epochs after."""
    import keras

    traced, epoch = [], {"now": 0}
    pixel_loss = losses.CrossEntropy.pixel_loss
    monkeypatch.setattr(losses.CrossEntropy, "pixel_loss",
                        lambda self, *a: traced.append(epoch["now"]) or pixel_loss(self, *a))
    from seglab.commands import training

    fit = keras.Model.fit

    def fit_marking_epochs(model, *args, callbacks=(), **kwargs):
        mark = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epoch.update(now=e + 1))
        return fit(model, *args, callbacks=[mark, *callbacks], **kwargs)

    monkeypatch.setattr(training.keras.Model, "fit", fit_marking_epochs)
    run = seglab.train("synthetic", tmp_path / "run", epochs=3, verbose=0, jit=True, **TINY)
    assert run.config.setup.jit is True
    assert yaml.safe_load(run.config_path.read_text())["setup"]["jit"] is True
    assert traced and max(traced) <= 1, f"traced in epochs {sorted(set(traced))}"


@pytest.mark.parametrize("loss", ["ce+dice", "focal"])
def test_losses_and_metrics_inside_an_xla_step_match_their_eager_values(loss):
    """The loss and metrics Keras's compiled step calls are the same arithmetic: the loss within a
    reordered float32 sum over the batch's pixels, the confusion counts exactly."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 16, 16, 3)).astype(np.float32) * 3
    truth = rng.integers(0, 3, (4, 16, 16)).astype(np.uint8)
    truth[0, :4] = 255  # ignored pixels
    fn = make_loss(loss, 3, class_weights=[1.0, 2.0, 0.5])
    inside, outside = segmentation_metrics(3)[1], segmentation_metrics(3)[1]

    @tf.function(jit_compile=True)
    def step(y, z):
        inside.update_state(y, z)
        return fn(y, z)

    eager = float(fn(truth, logits))
    compiled = float(step(truth, logits))
    assert compiled == pytest.approx(eager, abs=reordered_sum_tolerance(eager, truth.size) + 1e-6)
    outside.update_state(truth, logits)
    np.testing.assert_array_equal(inside.confusion.numpy(), outside.confusion.numpy())
    assert inside.confusion.numpy().sum() == (truth != 255).sum()


@pytest.mark.long
@pytest.mark.slow
def test_a_model_xla_refuses_trains_without_it_and_says_why(tmp_path, capfd):
    """KerasHub's SegFormer adds float32 to bfloat16 in its gradient under mixed_bfloat16, which
    XLA refuses: training goes on without XLA, says so in one line, and records jit: false."""
    pytest.importorskip("keras_hub")
    data = write_folder(tmp_path / "data", {f"s{i:02d}": blocks_mask(64, 64) for i in range(12)}, classes=["a", "b", "c"])
    run = seglab.train(data, tmp_path / "run", epochs=1, verbose=0, model="segformer", size=64, batch_size=4,
                       weights="none", precision="mixed_bfloat16", previews=1, jit=True)
    said = [line for line in capfd.readouterr().err.splitlines() if line.startswith("Training without XLA")]
    assert len(said) == 1 and "segformer under mixed_bfloat16" in said[0] and "precision" in said[0], said
    assert run.state["status"] == "complete" and run.config.setup.jit is False


def test_xla_is_off_on_cpus_unless_asked_and_off_under_tf_distribute():
    from seglab.engines.jit import choose

    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert choose(None, distributed=False) == (gpu, None)
    assert choose(True, distributed=False) == (True, None)
    assert choose(False, distributed=False) == (False, None)
    assert choose(None, distributed=True) == (False, None)
    on, why = choose(True, distributed=True)
    assert on is False and "tf.distribute" in why
