"""Progress bars on a terminal, silence elsewhere."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """A progress bar over a known total (rows, tasks…), drawn on stderr only when it is a
    terminal and `enabled` is true; otherwise every call is a no-op.

    >>> with Progress("ingest", total=3, unit="tasks", enabled=False) as bar:
    ...     bar.advance(1, rows=10)
    """

    def __init__(
        self, description: str, total: int, unit: str = "tasks", enabled: bool = True
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task = None
        self.rows = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit + " · {task.fields[rows]:,} rows"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total, rows=0)
        return self

    def advance(self, steps: int = 1, rows: int = 0) -> None:
        self.rows += rows
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, rows=self.rows)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
