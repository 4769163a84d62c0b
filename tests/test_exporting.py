"""`seglab export`: every model family in ONNX and LiteRT (a SavedModel along the way) gives
Keras's labels in its own runtime; exported folders predict like the run; bad input is a
one-line error and leaves nothing behind."""
from __future__ import annotations

import json
import os
import shutil

import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from seglab.cli import app
from seglab.commands.exporting import export, parity, predictor_for, write_graph
from seglab.commands.prediction import predict
from seglab.core.errors import OutputError
from seglab.core.precision import precision
from seglab.deploy.deployable import deployable, float32_reference, stride
from seglab.inference.runtimes import PREDICTORS, cores, open_predictor
from seglab.models import build_model

# Small sizes, no downloads: (name, size, options, slow). The from-scratch U-Net is the fast case.
FAMILIES = [
    ("unet", 32, {"filters": (4, 8), "batch_norm": True}, False),
    ("pix2pix_unet", 64, {"filters": 8, "max_filters": 16}, True),
    ("mobilenet_unet", 64, {"weights": "none", "alpha": 0.35, "decoder_filters": (16, 8, 8, 8)}, True),
    ("fcn8s", 64, {"weights": "none"}, True),
    ("deeplabv3plus", 64, {"weights": "none", "encoder": "mobilenet_v2", "filters": 16}, True),
    ("fpn", 64, {"weights": "none", "encoder": "mobilenet_v3_small", "pyramid_filters": 16, "segmentation_filters": 16},
     True),
]
# Every family in ONNX (the fast tier) and LiteRT, and in SavedModel the families whose export
# is quick: Keras writes a LiteRT file by way of a SavedModel of the same graph, so the LiteRT
# case writes each family's SavedModel too, and a MobileNet's SavedModel case took 22-35 s more
# on 2 AVX2 cores. Then U-Net over a keras.applications encoder in ONNX only: a pretrained
# encoder's export costs about 20 s a format.
QUICK_SAVED_MODEL = {"unet", "pix2pix_unet", "fcn8s"}
CASES = [pytest.param(format, name, size, options, id=f"{format}-{name}-{options.get('encoder', size)}",
                      marks=[pytest.mark.slow] if slow or format != "onnx" else [])
         for format in ("onnx", "saved_model", "litert") for name, size, options, slow in FAMILIES
         if format != "saved_model" or name in QUICK_SAVED_MODEL] + [
    pytest.param("onnx", "unet", 64, {"encoder": "mobilenet_v3_small", "weights": "none",
                                      "decoder_filters": (16, 16, 8, 8, 8)},
                 marks=pytest.mark.slow, id="onnx-unet-mobilenet_v3_small")]


def images(count, height, width, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, height, width, 3)).astype(np.float32)


@pytest.mark.filterwarnings("ignore:mobilenet_unet. the encoder has random weights")  # parity needs no training
@pytest.mark.parametrize("format,name,size,options", CASES)
def test_every_family_exports_with_the_same_labels(name, size, options, format, tmp_path):
    model = build_model(name, 3, size, **options)
    path, graph, dynamic = write_graph(model, format, tmp_path)
    exported = PREDICTORS[format](path, classes=None, size=size, output="logits")
    check = parity(model, exported, images(4, size, size))
    assert check["max_abs_diff"] < 1e-3 and check["label_agreement"] >= 0.999, check
    assert dynamic  # all are fully convolutional
    step = stride(model)
    wide = images(2, step * 2, step * 3)  # another, non-square size, a multiple of the stride
    assert exported(wide).shape == (2, step * 2, step * 3, 3)
    np.testing.assert_allclose(exported(wide), graph.predict_on_batch(wide), atol=1e-3)


def test_a_nested_normalization_with_constants_exports_as_constants(tmp_path):
    """EfficientNetV2's encoder scales its input with a Normalization layer of fixed mean and
    variance, inside the nested encoder. tf2onnx once turned those constants into graph inputs
    a caller would have to feed; ConstantNormalization makes them inside the graph."""
    import onnx

    inner_input = keras.Input((None, None, 3))
    normalize = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3600.0, 3500.0, 3400.0])
    encoder = keras.Model(inner_input, keras.layers.Conv2D(4, 3, padding="same")(normalize(inner_input)), name="encoder")
    image = keras.Input((32, 32, 3), name="image")
    model = keras.Model(image, keras.layers.Conv2D(3, 1, name="logits")(encoder(image)))
    path, _, _ = write_graph(model, "onnx", tmp_path)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["image"]
    check = parity(model, PREDICTORS["onnx"](path, classes=None, size=32, output="logits"), images(2, 32, 32))
    assert check["max_abs_diff"] < 1e-4, check


@pytest.mark.long
@pytest.mark.slow  # imports KerasHub
def test_segformer_exports_at_its_fixed_size_with_the_same_labels(tmp_path):
    """KerasHub's MiT takes one square size, so the file states it. Its layers do not rebuild from
    their configs (the float32 copy comes from seglab's builder), its decoder's BatchNormalization
    must be pinned to inference in the traced graph, and tf2onnx's reshape optimizer must stay off
    its attention: each of these broke the parity below. ONNX is the format all three touch; the
    SavedModel and LiteRT exports (30 s each) passed the same check when this was written."""
    with precision("mixed_bfloat16"):
        model = build_model("segformer", 3, 64, weights="none")
    reference, kind = float32_reference(model)
    assert "trained in mixed_bfloat16" in kind
    path, graph, dynamic = write_graph(model, "onnx", tmp_path)
    assert not dynamic and graph.input_shape == (None, 64, 64, 3)
    exported = PREDICTORS["onnx"](path, classes=None, size=64, output="logits")
    check = parity(reference, exported, images(4, 64, 64))  # 4 > 1: a batch, as the ONNX failure needed
    assert check["max_abs_diff"] < 1e-3 and check["label_agreement"] >= 0.999, check


def test_stride_is_the_coarsest_feature_maps_step():
    # A U-Net pools once per level of `filters`, then its bottleneck works at that size.
    assert stride(build_model("unet", 2, 64, filters=(4, 8, 16))) == 8
    assert stride(build_model("unet", 2, 64, filters=(4, 8, 16, 32, 64))) == 32
    # DeepLabV3+ works at stride 16; its image-pooling branch's 1x1 maps are not a coarser level
    assert stride(build_model("deeplabv3plus", 2, 128, weights="none", fine_tune="all")) == 16


def test_a_binary_model_exports_labels_decided_inside_the_graph(tmp_path):
    model = build_model("unet", 1, 32, filters=(4, 8))
    path, _, _ = write_graph(model, "onnx", tmp_path, output="labels")
    exported = PREDICTORS["onnx"](path, classes=None, size=32, output="labels")
    batch = images(3, 32, 32)
    labels = exported(batch)
    assert labels.shape == (3, 32, 32) and set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (model.predict_on_batch(batch)[..., 0] > 0).astype(labels.dtype))
    probabilities, _ = deployable(model, "probabilities")
    assert np.all((probabilities.predict_on_batch(batch) >= 0) & (probabilities.predict_on_batch(batch) <= 1))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:mobilenet_unet. the encoder has random weights")
def test_onnx_runs_a_batch_as_two_halves_where_the_graph_has_transposed_convolutions(tmp_path, monkeypatch):
    """Both halves at once on sessions of half the cores each (see OnnxPredictor): the same
    logits as one session on the whole batch, an odd batch split 3 + 2, a single image on the
    whole-machine session; a graph without ConvTranspose keeps one session, and so does a
    process allowed one thread (a Ray actor's share of the CPUs)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if cores() < 2:
        pytest.skip("one core: a batch is not split")
    name, size, options, _ = FAMILIES[2]  # mobilenet_unet: its 3x3 transposed convolutions stay
    path, _, _ = write_graph(build_model(name, 3, size, **options), "onnx", tmp_path / "mobilenet_unet")
    exported = PREDICTORS["onnx"](path, classes=None, size=size, output="logits")
    assert exported.halves is not None
    for count in (5, 1):
        batch = images(count, size, size, seed=count)
        whole = exported.session.run(None, {exported.input_name: batch})[0]
        np.testing.assert_allclose(exported(batch), whole, rtol=1e-5, atol=1e-5)
    unet, _, _ = write_graph(build_model("unet", 3, 32, filters=(4, 8)), "onnx", tmp_path / "unet")
    assert PREDICTORS["onnx"](unet, classes=None, size=32, output="logits").halves is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    single = PREDICTORS["onnx"](path, classes=None, size=size, output="logits")
    assert single.halves is None and single.session.get_session_options().intra_op_num_threads == 1


def test_runtimes_take_their_thread_count_from_omp_num_threads_else_the_cpu_affinity(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cores() == 3
    for unusable in ("", "many", "0"):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert cores() == len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def onnx_export(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "onnx"
    return out, export(tiny_run.path, "onnx", out)


def test_export_writes_the_model_classes_and_what_the_file_takes(tiny_run, onnx_export):
    out, meta = onnx_export
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "export.json", "model.onnx"]
    assert json.loads((out / "export.json").read_text()) == meta
    assert meta["input"] == {"name": "image", "layout": "NHWC", "dtype": "float32", "channels": "RGB", "range": [0, 255],
                             "bands": None, "display_bands": None, "height": None, "width": None, "multiple_of": 4, "size": 32, "crop": None,
                             "scale": 1.0}
    assert meta["output"]["kind"] == "logits" and meta["output"]["classes"] == ["background", "circle", "square", "triangle"]
    assert meta["source"]["checkpoint"] == "model.keras" and len(meta["source"]["sha256"]) == 64
    assert meta["parity"]["verified"] and meta["parity"]["images"] == 32 and meta["parity"]["label_agreement"] >= 0.999
    assert {"seglab", "keras", "tensorflow", "onnxruntime", "tf2onnx"} <= set(meta["versions"])


def test_an_exported_folder_predicts_the_masks_the_run_predicts(tiny_run, onnx_export, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (h, w) in enumerate([(50, 70), (33, 21), (64, 64)]):
        Image.fromarray(images(1, h, w, seed=i)[0].astype(np.uint8)).save(folder / f"{i}.png")
    from_run = predict(tiny_run.path, [folder], tmp_path / "keras")
    from_export = predict(onnx_export[0], [folder], tmp_path / "onnx")
    assert from_export["runtime"] == "onnx" and from_export["export"] == str(onnx_export[0].resolve())
    for a, b in zip(from_run["images"], from_export["images"]):
        assert a["class_fraction"] == b["class_fraction"]
        assert (tmp_path / "keras" / a["mask"]).read_bytes() == (tmp_path / "onnx" / b["mask"]).read_bytes()


def test_a_dynamic_size_export_slides_tiles_as_the_run_does(tiny_run, onnx_export):
    from seglab.inference.runtimes import open_predictor
    from seglab.inference.tiling import TTA, Inference

    image = images(1, 70, 90, seed=5)[0].astype(np.uint8)
    run, exported = open_predictor(tiny_run.path), open_predictor(onnx_export[0])
    for tile in (32, 48):  # the training size, and one only a dynamic-size model takes
        a = Inference(run, tile=tile, tta=TTA.parse("flip")).tiled_labels(image)
        b = Inference(exported, tile=tile, tta=TTA.parse("flip")).tiled_labels(image)
        assert a.shape == (70, 90) and (a == b).mean() >= 0.999


@pytest.mark.slow
def test_runtime_on_a_run_exports_once_into_the_run_and_reuses_it(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="export it first with `seglab export"):
        open_predictor(tiny_run.path, "litert")  # opening never exports: the verbs do, through predictor_for
    first = predictor_for(tiny_run.path, "litert")
    assert first.runtime == "litert" and (tiny_run.path / "export" / "litert" / "model.tflite").is_file()
    made = (tiny_run.path / "export" / "litert" / "export.json").stat().st_mtime_ns
    predictor_for(tiny_run.path, "litert")
    assert open_predictor(tiny_run.path, "litert").runtime == "litert"  # now current: opened as it is
    assert (tiny_run.path / "export" / "litert" / "export.json").stat().st_mtime_ns == made


@pytest.mark.slow
def test_the_command_line_exports_evaluates_and_refuses_a_runtime_an_export_lacks(tiny_run, onnx_export, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tiny_run.path), "--format", "saved_model", "--out", str(tmp_path / "sm"),
                                 "--output", "labels"])
    assert result.exit_code == 0, result.output
    assert "labels agree on 100.0000% of pixels" in result.output
    assert json.loads((tmp_path / "sm" / "export.json").read_text())["output"]["kind"] == "labels"
    result = runner.invoke(app, ["evaluate", str(tiny_run.path), "--runtime", "onnx", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    keras_metrics = runner.invoke(app, ["evaluate", str(tiny_run.path), "--out", str(tmp_path / "ev-keras")])
    assert keras_metrics.exit_code == 0
    onnx_miou = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    keras_miou = json.loads((tmp_path / "ev-keras" / "metrics.json").read_text())
    assert onnx_miou["runtime"] == "onnx" and abs(onnx_miou["miou"] - keras_miou["miou"]) < 1e-3
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    result = runner.invoke(app, ["predict", str(onnx_export[0]), str(tmp_path / "a.png"), "--out", str(tmp_path / "p"),
                                 "--runtime", "litert"])
    assert result.exit_code == 2 and "is an export for onnx; it runs only there, not on litert" in result.output


@pytest.mark.slow
def test_no_verify_is_recorded(tiny_run, tmp_path):
    meta = export(tiny_run.path, "onnx", tmp_path / "x", verify=False)
    assert meta["parity"] == {"verified": False, "reason": "--no-verify"}


def test_a_failed_parity_check_fails_with_exit_1_and_keeps_nothing(tiny_run, tmp_path, monkeypatch):
    import seglab.commands.exporting

    real = seglab.commands.exporting.deployable

    def converter_that_changes_the_model(model, output="logits", subpixel=None):  # as a broken converter would
        graph, dynamic = real(model, output, subpixel)
        graph.set_weights([w[::-1].copy() if w.ndim == 1 else w * -1 for w in graph.get_weights()])
        return graph, dynamic

    monkeypatch.setattr(seglab.commands.exporting, "deployable", converter_that_changes_the_model)
    result = CliRunner().invoke(app, ["export", str(tiny_run.path), "--format", "onnx", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1, result.output
    assert "disagrees with Keras" in result.output and "Nothing was written" in result.output
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary
    result = CliRunner().invoke(app, ["export", str(tiny_run.path), "--format", "onnx", "--min-agreement", "1.5"])
    assert result.exit_code == 2 and "min_agreement must be between 0 and 1" in result.output


def _edited(meta, section, key, value):
    return {**meta, section: {**meta[section], key: value}}


# Each: (what is done to a copy of a good ONNX export, the words the one-line error must hold)
TAMPERED = {
    "two class names for four classes": (lambda f, m: (f / "classes.json").write_text('["a", "b"]'),
                                         "classes.json: names 2 classes, but model.onnx scores 4"),
    "labels kind on a logits file": (lambda f, m: _write(f, _edited(m, "output", "kind", "labels")),
                                     "output.kind is 'labels', but model.onnx returns scores"),
    "unknown output kind": (lambda f, m: _write(f, _edited(m, "output", "kind", "masks")), "unknown output.kind 'masks'"),
    "size 1e999": (lambda f, m: (f / "export.json").write_text(json.dumps(m).replace('"size": 32', '"size": 1e999')),
                   "input.size must be a whole number of pixels, at least 1; found inf"),
    "size 0": (lambda f, m: _write(f, _edited(m, "input", "size", 0)), "input.size must be a whole number"),
    "negative size": (lambda f, m: _write(f, _edited(m, "input", "size", -32)), "found -32"),
    "multiple_of inf": (lambda f, m: (f / "export.json").write_text(json.dumps(m).replace('"multiple_of": 4', '"multiple_of": 1e999')),
                        "input.multiple_of must be a whole number"),
    "multiple_of abc": (lambda f, m: _write(f, _edited(m, "input", "multiple_of", "abc")), "found 'abc'"),
    "crop abc": (lambda f, m: _write(f, _edited(m, "input", "crop", "abc")), "input.crop must be a whole number"),
    "crop 7": (lambda f, m: _write(f, _edited(m, "input", "crop", 7)), "input.crop 7 is not a size the model takes"),
    "scale nan": (lambda f, m: (f / "export.json").write_text(json.dumps({**m, "input": {**m["input"], "scale": float("nan")}})),
                  "input.scale must be a number above 0"),
    "no classes.json": (lambda f, m: (f / "classes.json").unlink(), "classes.json not found"),
    "model.onnx a folder": (lambda f, m: ((f / "model.onnx").unlink(), (f / "model.onnx").mkdir()),
                            "model.onnx is a folder"),
    "export.json a list": (lambda f, m: (f / "export.json").write_text("[1, 2]"), "needs the sections"),
}


def _write(folder, meta):
    (folder / "export.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", list(TAMPERED))
def test_an_export_whose_files_disagree_is_refused_naming_the_file_and_field(case, onnx_export, tmp_path):
    """A tampered export.json or classes.json once gave wrong masks with exit 0 (classes dropped,
    labels read from logits) or a traceback; each field is checked when the folder is opened, and
    against what the model file itself returns."""
    tamper, words = TAMPERED[case]
    folder = tmp_path / "export"
    shutil.copytree(onnx_export[0], folder)
    tamper(folder, json.loads((folder / "export.json").read_text()))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["predict", str(folder), str(tmp_path / "a.png"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert words in " ".join(result.output.split()) and not (tmp_path / "out").exists(), result.output


@pytest.mark.parametrize("case", ["no model", "unknown format", "out is a file", "out holds other files",
                                  "truncated onnx", "corrupt tflite", "no model file", "bad export.json"])
def test_bad_input_is_a_one_line_error_naming_the_file(case, tiny_run, onnx_export, tmp_path):
    runner = CliRunner()
    images_dir = tmp_path / "in"
    images_dir.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images_dir / "a.png")
    if case == "no model":
        empty = tmp_path / "empty-run"
        empty.mkdir()
        for name in ("config.yaml", "classes.json", "state.json"):
            (empty / name).write_bytes((tiny_run.path / name).read_bytes())
        args, named = ["export", str(empty), "--format", "onnx"], "model.keras"
    elif case == "unknown format":
        args, named = ["export", str(tiny_run.path), "--format", "pb"], "Unknown format 'pb'"
    elif case == "out is a file":
        (tmp_path / "file").write_text("x")
        args, named = ["export", str(tiny_run.path), "--format", "onnx", "--out", str(tmp_path / "file")], "is a file"
    elif case == "out holds other files":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep me")
        args, named = ["export", str(tiny_run.path), "--format", "onnx", "--out", str(tmp_path / "mine")], "not part of a seglab export (notes.txt)"
    else:
        broken = tmp_path / "broken"
        broken.mkdir()
        for item in onnx_export[0].iterdir():
            (broken / item.name).write_bytes(item.read_bytes())
        if case == "truncated onnx":
            data = (broken / "model.onnx").read_bytes()
            (broken / "model.onnx").write_bytes(data[: len(data) // 3])
            named = "model.onnx is unreadable"
        elif case == "corrupt tflite":
            meta = json.loads((broken / "export.json").read_text())
            (broken / "export.json").write_text(json.dumps({**meta, "format": "litert", "file": "model.tflite"}))
            (broken / "model.tflite").write_bytes(b"\0" * 1000)
            named = "model.tflite is unreadable"
        elif case == "no model file":
            (broken / "model.onnx").unlink()
            named = "model.onnx not found"
        else:
            (broken / "export.json").write_text("{not json")
            named = "export.json is unreadable"
        args = ["predict", str(broken), str(images_dir), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and named in result.output, result.output
    assert not (tmp_path / "out" / "predictions.json").exists()
    if case == "out holds other files":
        assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    if case == "no model":
        assert not (tmp_path / "empty-run" / "export").exists()


@pytest.mark.slow
def test_int8_export_is_calibrated_checked_and_scored(tiny_run, tmp_path):
    # The tiny run trained for 2 epochs: its logits lie close together, so int8 rounding flips more
    # pixels (98.4% agree) than on a trained model (the demo run's: 99.8%). Hence the lower bar here.
    meta = export(tiny_run.path, "onnx", tmp_path / "int8", quantize="int8", min_agreement=0.95)
    assert meta["quantization"]["type"] == "int8" and meta["quantization"]["calibration_images"] > 0
    from seglab.commands.exporting import reduce_range_for
    from seglab.core.machine import cpu_flags, describe

    assert meta["quantization"]["for_cpu"] == describe()  # the CPU it was calibrated for, and its choice
    assert meta["quantization"]["reduce_range"] is reduce_range_for(cpu_flags())
    assert meta["parity"]["min_agreement"] == 0.95 and meta["parity"]["label_agreement"] >= 0.95
    assert set(meta["parity"]["val_miou"]) == {"keras_fp32", "exported"}
    model = onnx_model_ops(tmp_path / "int8" / "model.onnx")
    assert "QuantizeLinear" in model and "DequantizeLinear" in model
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == ["classes.json", "export.json", "model.onnx"]


def test_int8_is_for_onnx_only(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="--quantize int8 is for --format onnx"):
        export(tiny_run.path, "litert", tmp_path / "x", quantize="int8")
    assert not (tmp_path / "x").exists()


def onnx_model_ops(path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_weights_keep_to_7_bits_on_cpus_without_vnni():
    from seglab.commands.exporting import reduce_range_for

    assert reduce_range_for({"avx2", "fma"}) is True  # u8s8 through saturating 16-bit sums
    assert reduce_range_for({"avx2", "fma", "avx512f"}) is True
    assert reduce_range_for({"avx2", "avx512f", "avx512_vnni"}) is False
    assert reduce_range_for({"avx2", "avx_vnni"}) is False


@pytest.mark.parametrize("files", [
    {"export.json": '{"mine": true}', "thesis.txt": "years of work", "photos/ok.png": "png"},  # not seglab's export.json
    {"thesis.txt": "years of work"},
    {"export.json": '{"mine": true}'},
], ids=["foreign-export-json-and-files", "files", "foreign-export-json"])
def test_export_out_never_replaces_a_folder_seglab_did_not_write(tiny_run, tmp_path, files):
    out = tmp_path / "mine"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.raises(OutputError, match="nothing was changed") as refused:
        export(tiny_run.path, "onnx", out, verify=False)
    assert ("thesis.txt" in str(refused.value)) == ("thesis.txt" in files)
    assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()} == files


def test_export_out_replaces_an_earlier_export(tiny_run, tmp_path):
    out = tmp_path / "export"
    first = export(tiny_run.path, "onnx", out, verify=False)
    second = export(tiny_run.path, "onnx", out, verify=False)
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "export.json", "model.onnx"]
    assert first["format"] == second["format"] == "onnx"
