"""A rich progress bar with ETA, or a silent stand-in (non-main ranks, --quiet, tests)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    TransferSpeedColumn,
)


class _Silent:
    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def remove_task(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def progress_bar(console: Console, *, enabled: bool = True, transfer: bool = False) -> Iterator[Any]:
    """Yield a rich Progress (description, bar, n/total, elapsed, ETA) or a no-op object.

    ``transfer=True`` counts bytes: "12.3/45.6 MB" and a speed instead of n/total.
    """
    if not enabled:
        yield _Silent()
        return
    counts = (DownloadColumn(), TransferSpeedColumn()) if transfer else (MofNCompleteColumn(),)
    columns = (
        TextColumn("{task.description}"), BarColumn(), *counts,
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        yield bar
