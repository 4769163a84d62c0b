"""One spec per model family: the registry, `seglab train`'s defaults and `seglab models` all read
it, so a model's recipe is stated once."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seglab.cli import app
from seglab.models import MODELS, SPECS, model_spec
from seglab.models.encoders import SCRATCH
from seglab.models.encoders import start as encoder_start
from seglab.models.registry import catalog
from seglab.runs.config import TrainConfig, resolve


def test_every_model_has_a_spec_declared_in_its_own_module():
    assert set(SPECS) == set(MODELS) == {"deeplabv3plus", "fcn8s", "fpn", "mobilenet_unet", "pix2pix_unet", "segformer",
                                         "unet"}
    for name, spec in SPECS.items():
        assert spec.name == name and spec.builder.__module__ == f"seglab.models.{name}"
        assert spec.summary and spec.defaults.size % 32 == 0


@pytest.mark.parametrize("name", sorted(SPECS))
def test_train_defaults_are_the_specs_recipe(name):
    recipe = model_spec(name).defaults
    config = resolve(TrainConfig.of(model=name), num_classes=3)
    assert (config.recipe.size, config.recipe.batch_size, config.recipe.epochs, config.recipe.learning_rate) == (
        recipe.size, recipe.batch_size, recipe.epochs, recipe.learning_rate)
    encoder = config.recipe.model_options.get("encoder", SCRATCH)
    start = {"weights": None, "fine_tune": None} if encoder == SCRATCH else encoder_start(encoder)
    assert (config.recipe.weights, config.recipe.fine_tune) == (recipe.weights or start["weights"], recipe.fine_tune or start["fine_tune"])
    assert {k: config.recipe.model_options[k] for k in recipe.model_options} == dict(recipe.model_options)


@pytest.mark.slow  # builds VGG16
def test_fcn8s_has_one_default_size():
    from seglab.models import build_model

    assert build_model("fcn8s", 3, weights="none").input_shape[1:3] == (model_spec("fcn8s").defaults.size,) * 2
    assert resolve(TrainConfig.of(model="fcn8s"), num_classes=3).recipe.size == model_spec("fcn8s").defaults.size


def test_an_unknown_model_lists_the_known_ones_and_weights_are_for_pretrained_encoders():
    with pytest.raises(ValueError, match="Unknown model 'unet3'. Available: deeplabv3plus, fcn8s, fpn, mobilenet_unet"):
        model_spec("unet3")
    with pytest.raises(ValueError, match="unet with its scratch encoder trains from scratch"):
        resolve(TrainConfig.of(model="unet", weights="imagenet"), num_classes=3)
    with pytest.raises(ValueError, match="pix2pix_unet trains from scratch"):
        resolve(TrainConfig.of(model="pix2pix_unet", fine_tune="all"), num_classes=3)


def test_unet_over_a_keras_applications_encoder_starts_from_imagenet_unless_told():
    config = resolve(TrainConfig.of(model="unet", model_options={"encoder": "resnet50"}), num_classes=3)
    assert (config.recipe.weights, config.recipe.fine_tune, config.recipe.model_options["encoder"]) == ("imagenet", "all", "resnet50")
    config = resolve(TrainConfig.of(model="unet", weights="none", model_options={"encoder": "resnet50"}), num_classes=3)
    assert (config.recipe.weights, config.recipe.fine_tune) == ("none", "all")
    assert resolve(TrainConfig.of(model="unet"), num_classes=3).recipe.model_options["encoder"] == "scratch"


def test_an_encoder_brings_its_own_fine_tune_default_which_a_random_start_overrides():
    for model in ("deeplabv3plus", "fpn", "unet"):
        config = resolve(TrainConfig.of(model=model, model_options={"encoder": "mobilenet_v2"}), num_classes=3)
        assert (config.recipe.weights, config.recipe.fine_tune) == ("imagenet", "block_6")
        config = resolve(TrainConfig.of(model=model, weights="none", model_options={"encoder": "mobilenet_v2"}), num_classes=3)
        assert (config.recipe.weights, config.recipe.fine_tune) == ("none", "all")
        config = resolve(TrainConfig.of(model=model, fine_tune="block_13", model_options={"encoder": "mobilenet_v2"}), num_classes=3)
        assert config.recipe.fine_tune == "block_13"


def test_encoder_is_refused_for_a_model_whose_encoder_is_fixed(tmp_path):
    result = CliRunner().invoke(app, ["train", "synthetic", "--model", "fcn8s", "--encoder", "resnet50",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and not (tmp_path / "run").exists()
    assert "--encoder is for the models built over any encoder (deeplabv3plus, fpn, unet); fcn8s's encoder is fixed" \
        in result.output


@pytest.mark.slow  # builds every model twice
def test_seglab_models_lists_each_model_with_its_size_and_recipe():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["model"]: e for e in map(json.loads, result.output.strip().splitlines())}
    assert set(entries) == set(SPECS)
    assert entries["mobilenet_unet"]["pretrained_weights"] == "imagenet" and entries["unet"]["pretrained_weights"] is None
    assert entries["unet"]["gflops"] == pytest.approx(6.06, abs=0.01)  # the tutorial's U-Net, with BatchNorm
    assert entries["mobilenet_unet"]["parameters"] == 3_787_331  # the recipe's half-width decoder
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0 and all(name in table.output for name in SPECS)
    assert catalog()[0]["model"] == "deeplabv3plus"  # sorted by name
