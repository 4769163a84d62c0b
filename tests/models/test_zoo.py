"""Every model family through one shared helper: tiny builds, a training step, save/load, counts."""
from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from seglab.core.errors import WeightsUnavailable
from seglab.models import MODELS, build_model, model_spec
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics

SIZE = 32
# Small enough to build and step in seconds; no pretrained weights, no dropout (the loss below is
# compared between two forward passes).
TINY = {
    "unet": {"filters": (4, 8)},
    "pix2pix_unet": {"filters": 4, "max_filters": 16, "dropout": 0.0},
    "mobilenet_unet": {"weights": "none", "fine_tune": "all", "alpha": 0.35, "decoder_filters": (16, 8, 8, 4)},
    "fcn8s": {"weights": "none"},
    "deeplabv3plus": {"weights": "none", "filters": 16, "low_level_filters": 8, "dropout": 0.0},
    "fpn": {"weights": "none", "pyramid_filters": 16, "segmentation_filters": 8, "dropout": 0.0},
    "segformer": {"weights": "none", "dropout": 0.0},
}
SQUARE_ONLY = {"segformer"}  # KerasHub's MiT attention assumes a square token grid, of 64 px or more
# Every architecture, over a few encoders of different families (None: the model's default).
# (ConvNeXt, the one family without stride-2 features, is built in test_unet_joins_the_features_an_encoder_has.)
STEPPED = [("unet", None), ("unet", "mobilenet_v3_small"), ("pix2pix_unet", None), ("mobilenet_unet", None),
           ("fcn8s", None), ("deeplabv3plus", None), ("deeplabv3plus", "resnet50"), ("fpn", "efficientnetv2_b0"),
           ("segformer", None)]
# VGG16 has no BatchNorm: from scratch, Adam at 1e-3 overshoots on the first step.
LEARNING_RATE = {"fcn8s": 1e-4}
TUTORIAL_PARAMS = {"unet": (128, 7_760_931), "pix2pix_unet": (256, 54_423_171),
                   "mobilenet_unet": (128, 6_504_227), "fcn8s": (256, 14_793_021)}


def fixed_batch(num_classes: int, batch: int = 4, size: int = SIZE):
    """Raw 0..255 images whose mean colour follows the class bands of the mask, some ignore pixels."""
    rng = np.random.default_rng(0)
    labels = np.zeros((batch, size, size), np.uint8)
    for b in range(batch):
        labels[b] = (np.arange(size)[None, :] * max(num_classes, 2) // size + b) % max(num_classes, 2)
    images = rng.uniform(0, 60, (batch, size, size, 3)).astype(np.float32) + labels[..., None] * 90
    labels[:, :2] = 255
    return images, labels


def tiny_model(name: str, num_classes: int = 3, size: int = SIZE, run_eagerly: bool = False, **options) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(name, num_classes, size, **{**TINY[name], **options})
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE.get(name, 1e-3)),
                  loss=make_loss("ce" if num_classes > 1 else "bce", num_classes),
                  metrics=segmentation_metrics(max(num_classes, 2)), run_eagerly=run_eagerly)
    return model


def test_every_registered_model_has_a_tiny_config():
    assert sorted(TINY) == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("num_classes", [3, 1])
def test_logits_shape(name, num_classes):
    height, width = (2 * SIZE, 2 * SIZE) if name in SQUARE_ONLY else (SIZE, 2 * SIZE)
    model = build_model(name, num_classes, (height, width), **TINY[name])
    images = np.zeros((2, height, width, 3), np.float32)
    assert model.input_shape == (None, height, width, 3)
    assert model(images).shape == (2, height, width, num_classes)
    assert model.output.dtype == "float32"


def test_segformer_refuses_a_non_square_size_naming_a_square_one():
    with pytest.raises(ValueError, match=r"SegFormer takes square images only .* Use 128x128 \(--size 128\)"):
        build_model("segformer", 3, (64, 128), weights="none")


@pytest.mark.parametrize("encoder, joined", [("convnext_tiny", ["up2", "up3", "up4"]),
                                             ("mobilenet_v3_small", ["up1", "up2", "up3", "up4"])])
def test_unet_joins_the_features_an_encoder_has(encoder, joined):
    model = build_model("unet", 2, (64, 96), encoder=encoder, weights="none")
    assert sorted(layer.name[:-len("_concat")] for layer in model.layers if layer.name.endswith("_concat")) == joined
    assert model(np.zeros((1, 64, 96, 3), np.float32)).shape == (1, 64, 96, 2)


@pytest.mark.parametrize("name, encoder", STEPPED)
@pytest.mark.slow
def test_training_steps_lower_the_loss_and_save_load_gives_identical_outputs(name, encoder, tmp_path):
    # Eagerly: tracing a training step of a 150-layer encoder takes longer than three eager steps.
    model = tiny_model(name, size=64, run_eagerly=True, **({"encoder": encoder, "weights": "none"} if encoder else {}))
    images, labels = fixed_batch(3, size=64)
    loss = make_loss("ce", 3)
    before = float(loss(labels, model(images, training=True)))  # training mode: BatchNorm on the batch, as the steps see it
    for _ in range(3):
        model.train_on_batch(images, labels)
    after = float(loss(labels, model(images, training=True)))
    assert after < before, f"{name} over {encoder}: loss {before:.4f} -> {after:.4f} after three steps"

    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")  # safe mode, no custom_objects
    np.testing.assert_array_equal(model(images, training=False), loaded(images, training=False))
    assert loaded.count_params() == model.count_params()


@pytest.mark.slow
def test_a_fresh_process_loads_a_compiled_model_after_importing_seglab(tmp_path):
    model = tiny_model("fcn8s")  # holds seglab's CaffePreprocess layer; compiled with seglab's loss and metrics
    images, labels = fixed_batch(3)
    model.train_on_batch(images, labels)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "expected.npy", model.predict_on_batch(images))
    script = (
        "import sys, keras, numpy as np, seglab.models\n"
        "d = sys.argv[1]\n"
        "m = keras.models.load_model(d + '/model.keras', safe_mode=True)\n"
        "np.testing.assert_array_equal(m.predict_on_batch(np.load(d + '/images.npy')), np.load(d + '/expected.npy'))\n"
        "logs = m.evaluate(np.load(d + '/images.npy'), np.load(d + '/labels.npy'), return_dict=True, verbose=0)\n"
        "print(type(m.loss).__name__, sorted(logs))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CrossEntropy ['loss', 'mean_dice', 'miou', 'pixel_accuracy']" in result.stdout


@pytest.mark.parametrize("name", sorted(TUTORIAL_PARAMS))
def test_tutorial_settings_give_the_tutorial_parameter_counts(name):
    size, expected = TUTORIAL_PARAMS[name]
    options = {"weights": "none", "fine_tune": "all"} if model_spec(name).pretrained else {}
    assert build_model(name, 3, size, **options).count_params() == expected


def test_models_scale_raw_pixels_themselves():
    model = build_model("unet", 3, SIZE, **TINY["unet"])
    assert model.get_layer("scale").get_config()["scale"] == pytest.approx(1 / 255)


@pytest.mark.parametrize("name, options, message", [
    ("unett", {}, "Unknown model 'unett'. Available: deeplabv3plus, fcn8s, fpn, mobilenet_unet, pix2pix_unet, "
                  "segformer, unet."),
    ("fpn", {"encoder": "resnet5", "weights": "none"}, "Unknown encoder 'resnet5'. Available: convnext_small, "),
    ("deeplabv3plus", {"encoder": "scratch"}, "Unknown encoder 'scratch' ('scratch' is unet's own encoder, for unet only)"),
    ("unet", {"weights": "imagenet"}, "unet's scratch encoder has no pretrained weights"),
    ("unet", {"filter": 4}, "Unknown option for unet: filter. Valid options: encoder='scratch', weights=None, "
                            "fine_tune=None, filters=(32, 64, 128, 256), batch_norm=False"),
    ("fcn8s", {"weights": "none", "fine_tune": "block9"}, "fine_tune='block9' names no layer of the fcn8s encoder. "
                                                          "Use 'none', 'all' or a block: block1, block2, block3, block4, block5."),
])
def test_bad_names_and_options_list_what_is_valid(name, options, message):
    with pytest.raises(ValueError) as error:
        build_model(name, 3, SIZE, **options)
    assert message in str(error.value)


@pytest.mark.parametrize("name, size, message", [
    ("unet", 250, "Input size must be divisible by 16 for unet; got 250x250. Use 256x256 (--size 256)."),
    ("fcn8s", (100, 200), "Input size must be divisible by 32 for fcn8s; got 100x200. Use 96x192 (--size 96x192)."),
    ("mobilenet_unet", 20, "Use 32x32 (--size 32)."),
    ("pix2pix_unet", 96, "Input size must be divisible by 64 for pix2pix_unet; got 96x96. Use 128x128 (--size 128)."),
])
def test_sizes_a_model_cannot_take_name_the_nearest_valid_size(name, size, message):
    with pytest.raises(ValueError) as error:
        build_model(name, 3, size)  # the size is checked before any weights are fetched
    assert message in str(error.value)


def test_bad_num_logits():
    with pytest.raises(ValueError, match="num_logits must be a positive int"):
        build_model("unet", 0, SIZE)


@pytest.mark.parametrize("name", ["mobilenet_unet", "fcn8s"])
def test_a_missing_weights_file_is_named_with_the_fix(name, tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError) as error:
        build_model(name, 3, SIZE, weights=str(missing))
    assert str(missing) in str(error.value) and "'imagenet'" in str(error.value) and "'none'" in str(error.value)


def test_a_frozen_random_encoder_warns():
    with pytest.warns(UserWarning, match="random weights and is frozen"):
        build_model("mobilenet_unet", 3, SIZE, weights="none", alpha=0.35)


def test_mobilenet_encoder_is_frozen_by_default_and_fine_tune_unfreezes_from_a_block():
    with pytest.warns(UserWarning):
        frozen = build_model("mobilenet_unet", 3, SIZE, weights="none", alpha=0.35)
    assert not frozen.get_layer("encoder").trainable_weights
    tuned = build_model("mobilenet_unet", 3, SIZE, weights="none", alpha=0.35, fine_tune="block_13")
    encoder = tuned.get_layer("encoder")
    trainable = {layer.name for layer in encoder.layers if layer.trainable_weights}
    assert "block_13_expand" in trainable and "block_16_project" in trainable
    assert "block_12_project" not in trainable and "Conv1" not in trainable
    assert not any(name.endswith("_BN") for name in trainable)  # BatchNorm keeps its statistics


def test_shared_weight_files_load_into_the_encoders(shared_weights):
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    for name, file in [("mobilenet_unet", "mobilenet_v2_1.0_notop.weights.h5"), ("fcn8s", "vgg16_notop.weights.h5")]:
        pretrained = build_model(name, 3, 64, weights=str(shared_weights / file))
        keras.utils.set_random_seed(0)
        random = build_model(name, 3, 64, weights="none", fine_tune="all")
        preprocess = pretrained.layers[1]
        features = [m.get_layer("encoder")(preprocess(images))["P5"] for m in (pretrained, random)]
        assert not np.allclose(*features), name
        reference = keras.applications.MobileNetV2 if name == "mobilenet_unet" else keras.applications.VGG16
        expected = reference(include_top=False, weights=str(shared_weights / file), input_shape=(64, 64, 3))
        kernel = "block_16_project" if name == "mobilenet_unet" else "block5_conv3"
        np.testing.assert_array_equal(pretrained.get_layer("encoder").get_layer(kernel).get_weights()[0],
                                      expected.get_layer(kernel).get_weights()[0])


def test_imagenet_weights_that_cannot_download_say_how_to_work_offline(monkeypatch):
    from keras.src.applications import mobilenet_v2

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)  # the network boundary: no download in tests
    with pytest.raises(WeightsUnavailable) as error:
        build_model("mobilenet_unet", 3, 128, weights="imagenet")
    message = str(error.value)
    assert "need internet" in message and "mobilenet_v2_1.0_notop.weights.h5" in message and "'none'" in message


def test_a_weights_file_for_another_network_is_refused_clearly(shared_weights):
    with pytest.raises(ValueError, match="vgg16_notop.weights.h5 does not fit MobileNetV2"):
        build_model("mobilenet_unet", 3, 64, weights=str(shared_weights / "vgg16_notop.weights.h5"))
