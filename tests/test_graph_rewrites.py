"""The export rewrites compute what they replace: sub-pixel transposed convolutions against Keras's
Conv2DTranspose, and the concat + conv split against the unsplit ONNX graph on ONNX Runtime."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import reordered_sum_tolerance

from seglab.commands.exporting import write_graph
from seglab.deploy.deployable import deployable, stride
from seglab.deploy.graph_rewrites import (
    SubPixelConvTranspose,
    split_concat_conv,
    subpixel_applies,
)
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
    expected = source(x)
    taps = int(np.prod(np.broadcast_to(kernel, 2))) * 4  # the kernel over the 4 input channels bounds every sum
    np.testing.assert_allclose(rewritten(x), expected, rtol=0, atol=reordered_sum_tolerance(expected, taps))


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
    expected = as_trained.predict_on_batch(x)
    # pix2pix's longest sum: 4 x 4 taps over 16 + 16 channels in the decoder
    np.testing.assert_allclose(copy.predict_on_batch(x), expected, rtol=0, atol=reordered_sum_tolerance(expected, 4 * 4 * 32))


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
    atol = reordered_sum_tolerance(before, 3 * 3 * 12)  # unet's longest sum: 3 x 3 taps over 4 + 8 channels
    np.testing.assert_allclose(after, before, rtol=0, atol=atol)
    np.testing.assert_allclose(after, deployable(model)[0].predict_on_batch(x), rtol=0, atol=atol)
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

    from seglab.deploy.graph_rewrites import float32_nodes

    model = build_model("unet", 3, 32, filters=(4, 8))
    path, _, _ = write_graph(model, "onnx", tmp_path, int8=True)
    nodes = onnx.load(str(path)).graph.node
    convs = [node.name for node in nodes if node.op_type == "Conv"]
    kept = float32_nodes(path)
    assert convs[0] in kept and convs[-1] in kept and not set(convs[1:-1]) & set(kept)
    producers = {name: node for node in nodes for name in node.output}
    last = producers[onnx.load(str(path)).graph.output[0].name]
    assert last.name in kept  # the chain from the last convolution to the output


def _decoder(kernel: int, padding: str) -> keras.Model:
    """An encoder-decoder in miniature: a transposed convolution followed by batch normalisation
    (seglab's, on TensorFlow's fused kernel, which tf2onnx writes as one BatchNormalization), a
    skip concatenation and a transposed-convolution logits layer that is the graph's output."""
    from seglab.models.batch_norm import FusedBatchNormalization

    image = keras.Input((32, 32, 3), name="image")
    skip = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(skip)
    x = keras.layers.Conv2DTranspose(8, kernel, strides=2, padding=padding, use_bias=False)(x)
    x = keras.layers.ReLU()(FusedBatchNormalization()(x))
    if padding == "valid":  # (n - 1) * 2 + kernel pixels: back to the skip's size
        x = keras.layers.Cropping2D(((0, kernel - 2), (0, kernel - 2)))(x)
    x = keras.layers.Concatenate()([x, skip])
    return keras.Model(image, keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", name="logits")(x))


@pytest.mark.filterwarnings("ignore:In the future `np.object`:FutureWarning")  # tf2onnx's numpy 2 shim, once
@pytest.mark.parametrize("kernel,padding", [(3, "same"), (4, "same"), (3, "valid")])
def test_transposed_convolutions_crop_with_their_own_pads_and_keep_the_output(kernel, padding, tmp_path):
    """tf2onnx crops a dynamic-size transposed convolution with a Slice and a Pad computed from
    Shape ops; after the rewrite the ConvTranspose crops itself (its `pads`), the BatchNormalization
    after it is folded in, the small logits layer is split over the concatenation, and ONNX
    Runtime gives the same logits at sizes other than the probes'."""
    import onnx
    import onnxruntime as ort

    from seglab.deploy.graph_rewrites import static_transposed_crops

    model = _decoder(kernel, padding)
    rng = np.random.default_rng(3)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if "variance" in v.path
                       else rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for v, w in zip(model.weights, model.get_weights())])
    copy, dynamic = deployable(model, subpixel="free")
    assert dynamic
    path = tmp_path / "model.onnx"
    copy.export(str(path), format="onnx", verbose=False)
    x = rng.uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)  # not a probe's size

    def run():
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

    def ops():
        return [node.op_type for node in onnx.load(str(path)).graph.node]

    before = run()
    # the longest sum: the logits layer's 3 x 3 taps over 8 + 12 channels (the others are shorter)
    atol = reordered_sum_tolerance(before, 3 * 3 * 20)
    assert "Slice" in ops() and "BatchNormalization" in ops()
    assert static_transposed_crops(path, stride(model)) == 2
    assert split_concat_conv(path) == 1  # the logits layer: 2 x 4 outputs a pixel against 20 channels in
    assert {"Pad", "BatchNormalization", "Concat", "Shape"}.isdisjoint(ops()), ops()
    assert ops().count("Slice") == (padding == "valid")  # the model's own Cropping2D stays
    assert ops().count("ConvTranspose") == 3
    after = run()
    np.testing.assert_allclose(after, before, rtol=0, atol=atol)
    np.testing.assert_allclose(after, copy.predict_on_batch(x), rtol=0, atol=atol)  # another runtime
    assert static_transposed_crops(path, stride(model)) == 0  # nothing left to rewrite


@pytest.mark.parametrize("cut,rewritten", [("Sub", 1), ("Div", 0)])
def test_a_crop_is_rewritten_only_where_it_does_not_depend_on_the_size(cut, rewritten, tmp_path):
    """A hand-written graph: a ConvTranspose whose output loses its last row (Sub: h - 1 rows
    kept, the same crop at every size) or its lower half (Div: h / 2 kept, a crop that grows with
    the image). The first becomes the ConvTranspose's pads; the second is left as it was."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from seglab.deploy.graph_rewrites import static_transposed_crops

    rng = np.random.default_rng(4)
    constants = [numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "W"),
                 numpy_helper.from_array(np.array([2], np.int64), "two"),
                 numpy_helper.from_array(np.array([1], np.int64), "one"),
                 numpy_helper.from_array(np.array([0], np.int64), "zero")]
    nodes = [helper.make_node("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("ConvTranspose", ["x", "W"], ["y"], strides=[2, 2], kernel_shape=[3, 3]),
             helper.make_node("Shape", ["y"], ["shape"]),
             helper.make_node("Gather", ["shape", "two"], ["height"]),
             helper.make_node(cut, ["height", "one" if cut == "Sub" else "two"], ["end"]),
             helper.make_node("Slice", ["y", "zero", "end", "two"], ["z"]),
             helper.make_node("Transpose", ["z"], ["logits"], perm=[0, 2, 3, 1])]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, None, None, 3])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "crop", [image], [logits], constants)
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = rng.uniform(0, 1, (1, 20, 12, 3)).astype(np.float32)

    def run():
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

    before = run()
    assert static_transposed_crops(path, 4) == rewritten
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ("Slice" in ops) == (not rewritten)
    np.testing.assert_allclose(run(), before, rtol=1e-6, atol=1e-6)


def test_a_graph_the_probe_cannot_run_keeps_its_crops(tmp_path, monkeypatch):
    """The rewrite is for speed only: where the probe run fails, the file is left as it was."""
    import seglab.deploy.graph_rewrites as rewrites

    model = _decoder(3, "same")
    path = tmp_path / "model.onnx"
    deployable(model, subpixel="free")[0].export(str(path), format="onnx", verbose=False)
    before = path.read_bytes()

    def fails(*args):  # what ONNX Runtime raises for a graph it cannot run at a size
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION")

    monkeypatch.setattr(rewrites, "_probe", fails)
    assert rewrites.static_transposed_crops(path, stride(model)) == 0
    assert path.read_bytes() == before
