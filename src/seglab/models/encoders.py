"""keras.applications networks as segmentation encoders: raw 0..255 RGB in, feature maps
{"P1": stride 2, ..., "P5": stride 32} out, for the decoders that take any encoder.

Each feature is the last layer of the network whose output is exactly 1/stride of the input
(the end of a stage, or the expansion before the next stage's strided block for the inverted
residual networks, where the tutorial's MobileNetV2 taps are). The rule is applied to the
built network, not to layer names: MobileNetV3's and ConvNeXt's layer names carry Keras's global
counters and differ from one build to the next. ConvNeXt starts at stride 4 and has no P1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras

from seglab.core.errors import BadArgument
from seglab.models.backbones import (
    CaffePreprocess,
    load_application,
    mobilenet_v2_preprocess,
)

STRIDES = {"P1": 2, "P2": 4, "P3": 8, "P4": 16, "P5": 32}
SCRATCH = "scratch"  # unet's own encoder (the tutorial's), trained from random weights; not a keras.applications one
# Where a model over a keras.applications encoder is given no weights or fine_tune: the ImageNet
# weights, all layers trained (segmentation_models.pytorch's default too), unless the encoder's
# spec names a better first layer to train (`EncoderSpec.fine_tune`, see `start`).
PRETRAINED_START = {"weights": "imagenet", "fine_tune": "all"}


@dataclass(frozen=True)
class EncoderSpec:
    application: str  # the keras.applications name, for messages
    factory: Callable
    preprocess: str  # "inside": the application scales raw 0..255 itself; "tf": to -1..1; "caffe": BGR minus means
    fine_tune: str = "all"  # the layers a pretrained start trains by default (see backbones.set_fine_tune)


def _applications() -> dict[str, EncoderSpec]:
    a = keras.applications
    specs = {
        # From block_6 (its stride-16 stage) on: on the shared Oxford pets, DeepLabV3+ over it trained
        # 20 epochs at 128 px scored higher than with every layer trained (README, "Architecture x
        # encoder quality"): with a few hundred images the early ImageNet filters are best kept.
        "mobilenet_v2": EncoderSpec("MobileNetV2", a.MobileNetV2, "tf", fine_tune="block_6"),
        "mobilenet_v3_small": EncoderSpec("MobileNetV3Small", a.MobileNetV3Small, "inside"),
        "mobilenet_v3_large": EncoderSpec("MobileNetV3Large", a.MobileNetV3Large, "inside"),
        "resnet50": EncoderSpec("ResNet50", a.ResNet50, "caffe"),
        "resnet101": EncoderSpec("ResNet101", a.ResNet101, "caffe"),
        "convnext_tiny": EncoderSpec("ConvNeXtTiny", a.ConvNeXtTiny, "inside"),
        "convnext_small": EncoderSpec("ConvNeXtSmall", a.ConvNeXtSmall, "inside"),
        "vgg16": EncoderSpec("VGG16", a.VGG16, "caffe"),
    }
    for variant in ("B0", "B1", "B2", "B3", "S"):
        specs[f"efficientnetv2_{variant.lower()}"] = EncoderSpec(f"EfficientNetV2{variant}",
                                                                 getattr(a, f"EfficientNetV2{variant}"), "inside")
    return specs


ENCODERS = _applications()


def encoder_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        scratch = f" ({SCRATCH!r} is unet's own encoder, for unet only)" if name == SCRATCH else ""
        raise BadArgument(f"Unknown encoder {name!r}{scratch}. Available: {', '.join(sorted(ENCODERS))}.")
    return ENCODERS[name]


def start(name: str, weights=None) -> dict:
    """The default `weights` and `fine_tune` of a model over encoder `name`: ImageNet weights and
    the encoder's own fine-tune default; every layer trained when `weights` is 'none' (a frozen
    random layer would learn nothing)."""
    fine_tune = "all" if weights is not None and str(weights).lower() == "none" else encoder_spec(name).fine_tune
    return {"weights": PRETRAINED_START["weights"], "fine_tune": fine_tune}


def build_encoder(name: str, input_size: tuple[int, int], weights="imagenet",
                  levels=tuple(STRIDES), channels: int = 3) -> tuple[keras.layers.Layer | None, keras.Model]:
    """The preprocessing layer to put before the encoder (None where the application scales its
    input itself) and the encoder: a model from the application's input to {"P1": ..., "P5": ...},
    or to the `levels` asked for (the layers past the deepest one are then not part of it).

    `weights`: 'imagenet' (the Keras download, once), 'none', or a .weights.h5 file of that network
    without its top (a file for another network is a clear ValueError)."""
    spec = encoder_spec(name)
    kwargs = {"input_shape": (*input_size, channels)}
    if spec.preprocess == "inside":
        kwargs["include_preprocessing"] = True
    base = load_application(spec.factory, spec.application, weights,
                            f"a {spec.application} .weights.h5 file (include_top=False)", **kwargs)
    features = feature_layers(base, input_size)
    unknown = sorted(set(levels) - set(STRIDES))
    if unknown:
        raise BadArgument(f"Unknown feature levels {unknown}: use {', '.join(STRIDES)}.")
    encoder = keras.Model(base.input, {p: base.get_layer(n).output for p, n in features.items() if p in levels},
                          name="encoder")
    if spec.preprocess == "tf":
        return mobilenet_v2_preprocess(), encoder
    if spec.preprocess == "caffe":
        return CaffePreprocess(name="caffe_preprocess"), encoder
    return None, encoder


def feature_layers(base: keras.Model, input_size: tuple[int, int]) -> dict[str, str]:
    """{"P1": layer name, ...}: for each stride, the last layer whose output is exactly 1/stride of
    `input_size` (a stride the network has no layer at is left out)."""
    height, width = input_size
    found = {}
    for layer in base.layers:
        shape = getattr(getattr(layer, "output", None), "shape", None)
        if shape is None or len(shape) != 4:
            continue
        for level, stride in STRIDES.items():
            if (shape[1], shape[2]) == (height // stride, width // stride) and height % stride == 0 and width % stride == 0:
                found[level] = layer.name
    return {level: found[level] for level in STRIDES if level in found}


def encoder_catalog(size: int = 128) -> list[dict]:
    """One entry per encoder: its keras.applications network, parameters and forward GFLOPs per
    image at `size` x `size` (the features used, random weights), the levels it has, and the
    layers a pretrained start trains (`fine_tune`)."""
    from seglab.models.flops import forward_flops

    entries = []
    for name, spec in sorted(ENCODERS.items()):
        preprocess, encoder = build_encoder(name, (size, size), weights="none")
        entries.append({"encoder": name, "application": spec.application, "parameters": int(encoder.count_params()),
                        "gflops": round(forward_flops(encoder) / 1e9, 3), "features": sorted(encoder.output),
                        "pretrained_weights": "imagenet", "fine_tune": spec.fine_tune})
    return entries
