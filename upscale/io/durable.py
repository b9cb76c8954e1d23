"""Durable outputs: one run at a time per output, staged writes swapped in whole, resumable runs.

Every writer of upscale goes through this module, so that a crash, a ``kill -9`` or a full disk
leaves under an output's name either the previous complete output or the new one, never a mix:

- [`output_lock`][upscale.io.durable.output_lock]: an advisory lock held while an output is
  written; a second run writing the same output is refused with a message naming the first.
- [`staged`][upscale.io.durable.staged]: write to a sibling ``<name>.partial``, check it, then
  rename it into place; [`write_text`][upscale.io.durable.write_text] does it for a text file.
- [`refuse_overwrite`][upscale.io.durable.refuse_overwrite]: outputs of a finished run are
  replaced only when asked.
- [`ResumeRecord`][upscale.io.durable.ResumeRecord]: a run's plan and the parts of it finished;
  started again with the same plan, a run does only the parts not recorded.
  [`resumable`][upscale.io.durable.resumable] uses it for runs that write several outputs.

The lock is ``flock`` on a hidden file beside the output (``.<name>.lock``), so the operating
system releases it when its process ends, even killed: a crashed run never blocks the next one
(its lock file stays, unheld). A run removes its lock file when it finishes. Within a process
the lock is re-entrant, so a command can hold it from its start while the writers it calls
take it again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from upscale.errors import OutputExistsError, OutputLockedError, OutputNotWritableError

PARTIAL = ".partial"
"""Suffix of the sibling an output is written to before it is renamed into place."""

REPLACED = ".replaced"
"""Suffix of an old output folder moved aside while the new one is renamed into place."""

_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_DESTINATION_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_held: Counter[Path] = Counter()  # locks this process holds, by lock file
_registry = threading.Lock()


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string, as outputs record their creation."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def refuse_overwrite(paths: Iterable[str | Path], *, overwrite: bool) -> None:
    """Raise `OutputExistsError` naming the paths that exist, unless overwriting.

    A command calls it for all its outputs before any work, so that a run that would be
    refused at its last output is refused at once.
    """
    existing = [str(path) for path in paths if Path(path).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(existing)}: exist(s); pass --overwrite to replace")


@contextmanager
def staged(
    path: str | Path, *, overwrite: bool = False, resume: bool = False, suffix: str = ""
) -> Iterator[Path]:
    """Yield the path to write an output to, and rename it into place when the block succeeds.

    The output's lock ([`output_lock`][upscale.io.durable.output_lock]) is held throughout. The
    block writes a file or a folder at the yielded ``<name>.partial`` and checks it; when the
    block raises, nothing under ``path`` changes. The swap is kill-safe: an old folder is
    renamed aside, the new output renamed in, then the old one deleted, so a kill at any
    point leaves under ``path`` the old output, the new one or, between the two renames,
    nothing (and a file replaces a file in one rename); never an output half deleted.

    Parameters
    ----------
    path
        The output's final name.
    overwrite
        Replace an existing output; without it an existing output raises.
    resume
        Keep what an interrupted run left at the partial path (the block resumes it, see
        [`ResumeRecord`][upscale.io.durable.ResumeRecord]) and keep it when the block raises;
        without it a leftover partial output is deleted first, and a failed one after.
    suffix
        Ending of the partial output's name, ``<name>.partial<suffix>``, for writers that
        choose a format by its suffix, or append one (numpy's ``savez`` appends ``.npz``).

    Yields
    ------
    pathlib.Path
        Where the block writes the output.

    Raises
    ------
    OutputExistsError
        When the output exists and ``overwrite`` is False.
    """
    path = Path(path)
    partial = path.with_name(path.name + PARTIAL + suffix)
    with output_lock(path):
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{path} exists; pass --overwrite (overwrite=True) to replace it"
            )
        replaced = path.with_name(path.name + REPLACED)
        _remove(replaced)  # an earlier swap was killed after moving the old output aside
        if not resume:
            _remove(partial)
        try:
            yield partial
        except BaseException:
            if not resume:
                _remove(partial)
            raise
        if path.exists() and (path.is_dir() or partial.is_dir()):
            path.rename(replaced)  # a folder cannot be renamed over: move the old one aside
        partial.rename(path)
        _remove(replaced)


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically, replacing an existing one (see `staged`)."""
    with staged(path, overwrite=True) as partial:
        partial.write_text(text)
    return Path(path)


def _remove(path: Path) -> None:
    """Delete a file or a folder, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ResumeRecord:
    """The plan of a run under way, and the parts of it finished, kept on disk.

    A run records its plan before it writes and each part as it finishes it. Started again
    with the same plan, a run whose record is still there was interrupted: it keeps the
    parts recorded and does the others. A record of another plan is the caller's to refuse
    or to clear. Parts are empty files named after them, so that recording one is a
    single file creation, safe from any thread or dask worker.

    Attributes
    ----------
    file
        The JSON file holding the plan.
    plan
        JSON-serialisable description of the run (paths and dates are written as text).
    parts
        Folder of the finished parts' names; None for a run that finds its finished
        outputs by their existence (see [`resumable`][upscale.io.durable.resumable]).
    """

    file: Path
    plan: Mapping[str, Any]
    parts: Path | None = None

    def _text(self) -> str:
        return json.dumps(self.plan, sort_keys=True, default=str)

    def exists(self) -> bool:
        """Return whether a plan, this one or another, is recorded."""
        return self.file.exists()

    def resumes(self) -> bool:
        """Return whether this plan is recorded: an interrupted run of it to resume."""
        return self.file.exists() and self.file.read_text() == self._text()

    def start(self) -> None:
        """Record the plan, with no part finished yet.

        Called once what the parts are written into is ready: a record stands for a
        complete start.
        """
        if self.parts is not None:
            self.parts.mkdir(parents=True, exist_ok=True)
        write_text(self.file, self._text())

    def finished(self) -> set[str]:
        """Return the names of the parts recorded as finished."""
        if self.parts is None or not self.parts.is_dir():
            return set()
        return {entry.name for entry in self.parts.iterdir() if entry != self.file}

    def mark(self, part: str) -> None:
        """Record ``part`` as finished."""
        if self.parts is None:
            raise ValueError(f"{self.file}: this record keeps no parts")
        (self.parts / part).touch()

    def clear(self) -> None:
        """Delete the record: its plan first, so that no part outlives the plan it belongs to."""
        self.file.unlink(missing_ok=True)
        if self.parts is not None:
            _remove(self.parts)


@contextmanager
def resumable(
    record: Path, plan: Mapping[str, Any], outputs: Iterable[Path], *, overwrite: bool
) -> Iterator[set[Path]]:
    """Yield the outputs an interrupted run of the same plan already finished.

    Each output is written whole (see [`staged`][upscale.io.durable.staged]), so an output that
    exists while the plan is recorded was finished by the interrupted run. Without a
    record, existing outputs are finished results, replaced only with ``overwrite``. The
    record is deleted when the block succeeds: an error leaves the run resumable.

    Parameters
    ----------
    record
        File recording the plan while the run is under way (hold the outputs' lock).
    plan
        JSON-serialisable description of the run: the same plan resumes.
    outputs
        Everything the run writes.
    overwrite
        Replace finished outputs (and ignore what an interrupted run left).

    Raises
    ------
    OutputExistsError
        When an output exists from a finished run, or another plan, and ``overwrite`` is
        False.
    """
    outputs = list(outputs)
    run = ResumeRecord(record, plan)
    if run.resumes() and not overwrite:
        done = {path for path in outputs if path.exists()}
    else:
        refuse_overwrite(outputs, overwrite=overwrite)
        done = set()
    run.start()
    yield done
    run.clear()


def lock_path(output: str | Path) -> Path:
    """Return the lock file of an output: ``.<name>.lock`` in the same folder."""
    output = Path(output).absolute()
    return output.with_name(f".{output.name}.lock")


@contextmanager
def output_lock(output: str | Path) -> Iterator[None]:
    """Hold the lock of ``output`` for the block, or refuse at once if another run holds it.

    A full, read-only or forbidden destination, met while locking or inside the block,
    becomes one [`OutputNotWritableError`][upscale.errors.OutputNotWritableError] naming the output.

    Raises
    ------
    OutputLockedError
        When another process is writing the output.
    OutputNotWritableError
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
        raise OutputNotWritableError(
            f"{output}: cannot write there ({err.strerror}); free space or choose a "
            "writable destination, then run the command again (it resumes)"
        ) from None


def _refuse_file_in_the_way(output: str | Path) -> None:
    """Refuse a destination inside a plain file (``notes.txt/maps.zarr``) before any work."""
    for folder in Path(output).absolute().parents:
        if folder.exists():
            if not folder.is_dir():
                raise OutputNotWritableError(
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
