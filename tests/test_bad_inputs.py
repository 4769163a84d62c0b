"""A corpus of broken inputs, run through `check`, `train`, `predict`, `evaluate`, `report` and
`instances eval` as a user runs them: no traceback, a message naming the bad file, the documented
exit code (1 bad data, 2 bad arguments), and every good file's outputs present."""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import blocks_mask, write_folder
from PIL import Image
from typer.testing import CliRunner

from seglab.cli import app

TINY = ["--model", "unet", "--size", "32", "--batch-size", "4", "--option", "filters=4,8", "--epochs", "1"]


def seglab(*args):
    """Run the command line in-process: (exit code, stdout + stderr); a traceback fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def bomb_png(path: Path, width=100_000, height=100_000) -> Path:
    """A PNG whose header declares width x height pixels: Pillow refuses it as a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b""))
    return path


def dataset(root: Path, count=10) -> Path:
    return write_folder(root, {f"img{i:02d}": blocks_mask(32, 32) for i in range(count)}, classes=["a", "b", "c"])


# --- check and train on broken datasets -----------------------------------------------------------

def test_a_decompression_bomb_is_named_by_check_and_train(tmp_path):
    data = dataset(tmp_path / "data")
    bomb_png(data / "images" / "img03.png")
    code, output = seglab("check", data)
    assert code == 1 and "img03.png" in output and "decompression bomb" in output
    code, output = seglab("train", data, "--out", tmp_path / "run", *TINY)
    assert code == 1 and "img03.png" in output and not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, message", [
    ('{"names": 5}', "class names must be a list"),
    ('{"names": ["a", "b", "c"], "colors": [[1, 2]]}', "colours must be a list of [r, g, b]"),
    ("[1.5, null]", "class names must be a list"),
])
def test_a_classes_json_of_the_wrong_shape_is_one_line(tmp_path, content, message):
    data = dataset(tmp_path / "data")
    (data / "classes.json").write_text(content)
    code, output = seglab("check", data)
    assert code == 2 and "classes.json" in output and message in output


def test_a_colour_table_with_only_names_is_one_line(tmp_path):
    data = dataset(tmp_path / "data")
    (data / "classes.json").unlink()
    (data / "class_dict.csv").write_text("name\na\nb\nc\n")
    code, output = seglab("check", data)
    assert code == 2 and "class_dict.csv" in output and "name,r,g,b" in output


def test_an_empty_dataset_is_a_problem_not_a_clean_bill(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    code, output = seglab("check", tmp_path / "data")
    assert code == 1 and "no (image, mask) pairs" in output and "no problems found" not in output


@pytest.mark.slow
def test_a_dataset_too_small_to_split_is_refused_before_anything_is_written(tmp_path):
    data = dataset(tmp_path / "data", count=2)
    code, output = seglab("train", data, "--out", tmp_path / "run", *TINY)
    assert code == 2 and "--val-fraction" in output and not (tmp_path / "run").exists()
    code, output = seglab("train", data, "--out", tmp_path / "run", "--val-fraction", "0.5", *TINY)
    assert code == 0, output


@pytest.mark.parametrize("args, message", [
    (["--lr", "inf"], "learning_rate must be a number (or null); got inf (not finite)"),
    (["--lr", "-1"], "learning_rate must be a positive finite number"),
    (["--option", "filters=8,abc"], "Option filters of unet takes a comma-separated list of whole numbers"),
    (["--val-fraction", "1.5"], "val_fraction must be a number from 0.001 to 0.999"),
    (["--augment-zoom", "2,1"], "zoom must be two numbers, lo and hi with lo <= hi"),
    (["--optimizer", "sgd"], "Unknown optimizer 'sgd'. Use one of: adam, rmsprop"),
    (["--class-weights", "1,x"], "--class-weights takes auto, none or one number per class"),
])
def test_bad_training_options_are_refused_before_anything_is_written(tmp_path, args, message):
    data = dataset(tmp_path / "data")
    code, output = seglab("train", data, "--out", tmp_path / "run", *TINY, *args)
    assert code == 2 and message in output and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_file_names_that_are_not_utf8_are_read(tmp_path):
    data = dataset(tmp_path / "data")
    odd = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not UTF-8
    for folder in ("images", "masks"):
        shutil.copy(data / folder / "img00.png", data / folder / f"{odd}.png")
    code, output = seglab("check", data, "--json")
    assert code == 0 and json.loads(output[output.index("{"):])["total_pairs"] == 11
    code, output = seglab("train", data, "--out", tmp_path / "run", *TINY)
    assert code == 0, output


# --- output paths -------------------------------------------------------------------------------

def test_an_out_that_is_a_file_or_lies_under_one_is_refused(tmp_path, tiny_run):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    data = dataset(tmp_path / "data")
    for out in (blocker, blocker / "below"):
        for args in (["train", data, "--out", out, *TINY], ["predict", tiny_run.path, data / "images", "--out", out],
                     ["evaluate", tiny_run.path, "--out", out]):
            code, output = seglab(*args)
            assert code == 2 and str(blocker) in output and "is a file" in output or "which is a file" in output, output
    assert blocker.read_text() == "mine"


# --- resuming an edited run -----------------------------------------------------------------------

@pytest.fixture
def finished_run(tmp_path, tiny_run):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run.path, copy)
    return copy


@pytest.mark.parametrize("edit, message", [
    (lambda text: text + "\n  - broken: [\n", "not valid YAML"),
    (lambda text: text.replace("epochs: 2", "epochs: banana"), "epochs must be a whole number"),
    (lambda text: text.replace("batch_size: 16", "batch_size: 0"), "recipe.batch_size must be a whole number of at least 1"),
    (lambda text: "\n".join(line for line in text.splitlines() if line.strip() != "optimizer: adam"), "missing key recipe.optimizer"),
    (lambda text: text.replace("loss: ce+dice", "loss: focal"), "loss or class_weights differ"),
    (lambda text: text.replace("- 8", "- 16"), "model, model_options or size differ"),
])
def test_resume_validates_an_edited_config_like_a_new_one(finished_run, edit, message):
    config = finished_run / "config.yaml"
    config.write_text(edit(config.read_text()))
    before = (finished_run / "state.json").read_text()
    code, output = seglab("train", "--resume", finished_run)
    assert code == 2 and "config.yaml" in output and message in output, output
    assert (finished_run / "state.json").read_text() == before


@pytest.mark.slow
def test_more_epochs_in_config_continue_the_run(finished_run):
    config = finished_run / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 2", "epochs: 3"))
    code, output = seglab("train", "--resume", finished_run)
    assert code == 0, output
    assert json.loads((finished_run / "state.json").read_text())["epochs_done"] == 3


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"not a zip at all"])
def test_a_truncated_model_is_called_unreadable_not_missing(finished_run, tmp_path, damage):
    model = finished_run / "model.keras"
    data = model.read_bytes()
    model.unlink()  # a hard link to last.keras: replace, do not write through it
    model.write_bytes(damage(data))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    for args in (["predict", finished_run, tmp_path / "photo.png", "--out", tmp_path / "p"], ["evaluate", finished_run]):
        code, output = seglab(*args)
        assert code == 2 and "model.keras is unreadable" in output and "last.keras" in output, output


# --- predict keeps every good image -----------------------------------------------------------------

def test_predict_names_skips_and_counts_bad_files_and_writes_the_rest(tiny_run, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("x.jpg", "x.png", "x_1.png", "ok.png"):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / name)
    bomb_png(folder / "bomb.png")
    dots = tmp_path / "..png"
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(dots, format="PNG")
    code, output = seglab("predict", tiny_run.path, folder, dots, "--out", tmp_path / "out")
    assert code == 0 and "bomb.png" in output and "1 failed and skipped" in output
    summary = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert summary["predicted"] == 5 and [Path(f["file"]).name for f in summary["failed"]] == ["bomb.png"]
    masks = [entry["mask"] for entry in summary["images"]]
    assert len(set(masks)) == 5, masks  # x.jpg, x.png and x_1.png never share an output
    for entry in summary["images"]:
        assert (tmp_path / "out" / entry["mask"]).is_file() and (tmp_path / "out" / entry["overlay"]).is_file()
    assert {"masks/x.jpg.png", "masks/x.png.png", "masks/x_1.png.png", "masks/ok.png.png"} <= set(masks)
    code, output = seglab("predict", tiny_run.path, folder, "--out", tmp_path / "strict", "--strict")
    assert code == 1 and "bomb.png" in output


def test_output_names_are_unique_and_depend_only_on_their_own_file(tmp_path):
    from seglab.data.images import output_names

    a = output_names([Path("d/x.jpg"), Path("d/x.png"), Path("d/x_1.png"), Path("d/..png"), Path("d/a b.png")])
    assert a[:3] == ["x.jpg", "x.png", "x_1.png"] and len(set(a)) == 5
    assert output_names([Path("d/..png")]) == [a[3]] and output_names([Path("d/a b.png")]) == [a[4]]
    same = output_names([Path("one/x.png"), Path("two/x.png")])
    assert len(set(same)) == 2


# --- instances eval ------------------------------------------------------------------------------

def coco_annotations(path: Path) -> Path:
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 20}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0,
                         "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]}],
        "categories": [{"id": 1, "name": "thing"}]}))
    return path


@pytest.mark.parametrize("results, message", [
    ([{"image_id": 7, "category_id": 1, "bbox": [2, 2, 8, 8], "score": 0.9}], "image id 7"),
    ([{"image_id": 1, "category_id": 1, "score": 0.9}], "neither 'bbox' nor 'segmentation'"),
    ([{"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [[1, 2]]}], "a segmentation must be polygons"),
    ({"not": "a list"}, "must be a JSON list"),
])
def test_instances_eval_refuses_results_pycocotools_would_crash_on(tmp_path, results, message):
    annotations = coco_annotations(tmp_path / "ann.json")
    (tmp_path / "r.json").write_text(json.dumps(results))
    code, output = seglab("instances", "eval", "--annotations", annotations, "--results", tmp_path / "r.json")
    assert code == 2 and "r.json" in output and message in output, output


def test_instances_eval_warns_about_unknown_categories_and_box_only_results(tmp_path):
    annotations = coco_annotations(tmp_path / "ann.json")
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 1, "category_id": 9, "bbox": [2, 2, 8, 8], "score": 0.9}]))
    code, output = seglab("instances", "eval", "--annotations", annotations, "--results", tmp_path / "r.json")
    assert code == 0 and "category ids" in output and "box but no segmentation" in output


def test_a_malformed_annotation_and_a_model_that_is_no_tarball_are_one_line(tmp_path):
    annotations = coco_annotations(tmp_path / "ann.json")
    data = json.loads(annotations.read_text())
    data["annotations"][0]["segmentation"] = {"counts": 5}
    annotations.write_text(json.dumps(data))
    code, output = seglab("instances", "eval", "--annotations", annotations, "--ground-truth-as-results")
    assert code == 2 and "annotation 1" in output and "RLE" in output
    fake = tmp_path / "model.tar.gz"
    fake.write_bytes(b"this is not a tarball")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    code, output = seglab("instances", tmp_path / "a.png", "--model", fake, "--out", tmp_path / "out")
    assert code == 2 and "model.tar.gz: not a readable tar archive" in output


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_refused_archive_leaves_nothing_that_a_second_run_would_load(tmp_path):
    archive = _tarball(tmp_path / "A.tar.gz", {"m/saved_model.pb": b"first", "m/variables/x": b"1", "../evil": b"x"})
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for _ in range(2):  # the second run is refused as the first was, not handed the members before "../evil"
        code, output = seglab("instances", tmp_path / "a.png", "--model", archive, "--out", tmp_path / "out")
        assert code == 2 and "A.tar.gz: refused" in output and "Nothing was extracted" in output, output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["A.tar.gz", "a.png"]
    assert not (tmp_path.parent / "evil").exists()


def test_an_archive_whose_saved_model_is_not_one_is_one_line(tmp_path):
    archive = _tarball(tmp_path / "A.tar.gz", {"m/saved_model.pb": b"not a protocol buffer"})
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    code, output = seglab("instances", tmp_path / "a.png", "--model", archive, "--out", tmp_path / "out")
    assert code == 2 and "saved_model.pb: not a loadable TF2 SavedModel" in output, output


def test_install_hints_keep_their_brackets():
    code, output = seglab("train", "--help")
    assert "pip install 'seglab[wandb]'" in " ".join(output.split())
    code, output = seglab("instances", "--help")
    assert "pip install 'seglab[instances]'" in " ".join(output.split())


# --- evaluate on other data -------------------------------------------------------------------------

def test_evaluate_on_other_data_takes_its_format_and_keeps_each_dataset_apart(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    other = tmp_path / "shapes"
    assert seglab("synthetic", other, "--count", "12", "--size", "32")[0] == 0
    code, output = seglab("evaluate", run, "--data", other, "--format", "folder", "--split", "train")
    assert code == 0, output
    assert (run / "eval-shapes" / "metrics_train.json").is_file() and not (run / "metrics_train.json").exists()
    code, output = seglab("evaluate", run, "--data", other, "--view", "road")
    assert code == 2 and "view" in output


def test_camvid_and_cityscapes_copies_with_only_a_test_or_val_split_are_recognised(tmp_path):
    from seglab.data import detect_format

    camvid = tmp_path / "camvid"
    (camvid / "test").mkdir(parents=True)
    (camvid / "testannot").mkdir()
    assert detect_format(camvid) == "camvid"
    pairs = tmp_path / "cityscapes"
    (pairs / "val").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(pairs / "val" / "1.jpg")
    assert detect_format(pairs) == "cityscapes-pairs"


def test_the_viewer_data_cannot_end_its_script_element():
    from seglab.data.classes import ClassSpec
    from seglab.report import viewer

    text = json.dumps({"classes": ClassSpec(("<!--<script>", "a&b</script>")).to_json()})
    escaped = viewer.escape_json(text)
    assert "<" not in escaped and ">" not in escaped and "&" not in escaped
    assert json.loads(escaped) == json.loads(text)


def test_a_config_yaml_that_is_not_a_mapping_names_the_file(finished_run):
    (finished_run / "config.yaml").write_text(yaml.safe_dump(["a", "list"]))
    code, output = seglab("evaluate", finished_run)
    assert code == 2 and "config.yaml: expected a mapping" in output


def test_resuming_a_folder_that_is_no_run_creates_nothing(tmp_path):
    code, output = seglab("train", "--resume", tmp_path / "nowhere")
    assert code == 2 and "not a seglab run folder" in output and not (tmp_path / "nowhere").exists()


# --- the second round: surroundings that fail, and files that say more than they should ----------

def test_a_tile_whose_buffers_exceed_the_memory_is_refused_before_allocating(tiny_run, tmp_path):
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "a.png")
    code, output = seglab("predict", tiny_run.path, tmp_path / "a.png", "--tile", "65536", "--out", tmp_path / "out")
    assert code == 2 and "--tile 65536 needs at least" in output and "GiB is free" in output, output
    assert not (tmp_path / "out").exists()


def test_a_model_holding_code_is_refused_as_such_not_called_damaged(finished_run, tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(finished_run / "model.keras")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    code, output = seglab("predict", finished_run, tmp_path / "a.png", "--out", tmp_path / "out")
    text = " ".join(output.split())
    assert code == 2 and "model.keras holds Python code" in text and "safe mode will not run" in text, output
    assert "damaged" not in text and text.rstrip().endswith("without code in the file.")


def test_file_contents_and_names_are_printed_as_they_are(tiny_run, tmp_path):
    """Rich would turn `:x:` into an emoji and `[bold]` into style: what a file holds is shown verbatim."""
    (tmp_path / "[bold]a:x:.png").write_bytes(b"root:x:0:0:root")
    code, output = seglab("predict", tiny_run.path, tmp_path / "[bold]a:x:.png", "--out", tmp_path / "out")
    assert "[bold]a:x:.png" in output and "b'root:x:0'" in output and "\u274c" not in output, output


def test_class_names_are_drawn_as_plain_text_not_parsed_as_math(tmp_path):
    from seglab.commands.evaluation import _plot_confusion
    from seglab.data.classes import ClassSpec

    path = tmp_path / "confusion.png"
    _plot_confusion(np.array([[5, 1], [2, 7]]), ClassSpec(["$x^$", "a_b$"]), path)  # mathtext cannot parse "$x^$"
    assert Image.open(path).size[0] > 0


def test_evaluate_on_a_full_disk_is_one_line_and_keeps_what_is_whole(finished_run):
    """The disk filling up after metrics.json, as the kernel reports a file-size limit (EFBIG):
    one line naming the file that could not be written; metrics.json stays whole."""
    import resource
    import signal
    import subprocess
    import sys

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    process = subprocess.run([sys.executable, "-m", "seglab", "evaluate", str(finished_run)], capture_output=True,
                             text=True, timeout=300, preexec_fn=small_files, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    output = " ".join((process.stdout + process.stderr).split())
    assert process.returncode == 2 and "Traceback" not in output and "internal error" not in output, output
    assert "cannot be written" in output and "Free space" in output and ".png" in output, output
    assert json.loads((finished_run / "metrics.json").read_text())["miou"] >= 0
    assert not [p for p in finished_run.rglob("*") if ".tmp" in p.name]


def test_folders_left_by_killed_exports_are_cleared_and_an_export_moved_aside_is_put_back(tiny_run, tmp_path):
    import subprocess
    import sys

    from seglab.commands.exporting import export

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that no longer exists: its folders are a killed export's
    out = tmp_path / "onnx"
    (tmp_path / f".onnx.tmp-{gone.pid}").mkdir()  # an export killed while it wrote
    export(tiny_run.path, "onnx", out, verify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]
    os.replace(out, tmp_path / f".onnx.old-{gone.pid}")  # killed between moving the old export aside and the new in
    (tmp_path / f".onnx.tmp-{gone.pid}").mkdir()
    export(tiny_run.path, "onnx", out, verify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"] and (out / "model.onnx").is_file()
