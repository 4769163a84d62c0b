"""SegFormer (Xie et al., 2021): KerasHub's Mix Transformer encoder and all-MLP decoder, with
seglab's input scaling, logits head, losses, ignore label and metrics.

KerasHub is an optional extra (`pip install 'seglab[segformer]'`): it pulls in tensorflow-text,
about 200 MB, which nothing else in seglab needs. It is imported only when a SegFormer is built
or loaded.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
from keras import layers

from seglab.core.errors import BadArgument, WeightsUnavailable
from seglab.core.precision import precision
from seglab.models.backbones import ImageNetNormalize, set_fine_tune
from seglab.models.blocks import Upsampling
from seglab.models.inputs import RGB_INPUT, ImageInput
from seglab.models.sizes import check_divisible
from seglab.models.spec import Defaults, ModelSpec

# The MiT encoders of the SegFormer paper (Table 6), as KerasHub's presets configure them.
_MIT_COMMON = {"num_layers": 4, "layerwise_num_heads": [1, 2, 5, 8], "layerwise_sr_ratios": [8, 4, 2, 1],
               "layerwise_patch_sizes": [7, 3, 3, 3], "layerwise_strides": [4, 2, 2, 2], "max_drop_path_rate": 0.1}
VARIANTS = {
    "b0": {"hidden_dims": [32, 64, 160, 256], "layerwise_depths": [2, 2, 2, 2], "projection_filters": 256},
    "b1": {"hidden_dims": [64, 128, 320, 512], "layerwise_depths": [2, 2, 2, 2], "projection_filters": 256},
    "b2": {"hidden_dims": [64, 128, 320, 512], "layerwise_depths": [3, 4, 6, 3], "projection_filters": 768},
}
PRESET_EXAMPLE = "mit_b0_ade20k_512"


def keras_hub():
    """The keras_hub module, or a one-line error saying how to install it."""
    if importlib.util.find_spec("keras_hub") is None:
        raise BadArgument("SegFormer needs KerasHub: pip install 'seglab[segformer]'.")
    import keras_hub as module

    return module


def segformer(num_logits: int, input_size: tuple[int, int], variant: str = "b0", weights=None,
              fine_tune: str | None = "all", dropout: float = 0.1, image: ImageInput = RGB_INPUT) -> keras.Model:
    """SegFormer-`variant` (b0, b1, b2): the MiT encoder's four stages (strides 4..32), the all-MLP
    decoder fused at stride 4 (KerasHub's SegFormerBackbone), dropout, a 1x1 logits conv and x4
    bilinear upsampling. Raw 0..255 RGB [B, H, W, 3] -> logits [B, H, W, num_logits].

    `weights`: None or 'none' (random), a KerasHub preset name (e.g. 'mit_b0_ade20k_512',
    downloaded once by KerasHub, which needs internet) or a preset folder on disk (a MiT or
    SegFormer backbone saved with `save_to_preset`); the preset must be of `variant`.
    """
    hub = keras_hub()
    if variant not in VARIANTS:
        raise BadArgument(f"Unknown SegFormer variant {variant!r}. Use one of: {', '.join(VARIANTS)}.")
    check_divisible(input_size, 32, "segformer")
    if min(input_size) < 64:  # keras_hub 0.32's MiT fails to build on a 1x1 last stage
        raise BadArgument(f"SegFormer needs images of at least 64x64; got {input_size[0]}x{input_size[1]} (--size 64).")
    if input_size[0] != input_size[1]:
        # keras_hub 0.32's SegFormerMultiheadAttention takes its token grid to be sqrt(N) x sqrt(N).
        side = max(input_size)
        raise BadArgument(f"SegFormer takes square images only (KerasHub's MiT attention assumes a square token "
                         f"grid); got {input_size[0]}x{input_size[1]}. Use {side}x{side} (--size {side}).")
    config = VARIANTS[variant]
    mit = {**_MIT_COMMON, "hidden_dims": config["hidden_dims"], "layerwise_depths": config["layerwise_depths"]}
    if image.channels != 3 and not (weights is None or str(weights).lower() == "none"):
        raise BadArgument(f"SegFormer's pretrained presets take RGB; for {image.channels} bands train it from scratch "
                          "(--weights none), or choose a model over a keras.applications encoder, whose pretrained "
                          "weights are adapted to any band count (docs/models.md).")
    if weights is None or str(weights).lower() == "none":
        encoder = hub.models.MiTBackbone(**mit, image_shape=(*input_size, image.channels))  # MiT needs a fixed size
    else:
        encoder = _preset_encoder(hub, weights, variant, mit)
    set_fine_tune(encoder, fine_tune, weights, model_name="segformer")
    decoder = hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=config["projection_filters"],
                                           name="segformer_decoder")

    inputs, x = image.tensors(input_size)
    x = decoder(ImageNetNormalize(name="imagenet_normalize")(x))
    x = layers.Dropout(dropout, name="dropout")(x) if dropout else x
    x = layers.Conv2D(num_logits, 1, name="scores")(x)
    # named logits and float32, as every seglab model's last layer
    outputs = Upsampling(4, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="segformer")


def float32_copy(model: keras.Model) -> keras.Model:
    """A SegFormer built by `segformer`, rebuilt with every layer in float32 (a mixed-precision
    one too) at the same fixed size, for export. KerasHub 0.32's MiT layers do not rebuild from
    their own configs, so the copy comes from this builder; the caller copies the weights."""
    found = {k: list(model.get_layer("segformer_decoder").image_encoder.get_config()[k])
             for k in ("hidden_dims", "layerwise_depths")}
    variant = next(v for v, c in VARIANTS.items() if found == {k: c[k] for k in found})
    with precision("float32"):  # no dropout: it has no weights and does nothing at inference
        inner = segformer(model.output_shape[-1], tuple(model.input_shape[1:3]), variant, dropout=0.0,
                          image=ImageInput.of_model(model))
    # Called without `training` (as Keras's SavedModel and ONNX exports trace it), KerasHub's
    # decoder runs its BatchNormalization on the batch's statistics: pin inference.
    image = keras.Input(inner.input_shape[1:], name="image")
    return keras.Model(image, inner(image, training=False), name=inner.name)


def _preset_encoder(hub, weights, variant: str, mit: dict):
    source = str(weights)
    local = Path(source).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise BadArgument(f"{local} is not a KerasHub preset folder (no config.json). Pass a preset name such as "
                         f"{PRESET_EXAMPLE}, a folder written by `save_to_preset`, or 'none'.")
    try:
        backbone = hub.models.Backbone.from_preset(str(local) if local.exists() else source)
    except Exception as e:  # the download, or an unknown name
        raise WeightsUnavailable(
            f"Could not load the KerasHub preset {source!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"A preset name (e.g. {PRESET_EXAMPLE}) downloads once and needs internet; offline, pass the preset's "
            "folder or 'none'.") from e
    encoder = getattr(backbone, "image_encoder", backbone)  # a SegFormer preset holds its MiT encoder
    if not isinstance(encoder, hub.models.MiTBackbone):
        raise BadArgument(f"{source} is a {type(backbone).__name__} preset, not a MiT or SegFormer one.")
    found = {k: list(encoder.get_config()[k]) for k in ("hidden_dims", "layerwise_depths")}
    if found != {k: mit[k] for k in found}:
        named = next((v for v, c in VARIANTS.items() if found == {k: c[k] for k in found}), "another variant")
        raise BadArgument(f"{source} is MiT-{named.upper()}, not {variant.upper()}: pass --option variant={named}.")
    return encoder


SPEC = ModelSpec("segformer", segformer,
                 Defaults(size=128, batch_size=8, epochs=20, learning_rate=3e-4, weights=PRESET_EXAMPLE, fine_tune="all"),
                 summary="SegFormer (Xie et al.): KerasHub's MiT-B0..B2 encoder (pip install 'seglab[segformer]')",
                 pretrained=True)
