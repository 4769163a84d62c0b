"""The run folder (docs/architecture.md, "The run folder"): where `seglab train` writes and every later verb reads.

Files are written to a temporary name and renamed into place, so a run killed at any moment
leaves each file either as it was or complete. `state.json` says what the folder holds:
`status` is `running`, `interrupted`, `failed` or `complete`, and only a complete run claims
final results. One process writes a run folder at a time: `Run.lock()`.
"""
from __future__ import annotations

import csv
import fcntl
import functools
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from seglab.core.errors import NotARunFolder, OutputError, RunBusy
from seglab.core.files import TMP_MARK, atomic_path, write_text


def link_or_copy(source, target) -> None:
    """A hard link where the file system has them, else a copy (either beats saving twice). A
    link is safe because run files are only ever replaced by a rename, never rewritten in place:
    when the next epoch replaces last.keras, model.keras keeps this epoch's bytes."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def check_output_dir(path, flag: str = "--out") -> Path:
    """Raise OutputError, before anything is written, when `path` cannot become a folder we
    write in: it is a file, it lies under a file, or its nearest existing folder is read-only."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "is a file" if part == path else f"lies under {part}, which is a file"
                raise OutputError(f"{flag} {path} {where}; give a folder.")
            if not os.access(part, os.W_OK | os.X_OK):
                raise OutputError(f"{flag} {path}: cannot write in {part} (permission denied); give a folder you can write to.")
            return path
    return path


def make_output_dir(path, flag: str = "--out") -> Path:
    """`check_output_dir`, then create the folder (and its parents)."""
    path = check_output_dir(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{flag} {path}: cannot create the folder ({e.strerror or e}); give a folder you can write to.") from None
    return path


def sha256(path: Path) -> str:
    """The file's SHA-256, read a megabyte at a time (an export records its model.keras's)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Run:
    """One run folder: its paths (`*_path`), and, once opened (`Run.open`), what it holds: the
    resolved `config`, the `classes` and the models (`load_model`). Every verb that reads a run
    opens it this way; `seglab.inference.open_predictor` gives a run's model behind a Predictor."""

    def __init__(self, path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.classes_path = self.path / "classes.json"
        self.model_path = self.path / "model.keras"
        self.last_path = self.path / "last.keras"
        self.state_path = self.path / "state.json"
        self.history_path = self.path / "history.csv"
        self.curves_path = self.path / "curves.png"
        self.plan_path = self.path / "plan.json"  # seglab train --budget: the fingerprint, machine and timings it planned from
        self.previews_path = self.path / "previews"

    @classmethod
    def open(cls, path) -> "Run":
        """The run folder at `path`, its config.yaml and classes.json read and checked now, so a
        folder that is not a run is refused before any work starts."""
        run = cls(path)
        if not run.path.is_dir():
            raise NotARunFolder(f"{run.path} is not a seglab run folder (it does not exist). Give the --out folder of "
                                "a `seglab train` run.")
        if not run.config_path.is_file():
            raise NotARunFolder(f"{run.path} is not a seglab run folder (no config.yaml). Give the --out folder of "
                                "a `seglab train` run.")
        run.config, run.classes  # noqa: B018  (read both now: a damaged file is named before any work)
        return run

    @functools.cached_property
    def config(self):
        """The resolved TrainConfig that ran (config.yaml)."""
        from seglab.runs.config import TrainConfig

        return TrainConfig.load(self.config_path)

    @functools.cached_property
    def classes(self):
        """The run's ClassSpec (classes.json)."""
        from seglab.data.classes import ClassSpec

        return ClassSpec.load(self.classes_path)

    def exists(self) -> bool:
        return self.state_path.is_file()

    def load_model(self, which: str = "model", compile: bool = True):
        """The run's best model (`which='model'`, model.keras) or its latest (`'last'`)."""
        from seglab.runs.saving import load_model

        path = self.model_path if which == "model" else self.last_path
        if not path.is_file():
            status = self.state.get("status") if self.exists() else "no state.json"
            raise NotARunFolder(f"{path} not found: the run has no finished epoch (state: {status}). "
                                f"Train it, or resume it with `seglab train --resume {self.path}`.")
        return load_model(path, compile=compile)

    @contextmanager
    def lock(self):
        """Hold the run folder's writer lock for the block; a second writer gets RunBusy naming the
        first's PID. An OS file lock (flock): it goes with its process, however that process ends."""
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                pid = f.read().strip() or "?"
                raise RunBusy(f"{self.path} is being written by another seglab process (PID {pid}). Wait for it to "
                              f"finish, or stop it (kill {pid}), then try again.") from None
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            try:
                yield self
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files a killed writer left (`.NAME.tmp.EXT`); returns them."""
        stale = [p for p in self.path.rglob(f".*{TMP_MARK}*") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    @property
    def state(self) -> dict:
        if not self.state_path.is_file():
            raise NotARunFolder(f"{self.path} is not a seglab run folder (no state.json). "
                                    "Give the --out folder of a `seglab train` run.")
        return json.loads(self.state_path.read_text())

    def write_state(self, **state) -> None:
        write_text(self.state_path, json.dumps(state, indent=2) + "\n")

    def history(self) -> list[dict]:
        if not self.history_path.is_file():
            return []
        with self.history_path.open(newline="") as f:
            return [{k: float(v) if k != "epoch" else int(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def write_history(self, rows: list[dict]) -> None:
        if not rows:
            self.history_path.unlink(missing_ok=True)
            return
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with atomic_path(self.history_path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
