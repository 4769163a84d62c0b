"""Pretrained `keras.applications` encoders: their input scaling as layers, weight resolution
(imagenet | none | a weights file) and freezing / fine-tuning from a named block."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import keras
from keras import layers, ops

from seglab.core.errors import BadArgument, NotFound, WeightsUnavailable
from seglab.models.batch_norm import with_fused_batch_norm

# keras.applications.vgg16.preprocess_input ("caffe" mode): BGR channel order, ImageNet means.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # "torch" mode, RGB 0..1
_BLOCK = re.compile(r"block_?\d+")  # MobileNetV2 'block_13_expand', VGG16 'block4_conv1'


@keras.saving.register_keras_serializable(package="seglab")
class CaffePreprocess(layers.Layer):
    """RGB 0..255 [B, H, W, 3] -> BGR minus the ImageNet channel means, as VGG16 expects.

    A layer (not a Lambda, which safe-mode loading refuses) so a saved model holds its own scaling.
    """

    def call(self, inputs):
        channels = inputs.shape[-1]
        if channels == 3:
            return ops.flip(inputs, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=inputs.dtype)
        # Other band counts: band i feeds the pretrained kernel slice i mod 3 (adapt_to_bands), a
        # BGR channel: it takes that channel's mean, in band order.
        return inputs - ops.convert_to_tensor(_cyclic(_CAFFE_BGR_MEAN, channels), dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="seglab")
class ImageNetNormalize(layers.Layer):
    """RGB 0..255 -> (x / 255 - ImageNet mean) / ImageNet std per channel ("torch" mode), as the
    SegFormer encoders expect. Its constants are part of the computation, so an exported graph
    holds them (Keras's Normalization layer keeps them as weights that ONNX turned into inputs)."""

    def call(self, inputs):
        channels = inputs.shape[-1]  # other band counts: each band takes the constants of channel i mod 3
        mean = ops.convert_to_tensor(_cyclic(_IMAGENET_MEAN, channels), dtype=inputs.dtype) * 255
        std = ops.convert_to_tensor(_cyclic(_IMAGENET_STD, channels), dtype=inputs.dtype) * 255
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape


def _cyclic(values, count: int) -> tuple:
    return tuple(values[i % len(values)] for i in range(count))


def mobilenet_v2_preprocess():
    """keras.applications.mobilenet_v2.preprocess_input as a layer: 0..255 -> -1..1."""
    return layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_v2_preprocess")


def resolve_weights(weights, backbone: str, example: str) -> str | None:
    """'imagenet' | 'none' | None | a path -> what keras.applications takes, checking the path exists."""
    if weights is None or str(weights).lower() == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise NotFound(
            f"Encoder weights file not found: {path}. For {backbone}, pass weights='imagenet' (downloaded "
            f"once by Keras, needs internet), 'none', or the path of a Keras .weights.h5 file such as {example}."
        )
    return str(path)


def load_application(factory, backbone: str, weights, example: str, **kwargs) -> keras.Model:
    """Build a keras.applications model without its top, with errors that say what to do, and
    its BatchNormalization layers on the fused kernel (seglab.models.batch_norm)."""
    resolved = resolve_weights(weights, backbone, example)
    shape = kwargs.get("input_shape", (None, None, 3))
    if resolved is not None and shape[-1] != 3:  # RGB weights for other bands: built twice, then adapted
        pretrained = load_application(factory, backbone, weights, example, **{**kwargs, "input_shape": (*shape[:2], 3)})
        model = load_application(factory, backbone, None, example, **kwargs)
        adapt_to_bands(pretrained, model)
        return model
    try:
        # A weights file of another network makes Keras warn once per layer group before it
        # fails: the error below says it all, so the warnings are only passed on on success.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = factory(include_top=False, weights=resolved, **kwargs)
        for warning in caught:
            if "input channels" in str(warning.message):  # Keras on a band count other than 1 or 3: expected here
                continue
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    except Exception as e:  # the download, or a file made for another network
        if resolved == "imagenet":
            raise WeightsUnavailable(
                f"Could not get the ImageNet weights for {backbone} ({e}). They download once to "
                f"~/.keras/models/ and need internet; offline, pass a weights file (e.g. {example}) or 'none'."
            ) from e
        if resolved is not None:
            raise BadArgument(f"Weights file {resolved} does not fit {backbone} ({e}). Pass a {backbone} "
                             f"weights file without its top, such as {example}.") from e
        raise
    return with_fused_batch_norm(model)


def adapt_to_bands(pretrained: keras.Model, model: keras.Model) -> None:
    """Give `model` (the same network built for C input bands) the weights of `pretrained` (built
    for RGB), segmentation_models.pytorch's rule for the layers that read the bands: one band takes
    the sum of the RGB kernel slices; C bands take the slice of channel i mod 3 for band i, scaled by
    3 / C. A grey pixel (equal values in every band) then excites each filter as it did in RGB,
    exactly for one band or a multiple of 3, and about so otherwise. Every other weight is copied
    as it is."""
    sources, targets = pretrained.weights, model.weights
    if len(sources) != len(targets):
        raise RuntimeError(f"{model.name}: {len(targets)} weights for {len(sources)} pretrained ones")
    for source, target in zip(sources, targets):
        value = keras.ops.convert_to_numpy(source.value)
        if tuple(value.shape) != tuple(target.shape):
            bands = target.shape[-2]
            if len(value.shape) != 4 or value.shape[:2] != tuple(target.shape[:2]) or value.shape[-1] != target.shape[-1]:
                raise RuntimeError(f"{model.name}: cannot adapt {source.path} {value.shape} to {tuple(target.shape)}")
            if bands == 1:
                value = value.sum(axis=2, keepdims=True)
            else:
                value = value[:, :, [i % value.shape[-2] for i in range(bands)], :] * (value.shape[-2] / bands)
        target.assign(value)


def set_fine_tune(encoder: keras.Model, fine_tune: str | None, weights, model_name: str) -> None:
    """Freeze `encoder` (fine_tune None or 'none'), train it all ('all'), or train it from the first
    layer whose name starts with `fine_tune` (e.g. 'block_13' for MobileNetV2, 'block4' for VGG16).

    From a named block, BatchNorm layers stay frozen: their ImageNet statistics are worth more
    than ones re-estimated from small batches of a small dataset. 'all' trains them too, which
    training from scratch needs.
    """
    if fine_tune is None or str(fine_tune).lower() == "none":
        encoder.trainable = False
        if weights is None or str(weights).lower() == "none":
            warnings.warn(f"{model_name}: the encoder has random weights and is frozen, so it will not learn. "
                          "Pass fine_tune='all' to train it from scratch, or pretrained weights.", stacklevel=3)
        return
    encoder.trainable = True
    if fine_tune == "all":
        return
    names = [layer.name for layer in encoder.layers]
    start = next((i for i, n in enumerate(names) if n == fine_tune or n.startswith(f"{fine_tune}_")), None)
    if start is None:
        blocks = dict.fromkeys(m.group() for m in map(_BLOCK.match, names) if m)
        raise BadArgument(f"fine_tune={fine_tune!r} names no layer of the {model_name} encoder. "
                         f"Use 'none', 'all' or a block: {', '.join(blocks)}.")
    for i, layer in enumerate(encoder.layers):
        layer.trainable = i >= start and not isinstance(layer, layers.BatchNormalization)
