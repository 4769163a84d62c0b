"""Errors that name the file, what was found and how to fix it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file of a dataset."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.file, "message": self.message}


class DataError(ValueError):
    """A single file cannot be used; `problem` says which and why."""

    def __init__(self, file, message: str):
        self.problem = Problem(str(file), message)
        super().__init__(str(self.problem))


class DatasetError(ValueError):
    """A dataset has problems that must be fixed before it is used; `problems` lists them all."""

    def __init__(self, problems: list[Problem], what: str = "The dataset", shown: int = 20):
        self.problems = list(problems)
        lines = [f"{what} has {len(self.problems)} problem(s); fix them (or run `seglab check` for the full report):"]
        lines += [f"  - {p}" for p in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        super().__init__("\n".join(lines))


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be downloaded (offline, a proxy, a full disk): the message says how
    to work without the download, and the command line prints it without a traceback."""


class OutputError(ValueError):
    """An output path that cannot be written (a file where a folder is wanted, no permission)."""


class RunBusy(RuntimeError):
    """Another process is writing the run folder."""


class TrainingFailed(RuntimeError):
    """Training stopped on a problem (e.g. a NaN loss); the run folder keeps the last good epoch."""


class ParityFailed(RuntimeError):
    """An exported model gives other labels than the Keras model it came from; nothing was kept."""


class WorkerLost(TrainingFailed):
    """A worker of a multi-worker job stopped or became unreachable; the others stopped too."""
