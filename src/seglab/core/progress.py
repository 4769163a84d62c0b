"""Progress bars for long work, on stderr so that --json output stays clean."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True, emoji=False)


def progress_map(pool, fn: Callable, items: Iterable, description: str) -> list:
    """`pool.map(fn, items)` in order, with a progress bar when stderr is a terminal."""
    items = list(items)
    return list(progress(pool.map(fn, items), len(items), description, min_items=50))


def progress(results: Iterable, total: int, description: str, min_items: int = 1, size: Callable = lambda r: 1):
    """Yield from `results`, advancing a bar by `size(result)` of `total` items (on a terminal only)."""
    if not sys.stderr.isatty() or total < min_items:
        yield from results
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for r in results:
            yield r
            bar.advance(task, size(r))


class EpochBar:
    """A one-line progress bar over a run's epochs with its latest validation mIoU (on a terminal
    only), for commands that print no per-epoch log lines. `advance(logs)` after each epoch."""

    def __init__(self, total: int, done: int = 0, description: str = "Training"):
        self._bar = None
        if sys.stderr.isatty():
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       TextColumn("{task.fields[score]}"))
            self._bar = Progress(*columns, console=_console, transient=True)
            self._task = self._bar.add_task(description, total=total, completed=done, score="")
            self._bar.start()

    def advance(self, logs: dict) -> None:
        if self._bar is not None:
            score = f"val mIoU {logs['val_miou']:.3f}" if "val_miou" in logs else ""
            self._bar.update(self._task, advance=1, score=score)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class Stopwatch:
    """Wall-clock seconds per named stage of a loop, for the "where the time goes" line of an
    output file: `with clock("model"): ...`, or `clock.timed(iterable, stage)` for the waits on an
    iterator (work another thread does shows up there as the time the loop waited for it)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - began

    def timed(self, items: Iterable, stage: str):
        items = iter(items)
        while True:
            with self(stage):
                item = next(items, _DONE)
            if item is _DONE:
                return
            yield item

    def summary(self) -> dict:
        """Each stage's seconds, the rest as "other" and the "total" since the clock started."""
        total = time.perf_counter() - self.start
        stages = {stage: round(seconds, 3) for stage, seconds in self.seconds.items()}
        return {**stages, "other": round(max(0.0, total - sum(self.seconds.values())), 3), "total": round(total, 3)}


_DONE = object()


class GrowingBar:
    """A progress bar over work whose amount is learnt as it goes (the tiles of each image, known
    once the image is decoded): `grow(n)` adds to the total, `advance(n)` to what is done.
    On a terminal only."""

    def __init__(self, description: str):
        self._bar, self.total = None, 0
        if sys.stderr.isatty():
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._bar = Progress(*columns, console=_console, transient=True)
            self._task = self._bar.add_task(description, total=0)
            self._bar.start()

    def grow(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.update(self._task, total=self.total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
