"""Whole-step XLA (`--jit`): compiled once, the same numbers, and a clear fallback where XLA refuses."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import TINY_TRAINING as TINY
from conftest import blocks_mask, reordered_sum_tolerance, write_folder

import seglab
from seglab.runs import Run
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics

# Run in a process of its own: TensorFlow reads TF_XLA_FLAGS once, at its first XLA compilation,
# and its persistent cache then writes one file per compilation, which is what is counted.
COUNTING = """
import json, os, sys
import keras
import seglab
from seglab.commands import training
from seglab.scoring import losses

cache, out, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
traced, compiled, epoch = [], [], {"now": 0}
pixel_loss = losses.CrossEntropy.pixel_loss  # Python runs the loss only while a step is traced
losses.CrossEntropy.pixel_loss = lambda self, *a: traced.append(epoch["now"]) or pixel_loss(self, *a)
fit = keras.Model.fit

def counting_fit(model, *args, callbacks=(), **kwargs):
    def mark(now):  # the compilations so far, at the start and after each epoch
        compiled.append(len(os.listdir(cache)))
        epoch.update(now=now)
    count = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: mark(1),
                                           on_epoch_end=lambda e, logs: mark(e + 2))
    return fit(model, *args, callbacks=[count, *callbacks], **kwargs)

training.keras.Model.fit = counting_fit
run = seglab.train("synthetic", out, epochs=3, verbose=0, jit=True, **options)
print(json.dumps({"traced": traced, "compiled": compiled, "jit": run.config.setup.jit}))
"""


@pytest.mark.slow
def test_nothing_is_traced_or_compiled_during_the_epochs(tmp_path):
    """Every trace of the steps (Python runs the loss only then) and every XLA compilation (one a
    batch shape, the validation split's last, smaller batch included) happens before the first
    epoch, none in the three epochs."""
    cache = tmp_path / "xla"
    cache.mkdir()
    env = {**os.environ, "TF_XLA_FLAGS": f"--tf_xla_persistent_cache_directory={cache}", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", COUNTING, str(cache), str(tmp_path / "run"), json.dumps(TINY)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["jit"] is True and yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["setup"]["jit"] is True
    assert counts["traced"] and set(counts["traced"]) == {0}, f"traced in epochs {sorted(set(counts['traced']))}"
    val = len(Run(tmp_path / "run").config.open_source().split("val"))
    assert val % TINY["batch_size"], f"{val} validation samples: this test needs a last batch smaller than the others"
    before, *after = counts["compiled"]
    assert before >= 3, counts  # the training step, the validation step and its last batch
    assert after == [before] * 3, f"compilations at the start and after each epoch: {counts['compiled']}"


def test_the_validation_batches_compiled_are_the_ones_fit_meets():
    from seglab.engines.jit import _validation_batches

    assert _validation_batches(16, 38) == [16, 6]  # two whole batches, then 6
    assert _validation_batches(8, 40) == [8]  # whole batches only
    assert _validation_batches(16, 5) == [5]  # a split smaller than a batch: never a batch of 16
    assert _validation_batches(4, 0) == [4]  # no validation images: the step as before


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
