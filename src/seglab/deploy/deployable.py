"""What a trained model becomes to run anywhere: a float32 copy taking any height and width the
architecture allows (`deployable`), its stride (`stride`), and the float32 reference an export is
checked against. Used by export and by the Keras predictor when asked for another size."""
from __future__ import annotations

import keras
import numpy as np

from seglab.core.decision import OUTPUTS, logit_cut
from seglab.core.errors import BadArgument
from seglab.deploy.graph_rewrites import (
    ConstantNormalization,
    SubPixelConvTranspose,
    constant_normalization_applies,
    subpixel_applies,
)
from seglab.models import all_layers, segformer


class OutputHead(keras.layers.Layer):
    """Logits -> probabilities (softmax, or sigmoid for one logit) or labels (`decide` at the
    default threshold). Only ever part of an exported graph, never saved."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        if kind not in OUTPUTS[1:]:
            raise BadArgument(f"Unknown output head {kind!r}. Use one of: {', '.join(OUTPUTS[1:])}.")
        self.kind = kind

    def call(self, logits):
        import tensorflow as tf  # exporting runs on TensorFlow; keras.ops.argmax adds ops ONNX lacks (Bitcast)

        binary = logits.shape[-1] == 1
        if self.kind == "probabilities":
            return tf.sigmoid(logits) if binary else tf.nn.softmax(logits, axis=-1)
        if binary:
            return tf.cast(logits[..., 0] > logit_cut(), tf.int32)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)


def deployable(model: keras.Model, output: str = "logits", subpixel: str | None = None) -> tuple[keras.Model, bool]:
    """A float32 copy of `model` taking images of any height and width where the architecture
    allows (else its own fixed size), returning `output`; and whether the size is dynamic.
    `subpixel` ("free": where the kernel equals the stride; "all") computes transposed
    convolutions in their sub-pixel form (see seglab.deploy.graph_rewrites)."""
    if holds_keras_hub(model):  # SegFormer: KerasHub's MiT takes one fixed, square size
        copy, dynamic = segformer.float32_copy(model), False
    else:
        try:
            copy, dynamic = _float32_copy(model, dynamic=True, subpixel=subpixel), True
            step = stride(model)  # a size the training size is not: does the copy really take it?
            copy(np.zeros((1, model.input_shape[1] + step, model.input_shape[2] + 2 * step, model.input_shape[-1]),
                          np.float32))
        except (ValueError, TypeError):  # a layer fixed to the training size (a Reshape, a Dense)
            copy, dynamic = _float32_copy(model, dynamic=False, subpixel=subpixel), False
    copy.set_weights(model.get_weights())
    if output != "logits":
        copy = keras.Model(copy.input, OutputHead(output, name=output)(copy.output), name=f"{model.name}_{output}")
    copy(np.zeros((1, *model.input_shape[1:]), np.float32), training=False)  # Keras exports only a called model
    return copy, dynamic


def holds_keras_hub(model: keras.Model) -> bool:
    return any(type(layer).__module__.startswith("keras_hub") or
               (isinstance(layer, keras.Model) and holds_keras_hub(layer)) for layer in model.layers)


def _float32_copy(model: keras.Model, dynamic: bool, name: str = "image", subpixel: str | None = None) -> keras.Model:
    """`model` rebuilt with every layer in float32 (a mixed-precision model too) and, when
    `dynamic`, every input (a nested encoder's too) of any height and width."""
    def copy(layer):
        if isinstance(layer, keras.Model):  # a nested encoder: its own input must be dynamic too
            return _float32_copy(layer, dynamic, name=None, subpixel=subpixel)
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        if subpixel and subpixel_applies(layer, all_kernels=subpixel == "all"):
            return SubPixelConvTranspose(config)
        if constant_normalization_applies(layer):
            return ConstantNormalization(config)
        return layer.__class__.from_config(config)

    shape = (None, None, model.input_shape[-1]) if dynamic else model.input_shape[1:]
    return keras.models.clone_model(model, input_tensors=keras.Input(shape, name=name), clone_function=copy)


def stride(model: keras.Model) -> int:
    """How many input pixels one step of the coarsest feature map spans (16 for a 4-level U-Net):
    a dynamic-size export takes heights and widths that are multiples of it. The 1x1 outputs of a
    global pooling (DeepLabV3+'s image-pooling branch) are not feature maps and do not count."""
    pooled = any(type(layer).__name__.startswith("Global") for layer in all_layers(model))
    sides = []
    for layer in all_layers(model):
        shape = getattr(getattr(layer, "output", None), "shape", None)
        if shape is not None and len(shape) == 4 and shape[1] and not (pooled and shape[1] == 1):
            sides.append(shape[1])
    return max(1, model.input_shape[1] // min(sides, default=model.input_shape[1]))


def float32_reference(model: keras.Model) -> tuple[keras.Model, str]:
    """What the exported file is checked against: the model itself, or for a model trained in
    mixed precision a float32 copy of it, since the file computes in float32. bfloat16 rounds to
    3 significant digits: a run trained in mixed_bfloat16 agreed with its own float32 copy on
    only 99.74% of pixels, a rounding difference, not an export error."""
    if all(layer.compute_dtype in (None, "float32") for layer in all_layers(model)):
        return model, "model.keras"
    copy = segformer.float32_copy(model) if holds_keras_hub(model) else _float32_copy(model, dynamic=False)
    copy.set_weights(model.get_weights())
    return copy, f"model.keras computed in float32 (it was trained in {model_precision(model)})"


def model_precision(model: keras.Model) -> str:
    """The dtype policy most of the model's layers compute in."""
    names = [layer.dtype_policy.name for layer in all_layers(model) if layer.weights]
    return max(set(names), key=names.count) if names else "float32"
