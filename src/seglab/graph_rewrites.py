"""Rewrites of an exported graph that compute the same function faster on ONNX Runtime.

Both were chosen from ONNX Runtime's per-operator profile of seglab's U-Nets on CPU
(benchmarks/bench_runtimes.py; the closing note of the export issue has the figures):

- **Sub-pixel transposed convolutions** (Keras level, before conversion). A transposed convolution
  with stride s is one ordinary convolution with s*s*filters outputs followed by a pixel shuffle
  (Shi et al., 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient
  Sub-Pixel Convolutional Neural Network"). Where the kernel equals the stride (U-Net, FCN-8s) it
  costs no extra FLOPs and spares the Shape/Slice/Pad crop that tf2onnx adds after a transposed
  convolution of dynamic size. For int8 it is what lets the decoder be quantized at all: ONNX
  Runtime runs Conv in int8 but leaves ConvTranspose in float32, dequantizing its inputs on every
  call. With a kernel larger than the stride (pix2pix's 4x4, stride 2) the convolution does more
  multiply-adds than the transposed one, so float32 graphs keep those as they are.
- **Constant normalisation** (Keras level): see ConstantNormalization; a correctness fix, not speed.
- **Concatenation + convolution split** (ONNX level). conv(concat(a, b)) = conv(a, W_a) + conv(b, W_b):
  a U-Net decoder's skip concatenation then never materialises, and ONNX Runtime's blocked (NCHWc)
  layout runs straight through from the encoder's skip to the addition, which it fuses into the
  second convolution.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def subpixel_applies(layer, all_kernels: bool) -> bool:
    """Whether `layer` is a transposed convolution the sub-pixel form reproduces exactly (output
    size = input size x stride), and worth rewriting: always with `all_kernels`, else only where
    the kernel equals the stride (no extra FLOPs)."""
    if type(layer) is not keras.layers.Conv2DTranspose:
        return False
    config = layer.get_config()
    kernel, strides = tuple(config["kernel_size"]), tuple(config["strides"])
    exact = (config.get("data_format", "channels_last") == "channels_last"
             and tuple(config.get("dilation_rate", (1, 1))) == (1, 1) and config.get("output_padding") is None
             and (config["padding"] == "same" or kernel == strides))
    return exact and (all_kernels or kernel == strides)


def _plan(kernel: int, stride: int, pad_before: int) -> tuple[int, int, np.ndarray]:
    """For one axis: the padding before and after, and for each tap r of the sub-pixel kernel and
    each output phase a, which tap of the transposed kernel it is (`kernel` = none, a zero).

    Output pixel o = q*stride + a of the transposed convolution sums x[i] * W[t] over
    i*stride + t - pad_before = o, i.e. over x[q + m] with t = -m*stride + a + pad_before."""
    offsets = [m for m in range(-kernel, kernel + 1)
               if any(0 <= -m * stride + a + pad_before < kernel for a in range(stride))]
    first, last = min(offsets), max(offsets)
    taps = np.full((last - first + 1, stride), kernel, np.int32)
    for r in range(last - first + 1):
        for a in range(stride):
            t = -(r + first) * stride + a + pad_before
            if 0 <= t < kernel:
                taps[r, a] = t
    return -first, last, taps


class SubPixelConvTranspose(keras.layers.Layer):
    """A Conv2DTranspose computed as pad + convolution to stride_h*stride_w*filters channels + pixel
    shuffle. Holds the transposed layer's own kernel and bias (same shapes, same order), so the
    source model's weights load unchanged. Only ever part of an exported graph, never saved."""

    def __init__(self, source_config: dict, **kwargs):
        super().__init__(name=source_config["name"], **kwargs)
        self.filters = source_config["filters"]
        self.kernel_size = tuple(source_config["kernel_size"])
        self.strides = tuple(source_config["strides"])
        self.use_bias = source_config["use_bias"]
        self.activation = keras.activations.get(source_config["activation"])
        same = source_config["padding"] == "same"
        self.plans = [_plan(k, s, max(k - s, 0) // 2 if same else 0) for k, s in zip(self.kernel_size, self.strides)]

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(*self.kernel_size, self.filters, input_shape[-1]), name="kernel")
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), name="bias")

    def _subpixel_kernel(self):
        import tensorflow as tf  # export runs on TensorFlow; a constant subgraph the converters fold

        (_, _, taps_h), (_, _, taps_w) = self.plans
        (sh, sw), f = self.strides, self.filters
        w = tf.pad(self.kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])  # tap `kernel` of each axis is zero
        w = tf.gather(tf.gather(w, taps_h.reshape(-1), axis=0), taps_w.reshape(-1), axis=1)
        w = tf.reshape(w, (len(taps_h), sh, len(taps_w), sw, f, -1))  # r_h, a_h, r_w, a_w, filter, in
        w = tf.transpose(w, (0, 2, 5, 1, 3, 4))  # r_h, r_w, in, a_h, a_w, filter
        return tf.reshape(w, (len(taps_h), len(taps_w), -1, sh * sw * f))

    def call(self, x):
        import tensorflow as tf

        (before_h, after_h, _), (before_w, after_w, _) = self.plans
        (sh, sw), f = self.strides, self.filters
        if before_h or after_h or before_w or after_w:
            x = tf.pad(x, [[0, 0], [before_h, after_h], [before_w, after_w], [0, 0]])
        y = tf.nn.conv2d(x, self._subpixel_kernel(), 1, "VALID")
        # pixel shuffle as reshape/transpose in NHWC, not tf.nn.depth_to_space: ONNX's DepthToSpace
        # is NCHW and cost ONNX Runtime a layout change around every one (15% of mobilenet_unet's time)
        shape = tf.shape(y)
        y = tf.reshape(y, tf.stack([shape[0], shape[1], shape[2], sh, sw, f]))
        y = tf.transpose(y, (0, 1, 3, 2, 4, 5))
        y = tf.reshape(y, tf.stack([shape[0], shape[1] * sh, shape[2] * sw, f]))
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)


class ConstantNormalization(keras.layers.Layer):
    """Keras's Normalization with a fixed mean and variance (EfficientNetV2's preprocessing), its
    constants made inside the traced call. Keras's layer makes them once, outside the trace, and
    tf2onnx turns such captured tensors into graph inputs the caller would have to feed."""

    def __init__(self, source_config: dict, **kwargs):
        super().__init__(name=source_config["name"], **kwargs)
        self.mean = np.asarray(source_config["mean"], np.float32)
        self.std = np.sqrt(np.maximum(np.asarray(source_config["variance"], np.float32), keras.backend.epsilon()))

    def call(self, x):
        return (x - keras.ops.convert_to_tensor(self.mean)) / keras.ops.convert_to_tensor(self.std)


def constant_normalization_applies(layer) -> bool:
    config = layer.get_config() if isinstance(layer, keras.layers.Normalization) else {}
    return config.get("mean") is not None and config.get("variance") is not None and not config.get("invert")


def split_concat_conv(path: Path) -> int:
    """Rewrite, in the ONNX file at `path`, every channel Concat whose only consumer is a Conv
    (weights constant, one group) as one Conv per concatenated input, summed; return how many."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    channels = {}  # data propagation resolves the channel count of a reshape to (.., filters)
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    for info in (*inferred.value_info, *inferred.input):
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = dims[1].dim_value

    def attribute(node, name, default=None):
        return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)

    done = 0
    for concat in list(graph.node):
        users = consumers.get(concat.output[0], [])
        if (concat.op_type != "Concat" or attribute(concat, "axis") != 1 or len(users) != 1
                or len(concat.input) < 2):
            continue
        conv = users[0]
        parts = [channels.get(name) for name in concat.input]
        if (conv.op_type != "Conv" or conv.input[0] != concat.output[0] or conv.input[1] not in weights
                or attribute(conv, "group", 1) != 1 or None in parts):
            continue
        kernel = numpy_helper.to_array(weights[conv.input[1]])
        if kernel.shape[1] != sum(parts):
            continue
        nodes, sums = [], []
        for i, (name, kernel_part) in enumerate(zip(concat.input, np.split(kernel, np.cumsum(parts)[:-1], axis=1))):
            part = f"{conv.name}/part{i}"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(kernel_part), f"{part}/W"))
            bias = conv.input[2:3] if i == 0 else []  # the bias once
            node = helper.make_node("Conv", [name, f"{part}/W", *bias], [f"{part}:0"], name=part)
            node.attribute.extend(conv.attribute)
            nodes.append(node)
            sums.append(f"{part}:0")
        total = sums[0]
        for i, term in enumerate(sums[1:], start=1):
            out = conv.output[0] if i == len(sums) - 1 else f"{conv.name}/sum{i}:0"
            nodes.append(helper.make_node("Add", [total, term], [out], name=f"{conv.name}/sum{i}"))
            total = out
        at = list(graph.node).index(conv)
        graph.node.remove(conv)
        graph.node.remove(concat)
        for offset, node in enumerate(nodes):
            graph.node.insert(at - 1 + offset, node)
        if not any(conv.input[1] in n.input for n in graph.node):
            graph.initializer.remove(weights[conv.input[1]])
        done += 1
    if done:
        onnx.save(model, str(path))
    return done


def float32_nodes(path: Path) -> list[str]:
    """The names of the nodes int8 quantization should leave in float32, as is common practice:
    the first convolution (of the raw image) and the nodes from the last convolution to each output
    (the logits layer, its bias, pixel shuffle and layout changes), so class scores are not rounded
    to 256 levels before the argmax. Both are a sliver of the FLOPs; on a mobilenet_unet trained 3
    epochs on the Oxford pets, keeping the first in float32 raised label agreement from 94.2% to 97.7%."""
    import onnx

    graph = onnx.load(str(path)).graph
    constants = {init.name for init in graph.initializer}
    producer = {name: node for node in graph.node for name in node.output}
    constants |= {node.output[0] for node in graph.node if node.op_type == "Constant"}
    names, seen = [], set()
    stack = [output.name for output in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        names.append(node.name)
        if node.op_type not in ("Conv", "ConvTranspose"):  # follow the data: the first input (the others
            # of Reshape, Pad, Slice are shapes), and both sides of an elementwise op unless constant
            inputs = node.input[:2] if node.op_type in ("Add", "Sub", "Mul", "Div") else node.input[:1]
            stack.extend(name for name in inputs if name not in constants)
    first = next((node.name for node in graph.node if node.op_type == "Conv"), None)
    return names + ([first] if first and first not in names else [])
