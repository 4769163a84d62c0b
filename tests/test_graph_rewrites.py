"""The export rewrites compute what they replace: sub-pixel transposed convolutions against Keras's
Conv2DTranspose, and the concat + conv split against the unsplit ONNX graph on ONNX Runtime."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from seglab.exporting import deployable, stride, write_graph
from seglab.graph_rewrites import SubPixelConvTranspose, split_concat_conv, subpixel_applies
from seglab.models import build_model

# (kernel, strides, padding): U-Net's 2/2, pix2pix's 4/2, FCN-8s's 8/8 valid, odd and rectangular ones
CASES = [(2, 2, "same"), (3, 2, "same"), (4, 2, "same"), (8, 8, "valid"), (16, 8, "same"), (1, 2, "same"),
         ((3, 4), (2, 3), "same"), ((2, 3), (2, 3), "valid")]


@pytest.mark.parametrize("kernel,strides,padding", CASES)
def test_the_sub_pixel_form_equals_the_transposed_convolution(kernel, strides, padding):
    rng = np.random.default_rng(0)
    source = keras.layers.Conv2DTranspose(5, kernel, strides=strides, padding=padding, activation="relu")
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    source(x)
    source.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in source.get_weights()])
    assert subpixel_applies(source, all_kernels=True)
    rewritten = SubPixelConvTranspose(source.get_config())
    rewritten.build(x.shape)
    rewritten.set_weights(source.get_weights())  # same weights, same order
    np.testing.assert_allclose(rewritten(x), source(x), atol=1e-5)


def test_only_exact_rewrites_apply_and_free_ones_by_default():
    assert not subpixel_applies(keras.layers.Conv2DTranspose(4, 3, strides=2, padding="valid"), all_kernels=True)
    assert not subpixel_applies(keras.layers.Conv2DTranspose(4, 2, strides=2, dilation_rate=1, output_padding=1),
                                all_kernels=True)
    assert not subpixel_applies(keras.layers.Conv2D(4, 2, strides=2), all_kernels=True)
    assert subpixel_applies(keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same"), all_kernels=False)
    assert not subpixel_applies(keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same"), all_kernels=False)


@pytest.mark.slow
def test_a_deployable_copy_with_sub_pixel_convolutions_gives_the_models_logits():
    model = build_model("pix2pix_unet", 3, 64, filters=8, max_filters=16)
    rng = np.random.default_rng(1)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.1 for w in model.get_weights()])
    copy, dynamic = deployable(model, subpixel="all")
    assert dynamic and not any(type(layer) is keras.layers.Conv2DTranspose for layer in copy.layers)
    x = rng.uniform(0, 255, (2, 64, 64 + stride(model), 3)).astype(np.float32)  # another size too
    as_trained, _ = deployable(model)  # the same copy, transposed convolutions kept
    np.testing.assert_allclose(copy.predict_on_batch(x), as_trained.predict_on_batch(x), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:In the future `np.object`:FutureWarning")  # tf2onnx's numpy 2 shim, once
def test_the_concat_conv_split_keeps_the_onnx_graphs_output(tmp_path):
    import onnx
    import onnxruntime as ort

    model = build_model("unet", 3, 32, filters=(4, 8))
    rng = np.random.default_rng(2)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.2 for w in model.get_weights()])
    copy, _ = deployable(model, subpixel="free")
    path = tmp_path / "model.onnx"
    copy.export(str(path), format="onnx", verbose=False)
    x = rng.uniform(0, 255, (2, 48, 32, 3)).astype(np.float32)

    def run():
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

    before, concats = run(), sum(node.op_type == "Concat" for node in onnx.load(str(path)).graph.node)
    assert split_concat_conv(path) == 2  # one per U-Net level
    assert sum(node.op_type == "Concat" for node in onnx.load(str(path)).graph.node) == concats - 2
    after = run()
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(after, deployable(model)[0].predict_on_batch(x), rtol=1e-4, atol=1e-4)
    assert split_concat_conv(path) == 0  # nothing left to split


@pytest.mark.slow
def test_written_onnx_graphs_are_rewritten(tmp_path):
    import onnx

    model = build_model("unet", 3, 32, filters=(4, 8))
    path, _, _ = write_graph(model, "onnx", tmp_path)
    nodes = onnx.load(str(path)).graph.node
    ops = [node.op_type for node in nodes]
    assert "ConvTranspose" not in ops and "Pad" not in ops  # sub-pixel, no dynamic-size crop
    concatenated = {node.output[0] for node in nodes if node.op_type == "Concat"}  # the rest build shapes
    assert not any(node.input[0] in concatenated for node in nodes if node.op_type == "Conv")


@pytest.mark.slow
def test_int8_leaves_the_first_convolution_and_the_logits_layer_in_float32(tmp_path):
    import onnx

    from seglab.graph_rewrites import float32_nodes

    model = build_model("unet", 3, 32, filters=(4, 8))
    path, _, _ = write_graph(model, "onnx", tmp_path, int8=True)
    nodes = onnx.load(str(path)).graph.node
    convs = [node.name for node in nodes if node.op_type == "Conv"]
    kept = float32_nodes(path)
    assert convs[0] in kept and convs[-1] in kept and not set(convs[1:-1]) & set(kept)
    producers = {name: node for node in nodes for name in node.output}
    last = producers[onnx.load(str(path)).graph.output[0].name]
    assert last.name in kept  # the chain from the last convolution to the output
