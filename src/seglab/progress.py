"""Progress bars for long work, on stderr so that --json output stays clean."""
from __future__ import annotations

import sys
from typing import Callable, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

_console = Console(stderr=True)


def progress_map(pool, fn: Callable, items: Iterable, description: str) -> list:
    """`pool.map(fn, items)` in order, with a progress bar when stderr is a terminal."""
    items = list(items)
    results = pool.map(fn, items)
    if not sys.stderr.isatty() or len(items) < 50:
        return list(results)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        task = bar.add_task(description, total=len(items))
        out = []
        for r in results:
            out.append(r)
            bar.advance(task)
        return out
