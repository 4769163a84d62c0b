"""Every model family through one shared helper: tiny builds, a training step, save/load, counts."""
from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from seglab.errors import WeightsUnavailable
from seglab.losses import make_loss
from seglab.metrics import segmentation_metrics
from seglab.models import MODELS, build_model, model_spec

SIZE = 32
# Small enough to build and step in about a second; no pretrained weights.
TINY = {
    "unet": {"filters": (4, 8)},
    "pix2pix_unet": {"filters": 4, "max_filters": 16, "dropout": 0.0},
    "mobilenet_unet": {"weights": "none", "fine_tune": "all", "alpha": 0.35, "decoder_filters": (16, 8, 8, 4)},
    "fcn8s": {"weights": "none"},
}
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


def tiny_model(name: str, num_classes: int = 3) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(name, num_classes, SIZE, **TINY[name])
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE.get(name, 1e-3)),
                  loss=make_loss("ce" if num_classes > 1 else "bce", num_classes),
                  metrics=segmentation_metrics(max(num_classes, 2)))
    return model


def test_every_registered_model_has_a_tiny_config():
    assert sorted(TINY) == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("num_classes", [3, 1])
def test_logits_shape(name, num_classes):
    model = build_model(name, num_classes, (SIZE, 2 * SIZE), **TINY[name])
    images = np.zeros((2, SIZE, 2 * SIZE, 3), np.float32)
    assert model.input_shape == (None, SIZE, 2 * SIZE, 3)
    assert model(images).shape == (2, SIZE, 2 * SIZE, num_classes)
    assert model.output.dtype == "float32"


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.slow
def test_a_training_step_lowers_the_loss_and_save_load_gives_identical_outputs(name, tmp_path):
    model = tiny_model(name)
    images, labels = fixed_batch(3)
    before = model.train_on_batch(images, labels, return_dict=True)["loss"]  # the forward pass before the update
    after = model.train_on_batch(images, labels, return_dict=True)["loss"]
    assert after < before, f"{name}: loss {before:.4f} -> {after:.4f} after one step"

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
    ("unett", {}, "Unknown model 'unett'. Available: fcn8s, mobilenet_unet, pix2pix_unet, unet."),
    ("unet", {"filter": 4}, "Unknown option for unet: filter. Valid options: filters=(32, 64, 128, 256), batch_norm=False"),
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
