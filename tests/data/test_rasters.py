"""Images beyond 8-bit RGB, read as users have them: multi-band (Geo)TIFFs, 16-bit PNGs, and a
folder of single-band files per sample; and `seglab check` on such datasets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from seglab.cli import app
from seglab.core.errors import DataError
from seglab.data.images import read_image
from seglab.data.rasters import GEO_TAGS, read_raster

# A GeoTIFF's georeferencing as GDAL writes it for a UTM scene: pixel size, tie point, GeoKeys.
GEO = [(33550, "d", 3, (10.0, 10.0, 0.0), True), (33922, "d", 6, (0.0, 0.0, 0.0, 338749.77, 4414410.36, 0.0), True),
       (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32631), True)]


def gdal_descriptions(names) -> str:
    items = "".join(f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>' for i, n in enumerate(names))
    return f"<GDALMetadata>{items}</GDALMetadata>"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("planar", [False, True], ids=["interleaved", "planar"])
def test_a_multiband_tiff_keeps_its_bands_depth_names_and_georeference(tmp_path, dtype, planar):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    pixels = (rng.integers(info.min, info.max, (20, 30, 7), endpoint=True) if info else rng.normal(0, 1e3, (20, 30, 7))).astype(dtype)
    names = [f"B{i:02d}" for i in range(1, 8)]
    path = tmp_path / "scene.tif"
    data = np.moveaxis(pixels, -1, 0) if planar else pixels
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="separate" if planar else "contig",
                     compression="lzw", extratags=[*GEO, (42112, "s", 0, gdal_descriptions(names), True)])
    raster = read_raster(path)
    assert raster.pixels.dtype == dtype and raster.bands == tuple(names)
    np.testing.assert_array_equal(raster.pixels, pixels)
    assert set(raster.geo) == {33550, 33922, 34735} and raster.geo[33922][2] == GEO[1][3]
    assert raster.select(["B04", "B02"], path).pixels.shape == (20, 30, 2)


def test_bands_without_descriptions_are_numbered_and_a_missing_one_is_named(tmp_path):
    path = tmp_path / "plain.tiff"
    tifffile.imwrite(path, np.zeros((4, 5, 3), np.uint16), photometric="minisblack", planarconfig="contig")
    raster = read_raster(path)
    assert raster.bands == ("1", "2", "3") and not raster.georeferenced
    with pytest.raises(DataError, match=r"plain.tiff: has no band B08 \(its bands: 1, 2, 3\)"):
        raster.select(["3", "B08"], path)


def test_a_16_bit_png_is_read_at_full_depth_and_8_bit_rgb_as_before(tmp_path):
    deep = np.arange(0, 65536, 257, dtype=np.uint16)[:240].reshape(12, 20)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    raster = read_raster(tmp_path / "deep.png")
    assert raster.pixels.dtype == np.uint16 and raster.bands == ("1",)
    np.testing.assert_array_equal(raster.pixels[..., 0], deep)  # values above 255 kept, nothing scaled
    rgb = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    raster = read_raster(tmp_path / "rgb.png")
    assert raster.bands == ("R", "G", "B")
    np.testing.assert_array_equal(raster.pixels, read_image(tmp_path / "rgb.png"))


def test_a_folder_of_band_files_is_one_sample_named_by_its_files(tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    rng = np.random.default_rng(2)
    planes = {name: rng.integers(0, 10000, (16, 24), dtype=np.uint16) for name in ("B11", "B02", "B08")}
    for name, plane in planes.items():
        tifffile.imwrite(scene / f"{name}.tiff", plane, extratags=GEO)
    raster = read_raster(scene)
    assert raster.bands == ("B02", "B08", "B11") and raster.georeferenced
    np.testing.assert_array_equal(raster.pixels, np.stack([planes[b] for b in raster.bands], -1))
    tifffile.imwrite(scene / "B12.tiff", np.zeros((8, 24), np.uint16))
    with pytest.raises(DataError, match="B12.tiff: is 24x8 but B02.tiff beside it is 24x16"):
        read_raster(scene)
    (scene / "B12.tiff").unlink()
    tifffile.imwrite(scene / "RGB.tiff", np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(DataError, match="RGB.tiff: holds 3 bands"):
        read_raster(scene)


def _band_dataset(root, scenes: dict[str, tuple[str, ...]], size=(16, 24)):
    """images/<scene>/<band>.tiff (uint16) and masks/<scene>.png, with a colour table."""
    rng = np.random.default_rng(3)
    for scene, bands in scenes.items():
        (root / "images" / scene).mkdir(parents=True)
        for band in bands:
            tifffile.imwrite(root / "images" / scene / f"{band}.tiff", rng.integers(0, 20000, size, dtype=np.uint16))
        mask = np.zeros((*size, 3), np.uint8)
        mask[2:5, 3:7] = (255, 0, 0)
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(root / "masks" / f"{scene}.png")
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nvessel:255,0,0::\n")
    return root


def test_check_names_the_sample_whose_bands_differ_and_reports_each_band(tmp_path):
    five = ("B02", "B03", "B04", "B08", "B11")
    data = _band_dataset(tmp_path / "data", {"a": five, "b": five, "c": five, "odd": ("B03", "B04", "B05", "B08", "B11")})
    result = CliRunner().invoke(app, ["check", str(data), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and report["classes"] == ["background", "vessel"]
    [problem] = report["errors"]
    assert problem["file"].endswith("odd") and "--bands B03,B04,B08,B11" in problem["message"]
    assert report["bands"]["names"] == list(five) and report["bands"]["dtypes"] == ["uint16"]
    planes = np.stack([read_raster(data / "images" / s).pixels for s in "abc"])
    b08 = report["bands"]["per_band"]["B08"]
    values = planes[..., 3].astype(np.float64)
    assert (b08["min"], b08["max"]) == (values.min(), values.max())
    assert b08["mean"] == pytest.approx(values.mean(), abs=1e-4) and b08["std"] == pytest.approx(values.std(), abs=1e-3)
    result = CliRunner().invoke(app, ["check", str(data), "--bands", "B03,B04,B08,B11"])
    assert result.exit_code == 0 and "Bands: 4 (uint16)" in result.output, result.output
    result = CliRunner().invoke(app, ["check", str(data), "--bands", "B02,B04"])
    assert result.exit_code == 1 and "odd: has no band B02 (its bands: B03, B04, B05, B08, B11)" in " ".join(result.output.split())


def test_sen2ships_reads_with_its_georeference_and_the_scene_without_b02_is_named(shared_data):
    root = shared_data / "sen2ships"
    raster = read_raster(root / "images" / "algiers")
    assert raster.bands == ("B02", "B03", "B04", "B08", "B11") and raster.pixels.dtype == np.uint16
    assert raster.georeferenced and set(raster.geo) <= set(GEO_TAGS)
    result = CliRunner().invoke(app, ["check", str(root), "--json"])
    report = json.loads(result.output)
    assert [e["file"].rsplit("/", 1)[-1] for e in report["errors"]] == ["santos"]
    assert report["classes"] == ["background", "vessel"] and report["total_pairs"] == 6
    result = CliRunner().invoke(app, ["check", str(root), "--bands", "B04,B03,B08,B11"])
    assert result.exit_code == 0, result.output


def test_a_mask_geotiff_takes_the_images_georeference_but_not_its_no_data_value(tmp_path):
    from seglab.data.rasters import geotiff_bytes

    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, np.zeros((6, 8), np.uint16), extratags=[*GEO, (42113, "s", 0, "0", True)])
    image = read_raster(path)
    assert 42113 in image.geo
    (tmp_path / "mask.tif").write_bytes(geotiff_bytes(np.eye(6, 8, dtype=np.uint8), image.geo))
    mask = read_raster(tmp_path / "mask.tif")
    assert mask.geo == {k: v for k, v in image.geo.items() if k != 42113}
    np.testing.assert_array_equal(mask.pixels[..., 0], np.eye(6, 8, dtype=np.uint8))
