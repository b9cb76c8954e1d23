"""Test helpers."""

from __future__ import annotations

from contextlib import contextmanager

import dask


class _CountingScheduler:
    """A dask scheduler that counts computes and fails past a limit (after flox's helper)."""

    def __init__(self, max_computes: int) -> None:
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"dask computed {self.total} times; at most {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


@contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail when the graph is computed more than ``max_computes`` times inside the block."""
    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
