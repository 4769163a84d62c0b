"""An Optuna study that several `seglab tune` processes share: its storage, and how a worker
that died (kill -9, a lost machine) is noticed and its trial handed to the others.

Every worker marks its running trial alive (`user_attrs["alive"]`, wall-clock seconds) every
HEARTBEAT seconds from a thread, and names itself (host and process id). Before each trial a
worker fails the running trials of the others that are dead, a process of this host that no
longer exists or a trial not marked alive for STALE seconds, and queues each one's recipe again
(once). This works on every storage Optuna has (SQLite, PostgreSQL, MySQL, a journal file), where
Optuna's own heartbeat is for relational databases only.
"""
from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from pathlib import Path

from seglab.core.errors import BadArgument

HEARTBEAT = float(os.environ.get("SEGLAB_TUNE_HEARTBEAT", "20"))  # seconds between a worker's signs of life
STALE = 6 * HEARTBEAT  # a trial not marked alive this long is taken for dead (a worker on another machine)
HOST = socket.gethostname()
# the package that installs each database driver SQLAlchemy imports (postgresql:// means psycopg 3)
DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql", "MySQLdb": "mysqlclient"}


def optuna():
    """The optuna module, or a one-line error naming the extra that installs it."""
    try:
        import optuna as module
    except ImportError:
        raise BadArgument("seglab tune needs Optuna: pip install 'seglab[tune]'.") from None
    module.logging.set_verbosity(module.logging.WARNING)  # seglab prints each trial in its own words
    return module


def storage_url(storage: str | None, out: Path) -> str:
    """What --storage names, written out: default SQLite in the study folder."""
    if storage is None:
        return f"sqlite:///{(Path(out) / 'study.db').resolve()}"
    return storage


def open_storage(url: str):
    """An Optuna storage: an RDB URL (sqlite:///, postgresql://, mysql+pymysql://) or a journal
    file (`journal:PATH`, or a path ending in .log or .jsonl), for file systems several machines
    share where SQLite's locks do not hold (NFS)."""
    opt = optuna()
    journal = url.removeprefix("journal:") if url.startswith("journal:") or url.endswith((".log", ".jsonl")) else None
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend

        Path(journal).parent.mkdir(parents=True, exist_ok=True)
        return opt.storages.JournalStorage(JournalFileBackend(journal))
    if "://" not in url:
        raise BadArgument(f"--storage {url}: give a database URL (sqlite:///study.db, postgresql://user@host/db, "
                          "mysql+pymysql://user@host/db) or a journal file (journal:study.log).")
    kwargs = {}
    if url.startswith("sqlite"):
        # workers on one machine wait for each other's writes instead of failing on "database is locked"
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        Path(url.split(":///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            return opt.storages.RDBStorage(url, **kwargs)
        except Exception as e:  # noqa: BLE001
            # workers starting together on a new database: another one created the tables first
            if "already exists" not in str(e):
                raise
            time.sleep(1.0)
            return opt.storages.RDBStorage(url, **kwargs)
    except ImportError as e:
        module = getattr(e.__cause__, "name", None) or e.name or "?"  # Optuna wraps SQLAlchemy's ImportError
        package = DRIVERS.get(module, module)
        raise BadArgument(f"--storage {shown_url(url)}: its database driver is missing ({module}): pip install "
                          f"'{package}'.") from None
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's errors for a server that is down, a bad URL, no rights)
        if type(e).__module__.startswith("sqlalchemy"):
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise BadArgument(f"--storage {shown_url(url)}: cannot open the database: {reason}") from None
        raise


def shown_url(url: str) -> str:
    """A storage URL as printed and written: without its password."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, user = head.partition("//")
    return f"{scheme}//{user.split(':')[0]}:***@{tail}"


class Liveness:
    """While a trial runs: marks it alive every HEARTBEAT seconds, from a thread."""

    def __init__(self, trial):
        self.trial = trial
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="seglab-tune-alive", daemon=True)

    def __enter__(self):
        self.trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid()})
        self.trial.set_user_attr("alive", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT):
            try:
                self.trial.set_user_attr("alive", time.time())
            except Exception:  # noqa: BLE001  (the trial ended meanwhile, or the database blinked: try again next beat)
                pass


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not waited for yet: a zombie, dead all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def dead_reason(trial, now: float | None = None) -> str | None:
    """Why a RUNNING trial's worker is taken for dead, or None while it is alive."""
    worker = trial.user_attrs.get("worker") or {}
    if worker.get("host") == HOST and worker.get("pid") and worker["pid"] != os.getpid() and _process_gone(worker["pid"]):
        return f"its worker, process {worker['pid']} on this host, no longer exists"
    alive = trial.user_attrs.get("alive")
    if alive is None and trial.datetime_start is not None:
        alive = trial.datetime_start.timestamp()
    quiet = (now or time.time()) - alive if alive is not None else 0
    if quiet > STALE:
        where = f"{worker.get('host', '?')}:{worker.get('pid', '?')}"
        return f"its worker ({where}) has not marked it alive for {quiet:.0f} s"
    return None


def reap(study, say) -> list[int]:
    """Fail the running trials whose workers are dead and queue each one's recipe again, once;
    the trial numbers failed. Several workers may try at once: one wins each trial."""
    opt = optuna()
    State = opt.trial.TrialState
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        why = dead_reason(trial)
        if why is None:
            continue
        try:
            study.tell(trial.number, state=State.FAIL)
        except (ValueError, RuntimeError, opt.exceptions.UpdateFinishedTrialError):
            continue  # another worker failed it first
        failed.append(trial.number)
        retries = int(trial.user_attrs.get("retries", 0))
        if retries < 1:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "retries": retries + 1,
                                                          "origin": trial.user_attrs.get("origin", "search")})
            say(f"Trial {trial.number} failed: {why}. Its recipe is queued again.")
        else:
            say(f"Trial {trial.number} failed: {why}. It was a retry already; its recipe is not queued again.")
    return failed


def finished(study) -> list:
    State = optuna().trial.TrialState
    return study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED))


def running(study) -> list:
    return study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,))


def typical_seconds(study) -> float | None:
    """The median time of the study's trials that ran to their end (not pruned, not cut by a
    budget): what the next one is expected to take."""
    State = optuna().trial.TrialState
    took = [t.user_attrs["seconds"] for t in study.get_trials(deepcopy=False, states=(State.COMPLETE,))
            if "seconds" in t.user_attrs and not t.user_attrs.get("budget_stop")]
    return statistics.median(took) if took else None
