"""The progress bar every long ragkit job shows on stderr: label, bar, done/total, details, time left."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(
    label: str, details: str | None = None, *, enabled: bool = True, transient: bool = False
) -> Progress:
    """`details` is a rich format string over the task's fields, e.g. "loss {task.fields[loss]}"."""
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn()]
    if details:
        columns.append(TextColumn(details))
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), transient=transient, disable=not enabled)
