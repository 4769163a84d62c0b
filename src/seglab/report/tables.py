"""Tables on the terminal, or in a pipe, without ever cutting a value.

On a terminal, Rich draws the table: number columns keep their full width and text columns wrap.
Anywhere else (a pipe, a file, a CI log) the table is plain text, padded to the widest value of
each column, however wide that makes it: a reader or a script must never see `14,793,0…`.
"""
from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_table(console: Console, columns: list[str], rows: list[list], numeric: set[str] = frozenset(),
                title: str | None = None) -> None:
    """`rows` of cells (str or rich Text) under `columns`; columns named in `numeric` align right."""
    if not console.is_terminal:
        _plain(console, columns, rows, numeric, title)
        return
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    for column in columns:
        widest = max([len(column)] + [len(_text(row[columns.index(column)])) for row in rows])
        if column in numeric:  # a number is never folded or cut: its column is as wide as its widest cell
            table.add_column(column, justify="right", no_wrap=True, min_width=widest)
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _plain(console: Console, columns, rows, numeric, title) -> None:
    cells = [[_text(c) for c in row] for row in rows]
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]

    def line(values):
        padded = [v.rjust(w) if c in numeric else v.ljust(w) for v, w, c in zip(values, widths, columns)]
        return "  ".join(padded).rstrip()

    if title:
        print(title, file=console.file, flush=True)
    for values in [columns, *cells]:
        print(line(values), file=console.file, flush=True)  # print(): no width limit, no markup


def _text(cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)
