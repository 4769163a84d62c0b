"""The run folder (see DESIGN.md): where `seglab train` writes and every later verb reads.

Files are written to a temporary name and renamed into place, so a run killed at any moment
leaves each file either as it was or complete. `state.json` says what the folder holds:
`status` is `running`, `interrupted`, `failed` or `complete`, and only a complete run claims
final results.
"""
from __future__ import annotations

import csv
import json
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path` (same suffix, for writers that check it); rename it to
    `path` when the block succeeds."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
