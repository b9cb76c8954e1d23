"""Helpers shared by the API modules: status lines, input stamps and the cluster."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from upscale.errors import SchedulerUnreachableError
from upscale.progress import console

if TYPE_CHECKING:
    from distributed import Client

TABLE_SUFFIXES = (".csv", ".json", ".geojson")


def print_status(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/dim]", highlight=False)


def input_stamp(*paths: Path) -> str:
    """Fingerprint of input files (names, sizes, modification times) for caches."""
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@contextmanager
def cluster(address: str | None) -> Iterator[Client | None]:
    """Connect to the dask.distributed scheduler at ``address`` for the block, if one is given.

    Inside the block the client is dask's default, so dask computations run on the cluster,
    and it is yielded for tasks submitted to it (train's members, sweep's runs); without an
    address, None, and everything runs here.

    Raises
    ------
    SchedulerUnreachableError
        When no scheduler answers at ``address`` within 10 seconds.
    """
    if address is None:
        yield None
        return
    from distributed import Client  # only runs on a cluster pay for importing it

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise SchedulerUnreachableError(
            f"no dask scheduler answers at {address} ({type(err).__name__}); start one "
            "(dask scheduler) or check the address"
        ) from None
    with client:
        yield client
