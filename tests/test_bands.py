"""Images beyond 8-bit RGB through every verb: 16-bit values kept to the last bit, seven named
bands trained, evaluated, predicted (a GeoTIFF mask where the image lies), exported and predicted
on Ray; pretrained RGB encoders adapted to any band count."""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image
from typer.testing import CliRunner

from seglab.cli import app
from seglab.commands.training import train
from seglab.data.augment import Augment
from seglab.data.images import read_image
from seglab.data.rasters import read_raster

BANDS = tuple(f"B{i}" for i in range(1, 8))
# A GeoTIFF's georeferencing as GDAL writes it for a UTM scene: pixel size, tie point, GeoKeys.
GEO = [(33550, "d", 3, (10.0, 10.0, 0.0), True), (33922, "d", 6, (0.0, 0.0, 0.0, 338749.77, 4414410.36, 0.0), True),
       (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32631), True)]
FLOAT32 = {"precision": "float32", "previews": 2}


def seglab(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def band_tiff(path: Path, pixels: np.ndarray, names) -> Path:
    items = "".join(f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>' for i, n in enumerate(names))
    tifffile.imwrite(path, pixels, photometric="minisblack", planarconfig="contig",
                     extratags=[*GEO, (42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True)])
    return path


def seven_band_dataset(root: Path, count: int = 24) -> Path:
    """uint16 GeoTIFFs of seven bands around 3000 where only band B6 tells a square from the rest."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        mask = np.zeros((32, 32), np.uint8)
        y, x = rng.integers(0, 20, 2)
        mask[y:y + 12, x:x + 12] = 1
        pixels = rng.normal(3000, 300, (32, 32, 7))
        pixels[..., 5] += np.where(mask == 1, 2000, 0)
        band_tiff(root / "images" / f"t{i:02d}.tif", pixels.astype(np.uint16), BANDS)
        Image.fromarray(mask * 255).save(root / "masks" / f"t{i:02d}.png")
    return root


def test_a_16_bit_dataset_whose_classes_differ_in_the_low_8_bits_trains_to_every_pixel(tmp_path):
    """Class a is 0x8000 + 10 and class b 0x8000 + 245 (each +-4): at 8 bits both are 128, so
    nothing could learn them; at 16 bits, stretched by the training split's percentiles, every
    validation pixel is right."""
    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for i in range(40):
        mask = np.zeros((32, 32), np.uint8)
        y, x = rng.integers(0, 16, 2)
        mask[y:y + 16, x:x + 16] = 1
        pixels = (0x8000 + np.where(mask == 1, 245, 10) + rng.integers(-4, 5, mask.shape)).astype(np.uint16)
        Image.fromarray(pixels).save(tmp_path / "data" / "images" / f"s{i:02d}.png")
        Image.fromarray(mask).save(tmp_path / "data" / "masks" / f"s{i:02d}.png")
    eight_bit = read_image(tmp_path / "data" / "images" / "s00.png")  # what seglab read before bands
    assert np.unique(eight_bit).tolist() == [128]

    run = train(tmp_path / "data", tmp_path / "run", model="unet", size=32, batch_size=8, epochs=20, learning_rate=1e-2,
                loss="bce", schedule="constant", augment=False, classes=("a", "b"), model_options={"filters": (8, 16)},
                verbose=0, **FLOAT32)
    assert run.config.data.bands == ("1",)
    assert run.history()[-1]["val_pixel_accuracy"] == 1.0
    stretch = run.load_model().get_layer("band_stretch")
    assert 0x8000 <= stretch.low[0] < 0x8000 + 20 and 0x8000 + 235 < stretch.high[0] <= 0x8000 + 250


@pytest.fixture(scope="module")
def seven_band_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bands")
    data = seven_band_dataset(root / "data")
    code, output = seglab("train", data, "--out", root / "run", "--model", "unet", "--size", "32", "--batch-size", "8",
                          "--epochs", "6", "--option", "filters=8,16", "--precision", "float32", "--previews", "2")
    assert code == 0, output
    return root / "run", data


@pytest.mark.slow
def test_seven_bands_train_evaluate_predict_georeferenced_export_and_ray(seven_band_run, tmp_path):
    run, data = seven_band_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["bands"] == list(BANDS)
    assert Image.open(run / "samples" / "images" / "00.jpg").size == (32, 32)  # a composite of three bands

    code, output = seglab("evaluate", run, "--full-res")
    assert code == 0, output
    assert json.loads((run / "metrics_val_full.json").read_text())["pixel_accuracy"] > 0.8

    # An image of five of the bands: named with the bands it has, the others predicted.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("t00.tif", "t01.tif"):
        (inputs / name).symlink_to(data / "images" / name)
    five = read_raster(data / "images" / "t02.tif").pixels[..., :5]
    band_tiff(inputs / "five.tif", five, BANDS[:5])
    code, output = seglab("predict", run, inputs, "--out", tmp_path / "local")
    assert code == 0 and "Predicted 2 image(s)" in output and "1 failed" in output, output
    assert "five.tif: has no band B6, B7 (its bands: B1, B2, B3, B4, B5)" in " ".join(output.split())
    mask = read_raster(tmp_path / "local" / "masks" / "t00.tif.tif")
    image = read_raster(data / "images" / "t00.tif")
    assert mask.geo == image.geo and mask.pixels.shape == (32, 32, 1)
    png = np.asarray(Image.open(tmp_path / "local" / "masks" / "t00.tif.png"))
    np.testing.assert_array_equal(mask.pixels[..., 0], png)
    record = json.loads((tmp_path / "local" / "predictions.json").read_text())["images"][0]
    assert record["geotiff"] == "masks/t00.tif.tif"
    code, output = seglab("predict", run, inputs / "t00.tif", "--out", tmp_path / "tiled", "--tile", "16", "--tta", "flip",
                          "--display-bands", "B6")
    assert code == 0, output
    tiled = read_raster(tmp_path / "tiled" / "masks" / "t00.tif.tif")
    assert tiled.geo == image.geo and (tiled.pixels[..., 0] == png).mean() > 0.9

    code, output = seglab("export", run, "--format", "onnx", "--out", tmp_path / "onnx")
    assert code == 0 and "labels agree on 100" in output, output
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert meta["input"]["bands"] == list(BANDS) and meta["input"]["channels"] == 7
    code, output = seglab("predict", tmp_path / "onnx", inputs, "--out", tmp_path / "exported")
    assert code == 0, output
    for name in ("t00.tif.png", "t01.tif.png", "t00.tif.tif"):
        assert (tmp_path / "exported" / "masks" / name).read_bytes() == (tmp_path / "local" / "masks" / name).read_bytes()

    # Ray's actors read, predict and encode the bands as the local engine does, the failure included.
    code, output = seglab("predict", run, inputs, "--out", tmp_path / "ray", "--engine", "ray", "--actors", "1",
                          "--cpus-per-actor", "1")
    assert code == 0 and "Predicted 2 image(s)" in output and "1 failed" in output, output
    for kind in ("masks", "overlays"):
        names = sorted(p.name for p in (tmp_path / "local" / kind).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "ray" / kind).iterdir())
        for name in names:
            assert (tmp_path / "ray" / kind / name).read_bytes() == (tmp_path / "local" / kind / name).read_bytes(), name


def test_bands_a_dataset_lacks_and_images_whose_band_count_differs_are_one_line(tmp_path):
    data = seven_band_dataset(tmp_path / "data", count=6)
    code, output = seglab("train", data, "--out", tmp_path / "run", "--bands", "B6,B9", "--epochs", "1")
    assert code == 1 and "has no band B9 (its bands: B1, B2, B3, B4, B5, B6, B7)" in " ".join(output.split())
    assert not (tmp_path / "run").exists()
    band_tiff(data / "images" / "t03.tif", np.zeros((32, 32, 5), np.uint16), BANDS[:5])
    code, output = seglab("check", data)
    assert code == 1 and "t03.tif: has bands B1, B2, B3, B4, B5, but most images have" in " ".join(output.split())
    code, output = seglab("train", data, "--out", tmp_path / "run", "--bands", "B6,B6", "--epochs", "1")
    assert code == 2 and "--bands names B6 twice" in output


def test_a_16_bit_grey_image_among_photos_is_read_as_rgb_as_it_always_was(tmp_path):
    from conftest import blocks_mask, write_folder

    from seglab.runs.config import TrainConfig

    data = write_folder(tmp_path / "data", {f"p{i}": blocks_mask(16, 24, 2) for i in range(5)}, classes=["a", "b"])
    Image.fromarray(np.full((16, 24), 40000, np.uint16)).save(data / "images" / "p0.png")
    code, output = seglab("check", data)
    assert code == 0 and "mix pixel types" not in output, output
    assert TrainConfig.of(path=str(data)).open_source().bands.rgb


def test_pretrained_rgb_kernels_are_adapted_to_any_band_count(tmp_path):
    """segmentation_models.pytorch's rule: one band takes the sum of the RGB slices; C bands take
    slice i mod 3, scaled by 3 / C; every other weight as it was."""
    from seglab.models.backbones import load_application

    rgb = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    rgb.set_weights([np.random.default_rng(i).normal(0, 1, w.shape).astype("float32") for i, w in enumerate(rgb.weights)])
    rgb.save_weights(tmp_path / "rgb.weights.h5")
    kernel = rgb.get_layer("Conv1").kernel.numpy()
    for bands in (1, 5, 6):
        model = load_application(keras.applications.MobileNetV2, "MobileNetV2", tmp_path / "rgb.weights.h5", "",
                                 input_shape=(32, 32, bands), alpha=0.35)
        adapted = model.get_layer("Conv1").kernel.numpy()
        expected = kernel.sum(2, keepdims=True) if bands == 1 else kernel[:, :, [i % 3 for i in range(bands)]] * 3 / bands
        np.testing.assert_allclose(adapted, expected, rtol=1e-6)
        np.testing.assert_array_equal(model.get_layer("block_16_project").kernel.numpy(),
                                      rgb.get_layer("block_16_project").kernel.numpy())
        if bands % 3 == 0 or bands == 1:  # a grey pixel excites each filter as it did in RGB
            np.testing.assert_allclose(adapted.sum((0, 1, 2)), kernel.sum((0, 1, 2)), rtol=1e-5, atol=1e-5)


def test_augmentation_shifts_each_band_by_its_own_span_and_keeps_its_type_range():
    """Brightness is a share of each band's span (not of 255), contrast turns around each band's
    own mean, and values stay inside uint16's range."""
    import tensorflow as tf

    augment = Augment(flip=0.0, vflip=0.0, zoom=(1.0, 1.0), brightness=0.5, contrast=0.0)
    images = tf.constant(np.stack([np.full((4, 4), 1000.0), np.full((4, 4), 65000.0)], -1)[None], tf.float32)
    masks = tf.zeros((1, 4, 4), tf.uint8)
    seed = tf.constant([3, 4], tf.int64)
    shifted, _ = augment(images, masks, seed, span=(100.0, 20000.0), bounds=(0.0, 65535.0))
    delta = float(augment.draws(1, seed)["brightness"][0, 0, 0, 0])
    expected = np.minimum([1000.0 + 100.0 * delta, 65000.0 + 20000.0 * delta], 65535.0)
    np.testing.assert_allclose(shifted.numpy()[0, 0, 0], expected, rtol=1e-6)
