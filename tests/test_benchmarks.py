"""The benchmarks in benchmarks/ are not the product, but their figures are quoted in the docs:
each JSON line must say the machine it ran on (a figure differs about 4x between CPUs), and they
must read run folders the way the product writes them now (two of them still read the flat
config.yaml of before the schema's sections, and failed only when someone ran them)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
SPEED_FLAGS_KEYS = {"cpu", "cores", "cpu_flags"}


def _prints_json_dumps(tree: ast.Module) -> list[int]:
    """Line numbers of `print(json.dumps(...))` calls: a JSON line printed without the machine."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
            and any(isinstance(a, ast.Call) and ast.unparse(a.func) == "json.dumps" for a in node.args)]


def test_every_benchmark_prints_its_json_lines_through_emit_which_adds_the_machine():
    bare = {path.name: lines for path in sorted(BENCHMARKS.glob("*.py")) if path.name != "json_line.py"
            if (lines := _prints_json_dumps(ast.parse(path.read_text(), str(path))))}
    assert not bare, f"print JSON lines with json_line.emit (it adds the CPU and its flags): {bare}"


def test_emit_adds_the_machine_and_the_precision(capsys):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from json_line import emit
    finally:
        sys.path.remove(str(BENCHMARKS))
    from seglab.core.machine import describe

    emit({"img_s": 12.5}, "float32")
    emit({"img_s": 3})
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"img_s": 12.5, "precision": "float32", **describe()}
    assert second == {"img_s": 3, **describe()} and SPEED_FLAGS_KEYS <= second.keys()


@pytest.mark.slow
def test_tiles_quality_scores_a_run_folder_of_todays_schema(tiny_run):
    # a real run folder and a real `seglab evaluate`: the script reads the recipe through seglab.runs
    result = subprocess.run([sys.executable, str(BENCHMARKS / "tiles_quality.py"), "--run", str(tiny_run.path),
                             "--ways", "model-size", "tile"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["way"] for row in rows] == ["model-size", "tile"]
    recipe = tiny_run.config.recipe
    for row in rows:
        assert (row["model"], row["size"], row["crop"]) == (recipe.model, recipe.size, recipe.crop)
        assert row["precision"] == "float32" and SPEED_FLAGS_KEYS <= row.keys()
    scored = json.loads(next((tiny_run.path / "tiles-quality-model-size").glob("metrics*.json")).read_text())
    assert rows[0]["miou"] == round(scored["miou"], 4) and rows[1]["tile"] == recipe.size


@pytest.mark.slow
def test_train_time_split_times_the_parts_of_the_epoch_seglab_train_runs(tmp_path):
    # the tiny recipe of the run-folder tests; the script rebuilds its model and datasets through
    # seglab.commands.training, so a change there that the script does not follow fails here
    result = subprocess.run([sys.executable, str(BENCHMARKS / "train_time_split.py"), "--data", "synthetic",
                             "--epochs", "2", "--repeats", "1", "--", "--model", "unet", "--size", "32",
                             "--batch-size", "16", "--option", "filters=4,8", "--precision", "float32", "--previews", "2"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert (line["model"], line["size"], line["batch_size"], line["precision"]) == ("unet", 32, 16, "float32")
    assert SPEED_FLAGS_KEYS <= line.keys()
    for part in ("pipeline_first_epoch_s", "pipeline_epoch_s", "steps_epoch_s", "fit_epoch_s", "validation_s"):
        assert line[part] > 0, part
    # the derived parts are the differences the docstring says, to the rounding of their terms
    assert line["pipeline_wait_s"] == pytest.approx(line["fit_epoch_s"] - line["steps_epoch_s"], abs=0.006)
    assert line["writing_and_callbacks_s"] == pytest.approx(
        line["seglab_epoch_s"] - line["fit_epoch_s"] - line["validation_s"], abs=0.011)


@pytest.mark.slow
def test_bench_writing_times_the_writer_s_parts_and_its_file_against_model_save(tmp_path):
    # a real `seglab train` run with the writer's parts wrapped, then the writer's file against
    # Keras's on its last.keras: a change to the checkpoint's parts that the script does not follow
    # leaves a part out, and a writer whose file is not Keras's fails `same_bytes`
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_writing.py"), "--data", "synthetic", "--epochs", "3",
                             "--rounds", "1", "--", "--model", "unet", "--size", "32", "--batch-size", "16",
                             "--option", "filters=4,8", "--precision", "float32", "--previews", "2"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    thread, model_file = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert (thread["part"], model_file["part"]) == ("writing_thread", "model_file")
    for line in (thread, model_file):
        assert (line["model"], line["size"], line["precision"]) == ("unet", 32, "float32") and SPEED_FLAGS_KEYS <= line.keys()
    parts = ("curves_s", "history_s", "load_snapshot_s", "model_file_s", "mosaic_s", "predict_samples_s", "sample_log_s")
    assert set(parts) <= thread.keys() and thread["total_s"] > 0 and thread["second_epoch_total_s"] > 0
    # the parts run inside the epoch's whole write, on the same thread: together no more than it
    assert sum(thread[p] for p in parts) <= thread["total_s"] + 0.001 * len(parts)
    assert model_file["same_bytes"] and model_file["from_template"] and model_file["rounds"] == 1
    assert model_file["model_save_s"] > 0 and model_file["writer_s"] > 0
