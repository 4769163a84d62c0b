"""The configuration is declared once (seglab.runs.config): config.yaml's checks, the `seglab train`
options and docs/training.md's table all come from the declarations, and runs written before a
key or a section existed still load."""
from __future__ import annotations

import dataclasses

import pytest
import typer
import yaml
from conftest import ROOT

from seglab.cli import app
from seglab.core.schema import options_of
from seglab.data.augment import Augment
from seglab.runs.config import SECTIONS, TrainConfig, cli_flag, options_table

# A config.yaml as seglab wrote it before the sections (every key at the top, augment a bool),
# from a run made before crop, scale, distribute, replicas and split_seed existed.
FLAT = """\
data: /data/pets
format: null
view: null
classes: null
val_fraction: 0.2
model: unet
model_options: {filters: [8, 16], batch_norm: true}
size: 64
batch_size: 8
epochs: 3
optimizer: adam
learning_rate: 0.003
schedule: cosine
loss: ce+dice
class_weights: null
augment: false
weights: null
fine_tune: null
precision: float32
cache: true
previews: 8
wandb: false
wandb_project: null
tensorboard: false
seed: 4
"""


def train_options() -> dict:
    command = typer.main.get_command(app).commands["train"]
    return {opt: param for param in command.params for opt in param.opts}


def test_a_config_round_trips_through_yaml(tmp_path):
    config = TrainConfig.of(path="/data/x", model="unet", size=64, class_weights=(1, 2.5), classes=["a", "b"],
                            model_options={"filters": (8, 16)}, augment={"vflip": 0.5, "zoom": (1, 2)}, seed=3)
    config.save(tmp_path / "config.yaml")
    assert TrainConfig.load(tmp_path / "config.yaml") == config
    assert config.recipe.augment == Augment(vflip=0.5, zoom=(1.0, 2.0))
    assert config.get("seed") == 3 and config.split_seed == 3


def test_a_run_written_before_the_sections_still_loads(tmp_path):
    (tmp_path / "config.yaml").write_text(FLAT)
    config = TrainConfig.load(tmp_path / "config.yaml")
    assert config.data.path == "/data/pets" and config.recipe.model_options == {"filters": (8, 16), "batch_norm": True}
    assert config.recipe.augment == Augment.off()  # augment: false
    # keys added later take the value that reproduces what such a run did
    assert (config.recipe.crop, config.recipe.scale, config.setup.distribute, config.data.split_seed) == (None, 1.0, "auto", None)
    assert config.split_seed == 4
    flat = yaml.safe_load(FLAT) | {"augment": True}
    assert TrainConfig.from_dict(flat, complete=True).recipe.augment == Augment()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["recipe"].update(size="big"), "recipe.size must be a whole number of at least 1 (or null); got 'big'"),
    (lambda d: d["recipe"]["augment"].update(flip=3), "recipe.augment.flip must be a number from 0 to 1; got 3"),
    (lambda d: d["setup"].update(precision="fp8"), "Unknown setup.precision 'fp8'. Use one of: auto, float32"),
    (lambda d: d["recipe"].update(colour=1), "unknown key(s) recipe.colour. Known here: model, model_options"),
    (lambda d: d.pop("setup"), "missing section(s) setup"),
    (lambda d: d["recipe"]["augment"].pop("zoom"), "missing key recipe.augment.zoom"),
])
def test_config_yaml_is_checked_against_the_declarations(tmp_path, edit, message):
    data = TrainConfig.of(model="unet", size=64).to_dict()
    edit(data)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"config\.yaml: ") as error:
        TrainConfig.load(tmp_path / "config.yaml")
    assert message in str(error.value)


def test_python_values_are_checked_like_file_values():
    with pytest.raises(ValueError, match="Unknown schedule 'linear'. Use one of: cosine, plateau, constant"):
        TrainConfig.of(schedule="linear")
    with pytest.raises(ValueError, match="Unknown configuration field 'colour'"):
        TrainConfig.of(colour=1)


def test_every_train_option_comes_from_the_declarations():
    options = train_options()
    declared = [(name, opt, kind, field) for kind in [*SECTIONS.values(), Augment]
                for (name, opt), field in zip(options_of(kind).items(), dataclasses.fields(kind)) if opt.kind != "section"]
    for name, opt, kind, field in declared:
        flag = cli_flag(name, opt, augment=kind is Augment)
        if flag is None:  # set by training (replicas) or given another way (the dataset argument, --option)
            continue
        flag = flag.split("/")[0]  # an on/off pair, --jit/--no-jit, is known by its first flag
        assert flag in options, f"{flag} (config field {name}) is not a `seglab train` option"
        param = options[flag]
        assert param.help.startswith(opt.help), f"{flag}: help text differs from the declaration"
        if kind is not Augment and name not in ("classes", "class_weights"):  # those parse text on the command line
            assert param.default == field.default, f"{flag}: default {param.default!r} != declared {field.default!r}"


def test_the_docs_option_table_is_the_declarations():
    page = (ROOT / "docs" / "training.md").read_text()
    assert options_table() in page, "docs/training.md's option table is out of date: paste seglab.runs.config.options_table()"
