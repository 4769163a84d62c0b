"""FusedBatchNormalization computes what keras.layers.BatchNormalization does, on the fused kernel."""
from __future__ import annotations

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from seglab.core.precision import precision
from seglab.models import all_layers, build_model
from seglab.models.batch_norm import FusedBatchNormalization, with_fused_batch_norm


def _op_types(layer, x, training):
    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(tf.TensorSpec(x.shape)).graph
    return collections.Counter(op.type for op in graph.get_operations())


def _pair(shape, **options):
    """A Keras BatchNormalization and a FusedBatchNormalization with the same, non-trivial weights."""
    keras_bn, fused = keras.layers.BatchNormalization(**options), FusedBatchNormalization(**options)
    keras_bn.build(shape), fused.build(shape)
    channels = keras_bn.gamma.shape[0]
    rng = np.random.default_rng(1)
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(size=channels), rng.normal(size=channels),
               rng.uniform(0.5, 2.0, channels)]
    weights = [w.astype(np.float32) for w in weights]
    keras_bn.set_weights(weights), fused.set_weights(weights)
    return keras_bn, fused


def _run(layer, x, training):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        # a loss weighing each output differently: a per-channel sum of the normalised values has no
        # gradient in training mode
        weights = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return y, [g.numpy() for g in grads], layer.moving_mean.numpy(), layer.moving_variance.numpy()


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_fused_batch_norm_gives_kerass_outputs_gradients_and_moving_statistics(policy, training):
    x = np.random.default_rng(0).normal(2.0, 3.0, (4, 8, 8, 5)).astype(np.float32)
    with precision(policy):
        keras_bn, fused = _pair(x.shape, momentum=0.9)
        assert _op_types(fused, x, training)["FusedBatchNormV3"] == 1
        assert "FusedBatchNormV3" not in _op_types(keras_bn, x, training)
        (y_k, grads_k, mean_k, var_k), (y_f, grads_f, mean_f, var_f) = _run(keras_bn, x, training), _run(fused, x, training)
    assert y_f.dtype == y_k.dtype == (tf.bfloat16 if policy == "mixed_bfloat16" else tf.float32)
    np.testing.assert_allclose(tf.cast(y_f, tf.float32), tf.cast(y_k, tf.float32), atol=1e-5 if policy == "float32" else 0.02)
    for g_f, g_k in zip(grads_f, grads_k):
        np.testing.assert_allclose(g_f, g_k, rtol=1e-4, atol=1e-4 * np.abs(g_k).max())
    # Training updates the moving statistics by Keras's rule, with the batch's biased variance.
    np.testing.assert_allclose(mean_f, mean_k, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var_f, var_k, rtol=1e-6)
    if training:
        assert not np.allclose(mean_f, _pair(x.shape)[1].moving_mean.numpy())


@pytest.mark.parametrize("case,shape,options", [
    ("a dense layer's features", (4, 6), {}),
    ("channels first", (4, 5, 8, 8), {"axis": 1}),
    ("statistics synchronised across replicas", (4, 8, 8, 5), {"synchronized": True}),
])
def test_where_the_fused_kernel_does_not_apply_it_is_kerass_own_code(case, shape, options):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    keras_bn, fused = _pair(shape, **options)
    assert "FusedBatchNormV3" not in _op_types(fused, x, True)
    np.testing.assert_allclose(_run(fused, x, True)[0], _run(keras_bn, x, True)[0], atol=1e-6)


def test_a_keras_applications_network_gives_the_same_outputs_on_the_fused_kernel():
    network = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3), alpha=0.35)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    before, weights = network.predict_on_batch(x), network.get_weights()
    assert with_fused_batch_norm(network) is network  # in place: no new layers, no new random draws
    assert [type(layer).__name__ for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)] == \
        ["FusedBatchNormalization"] * 52
    for a, b in zip(network.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(network.predict_on_batch(x), before, atol=1e-4)


def test_every_batch_norm_seglab_builds_is_fused():
    for name, options in [("unet", {"batch_norm": True, "filters": (4, 8)}), ("pix2pix_unet", {"filters": 8}),
                          ("deeplabv3plus", {"weights": "none", "filters": 16}),
                          ("mobilenet_unet", {"weights": "none", "fine_tune": "all", "alpha": 0.35})]:
        model = build_model(name, 3, 64, **options)
        kinds = {type(layer) for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)}
        assert kinds == {FusedBatchNormalization}, (name, kinds)
