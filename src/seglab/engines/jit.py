"""Whole-step XLA for `seglab train`: whether to use it, and its compilation before the first epoch.

With `jit_compile`, Keras compiles the training step (forward, loss, gradients, optimizer update,
metrics) and the validation step into one XLA computation each, fusing the element-wise work
between the convolutions. Whether that pays depends on the device:
- On a GPU it is the usual win, and `auto` turns it on.
- On CPUs, `auto` leaves it off: XLA's CPU convolutions are slower than the oneDNN kernels
  TensorFlow runs without it. On 2 AVX-512 cores (float32, 128 px, batch 16) a `unet` epoch took
  28-31 s with XLA against 16-17 s without (XLA's oneDNN and XNNPACK options changed nothing), and
  under mixed_bfloat16 `mobilenet_unet` took 6.0 s against 2.9 s and `deeplabv3plus` 33 s
  against 3.7 s at 64 px. On 2 AVX2-only cores (float32) plain convolutions break about even
  (`unet` 51 s against 57 s) and MobileNetV2's depthwise ones lose 3.6x (27 s against 7.5 s).
  Tiny models, whose step is mostly per-op overhead, gain on both: the demo's epochs take 1.6 s
  against 2.2 s (AVX-512) and 2.3 s against 3.4 s (AVX2), so `seglab demo` asks for XLA
  (docs/benchmarks.md).

XLA refuses some graphs (KerasHub's SegFormer under mixed_bfloat16 adds float32 to bfloat16 in
its gradient). The steps are therefore compiled here, before `fit`, on batches of zeros of the
datasets' types; where XLA refuses, training goes on without it and says why in one line. Every variable the trial step
changed (weights, optimizer state, metrics, random-generator states) is put back, so the run is
exactly the one that would have started without the trial, and `fit` reuses the compiled steps.
"""
from __future__ import annotations


def choose(asked: bool | None, distributed: bool) -> tuple[bool, str | None]:
    """(use XLA, why not where the user asked for it) for `--jit` (True), `--no-jit` (False) or
    neither (None: on with a GPU, off on CPUs; see the module's text)."""
    if distributed:
        # Keras runs a tf.distribute step's replicas and their all-reduce inside the compiled
        # function; it leaves XLA off under a strategy itself, and so does seglab.
        return False, "XLA is off under tf.distribute (Keras compiles a strategy's steps without it)" if asked else None
    if asked is not None:
        return asked, None
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU")), None


def compile_steps(model, train_ds, val_ds, batch_size: int, val_samples: int) -> str | None:
    """Compile `model`'s XLA training and validation steps for the batches of `train_ds` and
    `val_ds` (the datasets `fit` gets: the compiled steps are kept for their element types), then
    undo the trial step. None when both compiled; else the first line of XLA's refusal, with the
    model set to train without XLA.

    XLA compiles a step once per batch shape. The training stream repeats, so its batches are all
    whole; the validation split of `val_samples` ends with a smaller batch where the batch size
    does not divide it, and that shape is compiled here too, where the other compilations are
    (the demo's first epoch compiled it: 2.7 s on 2 AVX2 cores). A split smaller than one batch
    is compiled at its own size alone.

    The trial batches are zeros of the datasets' types, not their first batches: a new iterator
    over a dataset that reshuffles each iteration would move the order `fit` then trains in."""
    import tensorflow as tf

    variables = _state(model)
    saved = [v.numpy() for v in variables]
    refusal = None
    try:
        model.make_train_function()
        model.make_test_function()
        model.train_function(iter(_zeros_like(train_ds, batch_size)))
        for batch in _validation_batches(batch_size, val_samples):
            model.test_function(iter(_zeros_like(val_ds, batch)))
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError) as e:
        refusal = _first_line(e)
        model.jit_compile = False
        model.train_function = model.test_function = model.predict_function = None
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
        for metric in model.metrics:
            metric.reset_state()
    return refusal


def _validation_batches(batch_size: int, val_samples: int) -> list[int]:
    """The sizes of the validation batches `fit` meets: whole batches where the split holds one,
    and the last, smaller batch where `batch_size` does not divide it."""
    whole, last = divmod(val_samples, batch_size)
    return [size for size in (batch_size if whole else 0, last) if size] or [batch_size]


def _zeros_like(dataset, batch_size: int):
    """One batch of zeros with `dataset`'s element types (an unknown batch size included)."""
    import tensorflow as tf

    batch = tuple(tf.zeros([batch_size, *spec.shape[1:]], spec.dtype) for spec in dataset.element_spec)
    return tf.data.Dataset.from_tensors(batch).unbatch().batch(batch_size)


def _state(model) -> list:
    """Every variable a training step changes, once each."""
    seen, variables = set(), []
    for v in [*model.variables, *model.optimizer.variables, *(w for m in model.metrics for w in m.variables)]:
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    return variables


def _first_line(error) -> str:
    """The line of a TensorFlow error that says what XLA refused."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    said = [line for line in lines if "context [" in line or "not supported" in line.lower() or "unsupported" in line.lower()]
    line = (said or [line for line in lines if line] or [type(error).__name__])[0]
    return line[:300] + ("..." if len(line) > 300 else "")
