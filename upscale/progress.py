"""Progress of long steps: the two kinds of callback, and a rich bar driven by dask.

A long step tells its caller what it is doing through one of two callbacks: a
[`Status`][upscale.progress.Status] receives lines (``member 2/5 (without US-Skr)``), an
[`Advance`][upscale.progress.Advance] receives counts (rows written of rows in all). The CLI
prints the first and draws a bar for the second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dask.callbacks import Callback
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

Status = Callable[[str], None]
"""Receives status lines of a long step, e.g. ``print``."""

Advance = Callable[[int, int], None]
"""Receives (done, in all) as a long step advances, e.g. a progress bar's update."""

console = Console(stderr=True)
"""Console for progress and status lines; results go to stdout."""


def new_progress() -> Progress:
    """Return a progress display with a description, a bar, a percentage and the time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


class _DaskBar(Callback):
    """Advance a rich task as dask finishes the tasks of a graph."""

    def __init__(self, progress: Progress, task) -> None:
        super().__init__()
        self._progress, self._task = progress, task

    def _start_state(self, dsk, state) -> None:
        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self._progress.update(self._task, total=total, completed=len(state["finished"]))

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        self._progress.update(self._task, completed=len(state["finished"]))


@contextmanager
def dask_progress(description: str) -> Iterator[None]:
    """Show a progress bar for the dask computations run inside the block."""
    with new_progress() as progress:
        task = progress.add_task(description, total=None)
        with _DaskBar(progress, task):
            yield
        progress.update(
            task, completed=progress.tasks[0].total or 1, total=progress.tasks[0].total or 1
        )
