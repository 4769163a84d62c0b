"""Sliding-window prediction and test-time augmentation: tiles give what the whole image gives for
a model that cannot tell them apart, overlaps blend without seams, TTA maps back exactly."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from seglab.data.classes import ClassSpec
from seglab.inference.runtimes import KerasPredictor, Predictor
from seglab.inference.tiling import (
    TTA,
    Inference,
    Tiling,
    gaussian_weights,
    probabilities,
    reflect_index,
    tile_starts,
)


def pointwise(size=32, classes=3, seed=0):
    """A model of one 1x1 convolution: exactly translation-equivariant and flip-symmetric; and
    what it gives a whole image of any size, in numpy."""
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=seed),
                               bias_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed + 1))
    model = keras.Model(inputs, conv(inputs))
    kernel, bias = (w.numpy() for w in conv.weights)

    def whole(image):
        logits = image.astype(np.float64) @ kernel[0, 0] + bias
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return KerasPredictor(model, ClassSpec(tuple(f"c{i}" for i in range(classes))), size), whole


def noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(50, 70), (20, 12), (32, 32), (97, 33)])
@pytest.mark.parametrize("overlap", [0.0, 0.5])
@pytest.mark.parametrize("tile", [32, 16])  # the model's own size, and one its dynamic copy takes
def test_tiles_give_the_whole_image_for_a_translation_equivariant_model(shape, overlap, tile):
    predictor, whole = pointwise()
    image = noise(*shape)
    tiled = Tiling(predictor, tile, overlap, batch_size=3).probabilities(image)
    assert tiled.shape == (*shape, 3)
    np.testing.assert_allclose(tiled, whole(image), atol=2e-5)


@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.9])
def test_a_constant_image_gives_a_constant_blend_without_seams(overlap):
    predictor, whole = pointwise()
    image = np.full((75, 130, 3), 91, np.uint8)
    blended = Tiling(predictor, 32, overlap).probabilities(image)
    np.testing.assert_allclose(blended, np.broadcast_to(whole(image[:1, :1])[0, 0], blended.shape), atol=1e-6)
    np.testing.assert_allclose(blended.sum(-1), 1, atol=1e-6)


def test_tiles_are_spread_evenly_and_cover_the_image():
    for length, tile, overlap in [(100, 32, 0.25), (1000, 256, 0.5), (33, 32, 0.0), (32, 32, 0.9), (10_000, 256, 0.25)]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == length
        gaps = np.diff(starts)
        assert (gaps <= tile * (1 - overlap) + 1e-9).all() and (gaps > 0).all()  # overlapping at least `overlap`
    weights = gaussian_weights(64)
    assert weights.min() > 0 and weights.max() == weights[31:33, 31:33].max() == 1
    # numpy's reflection, index by index, including a pad longer than the image
    for length, before, total in [(5, 2, 11), (3, 7, 20), (1, 3, 7)]:
        data = np.arange(length)
        expected = np.pad(data, (before, total - length - before), mode="reflect") if length > 1 else np.zeros(total)
        np.testing.assert_array_equal(data[reflect_index(length, before, total)], expected)


def test_flip_tta_of_a_flip_symmetric_model_is_no_tta():
    predictor, _ = pointwise()
    batch = noise(32, 32)[None].astype(np.float32)
    plain = probabilities(predictor, batch)
    for mode in ("flip", "flips"):
        np.testing.assert_allclose(probabilities(predictor, batch, TTA.parse(mode)), plain, atol=1e-6)


def asymmetric_image(h=32, w=32):
    """Dark left, a bright block top right: no flip of it is itself."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 3] = 30
    image[2: h // 3, w // 2: w - 2] = (240, 200, 40)
    return image


@pytest.mark.parametrize("mode", ["flip", "flips", "flip+scales=0.5,1,1.5"])
def test_tta_on_a_real_model_maps_each_copy_back_to_its_place(tiny_run, mode):
    from seglab.inference.runtimes import open_predictor

    predictor = open_predictor(tiny_run.path)
    tta = TTA.parse(mode)
    Inference(predictor, tta=tta)  # checks the model takes the scaled sizes (a dynamic copy of it)
    image = asymmetric_image()[None].astype(np.float32)
    p = probabilities(predictor, image, tta)
    assert not np.allclose(p, probabilities(predictor, image), atol=1e-4)  # TTA did change something
    # Averaging over the flips is symmetric under them: predicting the flipped image must give the
    # flipped prediction, which holds only if each copy was flipped back before the average.
    np.testing.assert_allclose(probabilities(predictor, image[:, :, ::-1], tta), p[:, :, ::-1], atol=1e-5)
    if "flips" in mode:
        np.testing.assert_allclose(probabilities(predictor, image[:, ::-1], tta), p[:, ::-1], atol=1e-5)


def test_tta_modes_parse_and_bad_ones_say_what_is_valid():
    assert TTA.parse(None) is None and TTA.parse("none") is None
    assert len(TTA.parse("flip").flips) == 2 and len(TTA.parse("flips").flips) == 4
    both = TTA.parse("flips+scales=0.75,1,1.25")
    assert both.scales == (0.75, 1.0, 1.25) and str(both) == "flips+scales=0.75,1,1.25"
    for bad, words in [("mirror", "Unknown --tta 'mirror'"), ("scales=a,b", "scales must be numbers"),
                       ("scales=0,1", "between 0.1 and 4")]:
        with pytest.raises(ValueError, match=words):
            TTA.parse(bad)


def test_tiles_the_model_cannot_take_and_overlaps_out_of_range_are_refused(tiny_run):
    from seglab.inference.runtimes import open_predictor

    predictor = open_predictor(tiny_run.path)
    step = predictor.multiple
    assert step > 1
    with pytest.raises(ValueError, match=f"multiples of its stride {step}. The nearest is --tile {3 * step}"):
        Inference(predictor, tile=3 * step + 1)
    with pytest.raises(ValueError, match=f"The nearest is --tile {step}"):
        Inference(predictor, tile=step - 1)
    for overlap in (-0.1, 0.95):
        with pytest.raises(ValueError, match="--overlap must be between 0 and 0.9"):
            Inference(predictor, tile=4 * step, overlap=overlap)
    labels_only = Predictor(predictor.classes, predictor.size, "labels")  # an export that decides labels in its graph
    with pytest.raises(ValueError, match="Export the run with --output logits"):
        Inference(labels_only, tta=TTA.parse("flip"))
    # a tile larger than the image: one padded tile, labels at the image's size
    inference = Inference(predictor, tile=16 * step)
    labels = inference.tiled_labels(asymmetric_image(7, 11))
    assert labels.shape == (7, 11) and inference.tile_count((7, 11)) == 1


def test_predict_and_evaluate_slide_tiles_from_the_command_line(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from seglab.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(noise(70, 150)).save(folder / "wide.png")
    Image.fromarray(noise(20, 25, seed=1)).save(folder / "small.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(folder), "--out", str(out), "--tile", "32",
                                      "--overlap", "0.5", "--tta", "flip"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "predictions.json").read_text())
    assert (summary["tile"], summary["overlap"], summary["tta"]) == (32, 0.5, "flip")
    assert {Image.open(out / e["mask"]).size for e in summary["images"]} == {(150, 70), (25, 20)}

    result = CliRunner().invoke(app, ["evaluate", str(tiny_run.path), "--tile", "32", "--tta", "flip"])
    assert result.exit_code == 0, result.output
    assert "32px tiles overlapping 0.25, TTA flip" in " ".join(result.output.split())
    metrics = json.loads((tiny_run.path / "metrics_val_full_tile32_tta-flip.json").read_text())
    assert metrics["full_res"] and metrics["tile"] == 32 and 0 <= metrics["miou"] <= 1

    result = CliRunner().invoke(app, ["predict", str(tiny_run.path), str(folder), "--out", str(tmp_path / "o2"), "--tile", "30"])
    assert result.exit_code == 2 and "--tile 32" in result.output


def test_a_run_trained_at_a_scale_is_tiled_at_that_scale_and_answered_at_full_size():
    import tensorflow as tf

    predictor, whole = pointwise()
    image = noise(50, 70)
    labels = Inference(predictor, tile=16, scale=0.5).tiled_labels(image)
    assert labels.shape == (50, 70)
    # what the scaled image gives, resized back: the scaling is undone exactly for a pointwise model
    small = np.asarray(tf.round(tf.image.resize(image, (25, 35))), np.uint8)
    expected = np.asarray(tf.image.resize(whole(small)[None].astype(np.float32), (50, 70)))[0].argmax(-1)
    assert (labels == expected).mean() > 0.999
