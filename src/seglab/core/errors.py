"""seglab's error types: a user's input or surroundings, not a bug, shown as one line that names
the file, what was found and how to fix it.

Every one is a `SeglabError`, and also the built-in type it refines (`BadArgument` is a
ValueError), so Python callers may catch either. The command line shows a SeglabError as one line
and exits with its `exit_code` (1: bad data or a failed run; 2: bad arguments or an unusable
path); anything else that escapes a command is a bug, shown as an internal error with its
traceback kept (`seglab.cli`).
"""
from __future__ import annotations

from dataclasses import dataclass


class SeglabError(Exception):
    """An error in what seglab was given (an option, a file, a folder, the machine), not in seglab."""

    exit_code = 2


class BadArgument(SeglabError, ValueError):
    """An option, a configuration value or a file's content that seglab cannot use."""


class NotFound(SeglabError, FileNotFoundError):
    """A file or folder seglab was pointed at does not exist, or is not what it should be."""


class NotARunFolder(NotFound):
    """A folder given as a run is not one `seglab train` wrote, or has no finished epoch yet."""


class RunExists(SeglabError, FileExistsError):
    """A new run's --out folder already holds files."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file of a dataset."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.file, "message": self.message}


class DataError(SeglabError, ValueError):
    """A single file cannot be used; `problem` says which and why."""

    exit_code = 1

    def __init__(self, file, message: str):
        self.problem = Problem(str(file), message)
        super().__init__(str(self.problem))


class DatasetError(SeglabError, ValueError):
    """A dataset has problems that must be fixed before it is used; `problems` lists them all."""

    exit_code = 1

    def __init__(self, problems: list[Problem], what: str = "The dataset", shown: int = 20):
        self.problems = list(problems)
        lines = [f"{what} has {len(self.problems)} problem(s); fix them (or run `seglab check` for the full report):"]
        lines += [f"  - {p}" for p in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        super().__init__("\n".join(lines))


class WeightsUnavailable(SeglabError, RuntimeError):
    """Pretrained weights could not be downloaded (offline, a proxy, a full disk): the message says how
    to work without the download."""


class OutputError(SeglabError, ValueError):
    """An output path that cannot be written (a file where a folder is wanted, no permission)."""


class RunBusy(SeglabError, RuntimeError):
    """Another process is writing the run folder."""

    exit_code = 1


class TrainingFailed(SeglabError, RuntimeError):
    """Training stopped on a problem (e.g. a NaN loss); the run folder keeps the last good epoch."""

    exit_code = 1


class ParityFailed(SeglabError, RuntimeError):
    """An exported model gives other labels than the Keras model it came from; nothing was kept."""

    exit_code = 1


class WorkerLost(TrainingFailed):
    """A worker of a multi-worker job stopped or became unreachable; the others stopped too."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: `timeout`, Slurm, Kubernetes and systemd all send it before
    SIGKILL, so a run stops as interrupted (its last finished epoch kept) instead of vanishing
    with its state still `running`. The command exits 143 (128 + SIGTERM), as the shell's would."""

    exit_code = 143
