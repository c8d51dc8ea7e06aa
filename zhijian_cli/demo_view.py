"""How the demo shows itself: tables on a terminal, plain lines elsewhere, and warnings in a log file.

On a terminal the demo redraws one live view; anything else written to the terminal meanwhile (a log
line from a library, a reconnecting client) would land over it and leave stale frames above the table,
so while the demo runs the root logger writes to a file in the demo's data folder instead, and the demo
says afterwards how many warnings it holds. Without a terminal (a pipe, a CI log, ``| tee``) a table
would be cut to 80 columns and wrap; there every table is printed as plain lines, cells joined by
:data:`SEP`, whole (not tabs: Rich expands them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

SEP = " | "


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextmanager
def logs_to_file(path: Path, console: Console) -> Iterator[_Count]:
    """Every log line goes to ``path`` (not to the terminal) until the block ends; then ``console`` is told
    how many warnings and errors the file holds, if any."""
    root = logging.getLogger()
    saved = root.handlers[:]
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    count = _Count()
    root.handlers = [to_file, count]
    try:
        yield count
    finally:
        root.handlers = saved
        to_file.close()
        if count.count:
            many = "warnings were" if count.count > 1 else "warning was"
            console.print(f"{count.count} {many} logged during the run: see {path}", highlight=False, soft_wrap=True)


def show_table(
    console: Console,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    caption: str | None = None,
    right: Sequence[str] = (),
) -> None:
    """A table on a terminal; elsewhere its title, header and rows as plain lines, never cut."""
    if not console.is_terminal:
        lines = [title, SEP.join(columns), *(SEP.join(r) for r in rows)]
        if caption:
            lines.append(caption)
        for line in lines:
            console.out(line, highlight=False)
        return
    table = Table(title=title, caption=caption)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    for r in rows:
        table.add_row(*r)
    console.print(table)
