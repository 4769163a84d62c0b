"""The run folder (see DESIGN.md): where `seglab train` writes and every later verb reads.

Files are written to a temporary name and renamed into place, so a run killed at any moment
leaves each file either as it was or complete. `state.json` says what the folder holds:
`status` is `running`, `interrupted`, `failed` or `complete`, and only a complete run claims
final results. One process writes a run folder at a time: `Run.lock()`.
"""
from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from seglab.errors import OutputError, RunBusy

TMP_MARK = ".tmp"  # in every temporary name, so a resume can sweep what a kill left behind


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path` (same suffix, for writers that check it); rename it to
    `path` when the block succeeds."""
    tmp = path.with_name(f".{path.stem}{TMP_MARK}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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


class Run:
    """Paths and small state of one run folder."""

    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.classes = self.path / "classes.json"
        self.model = self.path / "model.keras"
        self.last = self.path / "last.keras"
        self.state_file = self.path / "state.json"
        self.history_file = self.path / "history.csv"
        self.curves = self.path / "curves.png"
        self.previews = self.path / "previews"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def load_model(self, which: str = "model", compile: bool = True):
        """The run's best model (`which='model'`, model.keras) or its latest (`'last'`)."""
        from seglab.saving import load_model

        path = self.model if which == "model" else self.last
        if not path.is_file():
            status = self.state.get("status") if self.exists() else "no state.json"
            raise FileNotFoundError(f"{path} not found: the run has no finished epoch (state: {status}). "
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
        if not self.state_file.is_file():
            raise FileNotFoundError(f"{self.path} is not a seglab run folder (no state.json). "
                                    "Give the --out folder of a `seglab train` run.")
        return json.loads(self.state_file.read_text())

    def write_state(self, **state) -> None:
        write_text(self.state_file, json.dumps(state, indent=2) + "\n")

    def history(self) -> list[dict]:
        if not self.history_file.is_file():
            return []
        with self.history_file.open(newline="") as f:
            return [{k: float(v) if k != "epoch" else int(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def write_history(self, rows: list[dict]) -> None:
        if not rows:
            self.history_file.unlink(missing_ok=True)
            return
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with atomic_path(self.history_file) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
