"""One run at a time per output: an advisory lock held while a store or folder is written.

Two runs writing the same output would interleave their chunks; the second is refused with
a message naming the first. The lock is ``flock`` on a hidden file beside the output, so
the operating system releases it when its process ends, even killed with ``kill -9``: a
crashed run never blocks the next one (its lock file stays, unheld). A run removes its lock
file when it finishes. Within a process the lock is re-entrant, so a command can hold it
from its start while the functions it calls take it again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from upscale.errors import OutputLockedError, OutputWriteError

_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_DESTINATION_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_held: Counter[Path] = Counter()  # locks this process holds, by lock file
_registry = threading.Lock()


def lock_path(output: str | Path) -> Path:
    """Return the lock file of an output: ``.<name>.lock`` in the same folder."""
    output = Path(output).absolute()
    return output.with_name(f".{output.name}.lock")


@contextmanager
def output_lock(output: str | Path) -> Iterator[None]:
    """Hold the lock of ``output`` for the block, or refuse at once if another run holds it.

    A full, read-only or forbidden destination, met while locking or inside the block,
    becomes one [`OutputWriteError`][upscale.errors.OutputWriteError] naming the output.

    Raises
    ------
    OutputLockedError
        When another process is writing the output.
    OutputWriteError
        When the destination has no space left, is read-only or is not writable.

    Warns
    -----
    UserWarning
        When the file system cannot lock (some network mounts): the run goes on unlocked.
    """
    _refuse_file_in_the_way(output)
    try:
        with _held_lock(output):
            yield
    except OSError as err:
        if err.errno not in _DESTINATION_ERRORS or not _about(err, output):
            raise
        raise OutputWriteError(
            f"{output}: cannot write there ({err.strerror}); free space or choose a "
            "writable destination, then run the command again (it resumes)"
        ) from None


def _refuse_file_in_the_way(output: str | Path) -> None:
    """Refuse a destination inside a plain file (``notes.txt/maps.zarr``) before any work."""
    for folder in Path(output).absolute().parents:
        if folder.exists():
            if not folder.is_dir():
                raise OutputWriteError(
                    f"{output}: {folder} is a file, not a folder; choose another destination"
                )
            return


def _about(err: OSError, output: str | Path) -> bool:
    """Whether ``err`` concerns the output, rather than an input met while writing it.

    The output's own are: itself and what it holds, its siblings named after it
    (``.partial``, ``.replaced``, the lock) and the folders it is to be made in. An error
    without a file name (a full disk met by a writer) is taken to be the output's; one
    naming an input (an unreadable model) is not, and keeps its own message.
    """
    if not err.filename:
        return True
    named, output = Path(os.path.abspath(err.filename)), Path(os.path.abspath(output))
    for part in (named, *named.parents):  # the output, or inside it or a sibling of it
        ours = part.parent == output.parent and part.name.startswith(f"{output.name}.")
        if part == output or ours or part == lock_path(output):
            return True
    return named in output.parents


@contextmanager
def _held_lock(output: str | Path) -> Iterator[None]:
    path = lock_path(output)
    with _registry:
        if _held[path]:  # this process holds it already
            _held[path] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _registry:
                _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _locked_handle(path, output)
    if handle.writable():
        handle.truncate()
        handle.write(f"upscale pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
    with _registry:
        _held[path] += 1
    try:
        yield
    finally:
        with _registry:
            _held[path] -= 1
        with suppress(OSError):  # removed while still held: the next run makes it anew
            path.unlink()
        handle.close()  # closing releases the lock


def _locked_handle(path: Path, output: str | Path) -> IO[str]:
    """Open and lock the lock file; retry when the file was replaced while we locked it."""
    while True:
        try:
            descriptor, mode = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+"
        except PermissionError:  # another user's lock file: it can be locked, not written
            descriptor, mode = os.open(path, os.O_RDONLY), "r"
        handle = os.fdopen(descriptor, mode)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "another run"
            handle.close()
            raise OutputLockedError(
                f"{output} is being written by {holder}; wait for it to finish, or write "
                "to another path"
            ) from None
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                handle.close()
                raise
            warnings.warn(
                f"{path.parent} cannot be locked ({err.strerror}); nothing stops another "
                f"run from writing {output} at the same time",
                stacklevel=4,
            )
            return handle
        try:  # the run before may have removed the file between our open and our lock
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            return handle
        handle.close()
