"""One writer per output: an advisory lock held while a store, folder or file is written.

Two runs writing the same output would interleave their chunks; the second is refused with
a message naming the first. The lock is ``flock`` on a hidden file beside the output, so
the operating system releases it when its process ends, even killed with ``kill -9``: a
crashed run never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from upscale.errors import OutputLockedError


def lock_path(output: str | Path) -> Path:
    """Return the lock file of an output: ``.<name>.lock`` in the same folder."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


@contextmanager
def output_lock(output: str | Path) -> Iterator[None]:
    """Hold the lock of ``output`` for the block, or refuse at once if another run holds it.

    Raises
    ------
    OutputLockedError
        When another process (or another open of the lock in this one) is writing the
        output.
    """
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 (held open for the block: the lock lives on it)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another run"
            raise OutputLockedError(
                f"{output} is being written by {holder}; wait for it to finish, or write "
                "to another path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"upscale pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock
