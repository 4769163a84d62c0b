"""`seglab tune`: the search space, pruning, a study several workers share through one database,
a worker killed with SIGKILL, and the best recipe trained again from best.yaml."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import seglab_cli

from seglab.callbacks.pruning import steps_passed
from seglab.commands import study as studies
from seglab.commands.search_space import (
    SearchSpace,
    default_space,
    load_space,
    parse_space,
)
from seglab.core.errors import BadArgument

PLAN = {"model": "deeplabv3plus", "model_options": {"encoder": "mobilenet_v2"}, "weights": "imagenet", "size": 224,
        "batch_size": 16, "epochs": 20, "learning_rate": 7e-4, "schedule": "cosine", "optimizer": "adam",
        "loss": "ce+dice", "class_weights": None,
        "augment": {"flip": 0.5, "vflip": 0.0, "zoom": (0.75, 1.5), "brightness": 0.1, "contrast": 0.2}}


def planned_space(**changes):
    return default_space({**PLAN, **changes}, {"augment": "horizontal flips on; x"}, num_classes=3,
                         sizes=(128, 160, 192, 224, 256, 288, 320), native=400, sqrt_weights=(0.4, 1.1, 1.5),
                         train_pairs=3000)


def test_the_default_space_holds_the_plan_so_the_plan_can_be_trial_0():
    space = planned_space()
    params = space.params_of(PLAN)
    assert set(params) == {d.name for d in space.searched()}  # every searched value of the plan is inside
    recipe = space.recipe(params)
    for key in ("model", "size", "batch_size", "learning_rate", "loss", "class_weights"):
        assert recipe[key] == PLAN[key], key
    assert recipe["model_options"] == {"encoder": "mobilenet_v2"}
    assert recipe["augment"] == {**PLAN["augment"]}
    assert "epochs" not in recipe  # auto: each trial's planner fits them to its time
    # the space as a file reads back as the same space
    assert parse_space(yaml.safe_load(space.to_yaml()), SearchSpace()).to_yaml().split("#")[0] == space.to_yaml().split("#")[0]


def test_a_drawn_trial_becomes_a_recipe_training_takes():
    space = planned_space(class_weights=(0.4, 1.1, 1.5))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    recipe = space.recipe(space.sample(trial))
    from seglab.runs.config import TrainConfig

    config = TrainConfig().replace(**recipe)  # checked as config.yaml is
    assert config.recipe.model in ("deeplabv3plus", "unet")
    assert config.recipe.class_weights in (None, (0.4, 1.1, 1.5))
    assert 7e-4 / 3 * 0.99 <= config.recipe.learning_rate <= 7e-4 * 3 * 1.01
    assert tuple(config.recipe.augment.zoom) in ((0.75, 1.5), (0.85, 1.25), (0.7, 1.6))


def test_a_space_file_narrows_widens_and_is_checked_key_by_key(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("size: [256, 320]\nlearning_rate: {low: 0.0001, high: 0.01, log: true}\nbatch_size: 8\n"
                    "augment:\n  zoom: [[0.9, 1.1], [0.5, 2.0]]\n  contrast: null\n")
    space = load_space(path, planned_space())
    assert space.dimensions["size"].choices == (256, 320)
    assert (space.dimensions["learning_rate"].low, space.dimensions["learning_rate"].high) == (0.0001, 0.01)
    assert space.dimensions["batch_size"].kind == "fixed"
    assert space.dimensions["augment.contrast"].kind == "fixed" and space.dimensions["augment.contrast"].value == 0.2
    assert space.dimensions["augment.zoom"].choices == ((0.9, 1.1), (0.5, 2.0))
    assert space.dimensions["loss"].choices == ("ce+dice", "ce", "focal")  # not in the file: the default's
    # before any plan exists, what the first trial's plan must keep: the fixed values, not the nulls
    assert load_space(path, SearchSpace()).fixed_recipe() == {"batch_size": 8}
    bad = {"lr: [0.1]": "unknown key", "size: {low: 300, high: 100}": "low <= high",
           "model: [deeplabv3plus, segnet]": "unknown model 'segnet'",
           "model: [unet/mobilenet_v2, deeplabv3plus/mobilenet_v9]": "Unknown encoder 'mobilenet_v9'",
           "model: [deeplabv3plus/scratch]": "unet's own encoder, for unet only",
           "model: [fcn8s/resnet50]": "fcn8s takes no encoder", "loss: [ce, hinge]": "hinge",
           "learning_rate: {low: 0, high: 1, log: true}": "log range needs low > 0", "size: []": "empty list",
           "augment: [flip]": "augment holds a mapping", "- 1": "a mapping of recipe fields"}
    for text, message in bad.items():
        path.write_text(text + "\n")
        with pytest.raises(BadArgument, match=message) as caught:
            load_space(path, planned_space())
        assert str(path) in str(caught.value)
    with pytest.raises(BadArgument, match="no such file"):
        load_space(tmp_path / "missing.yaml", planned_space())


def test_trials_report_at_the_same_shares_of_their_schedules():
    assert [s for e in range(4) for s in steps_passed(e, 4)] == list(range(10, 101, 10))
    assert steps_passed(0, 2) == [10, 20, 30, 40, 50] and steps_passed(1, 2) == [60, 70, 80, 90, 100]
    assert steps_passed(0, 30) == [] and steps_passed(2, 30) == [10]


def test_a_worker_that_no_longer_exists_is_taken_for_dead_at_once_and_a_quiet_one_after_the_grace():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("worker", {"host": studies.HOST, "pid": gone.pid})
    trial.set_user_attr("alive", time.time())
    frozen = study.get_trials()[0]
    assert "no longer exists" in studies.dead_reason(frozen)
    trial.set_user_attr("worker", {"host": "elsewhere", "pid": 1})
    frozen = study.get_trials()[0]
    assert studies.dead_reason(frozen) is None
    assert "has not marked it alive" in studies.dead_reason(frozen, now=time.time() + studies.STALE + 1)
    said = []
    assert studies.reap(study, said.append) == [] and not said


def test_storages_that_cannot_be_used_are_one_line_errors(tmp_path):
    with pytest.raises(BadArgument, match="give a database URL"):
        studies.open_storage("mydb")
    with pytest.raises(BadArgument, match="cannot open the database") as caught:
        studies.open_storage("postgresql://seglab:secret@127.0.0.1:1/none")
    assert "secret" not in str(caught.value)  # the password is not printed
    journal = studies.open_storage(f"journal:{tmp_path / 'j' / 'study.log'}")
    assert type(journal).__name__ == "JournalStorage"


def test_trials_failing_one_after_another_stop_the_worker_with_the_reason(tmp_path):
    from seglab.commands import tuning
    from seglab.core.errors import TrainingFailed
    from seglab.runs.config import TrainConfig

    study = optuna.create_study(direction="maximize")
    space = parse_space({"model": "unet", "size": 64, "epochs": 1}, SearchSpace())
    base = TrainConfig().replace(path=str(tmp_path / "no-such-dataset"))  # every trial fails as it opens the data
    with pytest.raises(TrainingFailed, match="3 trials in a row failed here; the last, trial 2: .*no-such-dataset"):
        tuning._search(study, space, base, tmp_path / "study", deadline=time.monotonic() + 600, trials=10,
                       trial_time=60, verbose=0)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL] * 3
    assert "no-such-dataset" in study.trials[0].user_attrs["error"]


def test_without_optuna_tune_says_which_extra_installs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(BadArgument, match=r"pip install 'seglab\[tune\]'"):
        studies.optuna()


# --- studies that train ---------------------------------------------------------------------------

SPACE = """model: unet
model_options: {filters: [8, 16, 32]}
size: 64
batch_size: 8
epochs: %d
learning_rate: [0.0000001, 0.003]
augment: {zoom: [1.0, 1.0]}
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune") / "shapes"
    assert seglab_cli("synthetic", root, "--count", "40", "--size", "64").returncode == 0
    return root


def tune_args(data, out, space, *extra):
    # random draws from seed 0 (the first worker's): the plan, then both learning rates, several of
    # them 1e-7, which learns nothing and falls far below the median: pruning is certain
    return ["tune", str(data), "--budget", "10m", "--space", str(space),
            "--out", str(out), "--sampler", "random", "--weights", "none", *extra]


def environment(**extra):
    return {**os.environ, "SEGLAB_TUNE_HEARTBEAT": "1", **extra}


def load(out, storage=None):
    return optuna.load_study(study_name="seglab-shapes", storage=storage or f"sqlite:///{out / 'study.db'}")


@pytest.mark.long
@pytest.mark.slow
def test_a_study_prunes_reports_and_its_best_recipe_trains_again(shapes, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE % 2)
    out = tmp_path / "study"
    # in-process, as the two-worker test cannot be: the trials are the same in-process code either way
    done = seglab_cli(*tune_args(shapes, out, space, "--trials", "4"))
    assert done.returncode == 0, done.stderr[-3000:]
    study = load(out)
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 4 and all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states)
    assert trials[0].user_attrs["origin"] == "plan"
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [(t.number, t.params, t.intermediate_values) for t in trials]
    for t in trials:  # every trial an ordinary run folder
        state = json.loads((out / "trials" / f"{t.number:04d}" / "state.json").read_text())
        assert state["status"] == "complete" and (out / "trials" / f"{t.number:04d}" / "model.keras").is_file()
        if t in pruned:
            assert state["stopped"].startswith("pruned after epoch 1 of 2") and state["epochs_done"] == 1
        else:
            assert t.value == pytest.approx(state["best_val_miou"]) and state["epochs_done"] == 2
    page = (out / "tune.html").read_text()
    for section in ("Best trial", "Optimisation history", "Parameter importances", "Trials", "Search space"):
        assert f"<h2>{section}</h2>" in page
    assert "http" not in page.replace("http-equiv", "")  # offline: nothing linked outside the file
    best = max((t for t in trials if t.value is not None and t.state == optuna.trial.TrialState.COMPLETE),
               key=lambda t: t.value)
    assert f"Best: trial {best.number}, val mIoU {best.value:.4f}" in done.stdout
    assert "seglab train " in done.stdout and "--option filters=8,16,32" in done.stdout

    # rerunning the command continues the study: it has its trials, so none starts
    again = seglab_cli(*tune_args(shapes, out, space, "--trials", "4"))
    assert again.returncode == 0 and "the study has its 4 trials" in again.stdout
    assert "Trial 4" not in again.stderr and len(load(out).get_trials()) == 4

    # best.yaml trains the same recipe again, to the same score
    rerun = tmp_path / "again"
    trained = seglab_cli("train", "--config", out / "best.yaml", "--out", rerun)
    assert trained.returncode == 0, trained.stderr[-3000:]
    ran = yaml.safe_load((rerun / "config.yaml").read_text())
    original = yaml.safe_load((out / "trials" / f"{best.number:04d}" / "config.yaml").read_text())
    assert ran["recipe"] == original["recipe"] and ran["data"] == original["data"]
    assert json.loads((rerun / "state.json").read_text())["best_val_miou"] == pytest.approx(best.value, abs=1e-6)

    report = seglab_cli("tune", "--report", out)
    assert report.returncode == 0 and f"Best: trial {best.number}" in report.stdout


@pytest.mark.long
@pytest.mark.slow
def test_two_workers_share_a_study_and_a_worker_killed_mid_trial_is_taken_over(shapes, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE % 2)
    out = tmp_path / "study"
    # four trials are enough: each worker's first, the first worker's second (killed in its
    # training) and that recipe again, which the survivor runs as its own second or third
    command = [sys.executable, "-m", "seglab", *tune_args(shapes, out, space, "--trials", "4")]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=logs[0].open("w"), env=environment())
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=logs[1].open("w"), env=environment(), text=True)
    try:
        deadline = time.monotonic() + 300
        while not _finished_one_and_running_another(out, first.pid):
            assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
            assert first.poll() is None and second.poll() is None, logs[1].read_text()[-3000:]
            time.sleep(0.3)
        time.sleep(1.5)  # into its training
        first.send_signal(signal.SIGKILL)
        first.wait()
        output, _ = second.communicate(timeout=600)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    assert second.returncode == 0, logs[1].read_text()[-3000:]
    study = load(out)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(finished) == 4, [(t.number, t.state) for t in trials]  # the count, together, without one too many
    assert len({t.number for t in finished}) == 4
    assert len({t.user_attrs["worker"]["pid"] for t in finished}) == 2  # both workers ran trials
    assert len(failed) == 1 and failed[0].user_attrs["worker"]["pid"] == first.pid  # the killed worker's trial
    retry = [t for t in finished if t.user_attrs.get("retry_of") == failed[0].number]
    assert len(retry) == 1 and retry[0].params == failed[0].params  # its recipe, run by the survivor
    assert "no longer exists. Its recipe is queued again" in logs[1].read_text()
    assert "the study has its 4 trials" in output


def _finished_one_and_running_another(out, pid) -> bool:
    """Whether worker `pid` has finished a trial and is running another."""
    if not (out / "study.db").is_file():
        return False
    try:
        trials = load(out).get_trials()
    except Exception:  # noqa: BLE001  (the study is being created)
        return False
    mine = [t for t in trials if (t.user_attrs.get("worker") or {}).get("pid") == pid]
    return (any(t.state.is_finished() for t in mine)
            and any(t.state == optuna.trial.TrialState.RUNNING for t in mine))


def _postgres_binaries() -> Path | None:
    for candidate in [shutil.which("pg_ctl"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))]:
        if candidate and Path(candidate).is_file():
            return Path(candidate).parent
    return None


@pytest.fixture
def postgres():
    """A PostgreSQL server of this machine's own (Debian's package), started for the test in a
    temporary folder on a free port, as the postgres user where the test runs as root (the
    server refuses root); skipped where there is none."""
    pytest.importorskip("psycopg", reason="psycopg (seglab[tune]) is needed to reach PostgreSQL")
    bin_dir = _postgres_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) not found: apt-get install postgresql")
    root = os.geteuid() == 0
    if root:
        try:
            import pwd

            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to start PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="seglab-pg-"))
    if root:
        os.chown(folder, user.pw_uid, user.pw_gid)
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, OSError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not be started here: {getattr(e, 'stderr', b'') or e}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_study_on_postgresql(shapes, tmp_path, postgres):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE % 1)
    out = tmp_path / "study"
    done = seglab_cli(*tune_args(shapes, out, space, "--trials", "2", "--storage", postgres))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load(out, postgres).get_trials()
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert not (out / "study.db").exists()
    assert "postgresql://postgres@127.0.0.1" in (out / "tune.html").read_text()
