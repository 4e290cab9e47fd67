"""The progress bar every long ragkit job shows on stderr: label, bar, done/total, details, time left.

On a terminal it is rich's live bar. When stderr is a file or a pipe (a 40-minute `ragkit eval > log
2>&1`), a live bar would print nothing until the end, so a plain line is printed instead every
`PLAIN_EVERY` seconds and when a task completes.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

PLAIN_EVERY = 30.0  # seconds between plain progress lines


def progress_bar(
    label: str, details: str | None = None, *, enabled: bool = True, transient: bool = False
) -> Progress:
    """`details` is a rich format string over the task's fields, e.g. "loss {task.fields[loss]}"."""
    console = Console(stderr=True)
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn()]
    if details:
        columns.append(TextColumn(details))
    columns.append(TimeRemainingColumn())
    if enabled and not console.is_terminal:
        return PlainProgress(label, *columns, console=console, disable=True)
    return Progress(*columns, console=console, transient=transient, disable=not enabled)


class PlainProgress(Progress):
    """rich's Progress API with no live display: one plain line per task now and then, and at the end."""

    def __init__(self, label: str, *columns, console: Console, disable: bool) -> None:
        super().__init__(*columns, console=console, disable=disable)
        self.label, self.printed_at = label, 0.0
        self.reported_done: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs) -> None:
        """rich's `update`, then a plain line if one is due."""
        super().update(task_id, **kwargs)
        self._report(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """rich's `advance`, then a plain line if one is due."""
        super().advance(task_id, advance)
        self._report(task_id)

    def _report(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        now = time.monotonic()
        if task_id in self.reported_done or (not task.finished and now - self.printed_at < PLAIN_EVERY):
            return
        if task.finished:
            self.reported_done.add(task_id)
        self.printed_at = now
        total = f"/{task.total:.0f}" if task.total else ""
        left = f", {task.time_remaining:.0f} s left" if task.time_remaining and not task.finished else ""
        self.console.print(
            f"{self.label}: {task.completed:.0f}{total}{left}", highlight=False, soft_wrap=True
        )
