"""Settings of the package: tile size, batch sizes, COG block size and torch threads.

The settings are one validated dictionary, [`OPTIONS`][upscale.options.OPTIONS], read where
each is used, when it is used (never copied at import), and changed with
[`set_options`][upscale.options.set_options], for the whole process or within a ``with``
block.

Notes
-----
Options are the process's. Training tasks carry the caller's to where they run (a sweep's
processes, a cluster's workers: [`carried`][upscale.learn.tasks.carried]); for ``predict``
the workers of a dask.distributed cluster keep theirs, so the tile engine's batch sizes and
threads on a cluster are the workers' (set them where the workers start).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypedDict


class Options(TypedDict):
    """The options and the types of their values (see `set_options` for their meaning)."""

    tile: int
    batch_sizes: Mapping[str, int]
    cog_block: int
    threads: int


OPTIONS: Options = {
    "tile": 256,
    "batch_sizes": MappingProxyType({"cpu": 2048, "cuda": 16384}),
    "cog_block": 512,
    "threads": 1,
}
"""The options in force; change them with [`set_options`][upscale.options.set_options]."""


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _device_type(name: Any) -> bool:
    import torch  # only to validate: the options module stays light to import

    try:
        return isinstance(name, str) and torch.device(name).type == name
    except RuntimeError:  # torch's word for a device type it does not know
        return False


def _batch_sizes(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and all(_device_type(k) for k in value)
        and all(_positive(v) for v in value.values())
    )


_VALID: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tile": (_positive, "a positive integer (pixels)"),
    "batch_sizes": (
        _batch_sizes,
        "a mapping of torch device types (cpu, cuda, mps, ...) to positive integers",
    ),
    "cog_block": (lambda v: _positive(v) and v % 16 == 0, "a positive multiple of 16 (pixels)"),
    "threads": (_positive, "a positive integer"),
}


class _Restore:
    """Put options back as they were when a ``with`` block ends, however it ends."""

    def __init__(self, previous: dict[str, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        OPTIONS.update(self._previous)  # type: ignore[typeddict-item]


def set_options(
    *,
    tile: int | None = None,
    batch_sizes: Mapping[str, int] | None = None,
    cog_block: int | None = None,
    threads: int | None = None,
) -> _Restore:
    """Set options for the process, or, used as a context manager, within a ``with`` block.

    The options given are all validated before any is set. Used as ``with set_options(...):``,
    the previous values come back when the block ends, even on an exception.

    Parameters
    ----------
    tile
        Spatial tile size (pixels) given to a cube whose own chunks are larger, when it is
        opened without a tile ([`open_cube`][upscale.io.stores.open_cube]), and to the cubes that
        ``ingest`` and ``fetch`` write. Default 256.
    batch_sizes
        Windows per forward pass of the tile engine, by torch device type
        ([`default_batch_size`][upscale.engine.tiles.default_batch_size]); the types given replace
        theirs, the others keep theirs. Default ``{"cpu": 2048, "cuda": 16384}``: on CPU,
        1k-2k windows run fastest (larger batches leave the caches, NOTES.md); a GPU needs
        larger batches to fill its cores (not yet measured: no GPU was at hand), while every
        dask thread's tile shares its memory.
    cog_block
        Block size of the exported Cloud-Optimized GeoTIFFs (pixels), a multiple of 16 as
        TIFF tiles are. Default 512, the GDAL COG driver's.
    threads
        Torch threads of each worker that runs nets beside others on the CPU: each tile of
        the tile engine, each ensemble member's fit (``train``, each run of a sweep, here or
        on a cluster alike, so their weights do not depend on where they ran), each thread
        of the bench's model floor. Default 1, since dask's threads and the sweep's
        processes already keep every core busy; raise it when fewer workers than cores run.

    Returns
    -------
    object
        A context manager that restores the previous values on exit; a plain call needs
        nothing of it.

    Raises
    ------
    ValueError
        Naming the option and the values it takes, for an invalid value.

    See Also
    --------
    get_options : the options in force.

    Examples
    --------
    >>> import upscale
    >>> with upscale.set_options(tile=128, batch_sizes={"cpu": 1024}):
    ...     upscale.get_options()["tile"]
    128
    >>> upscale.get_options()["tile"]
    256
    """
    given = {
        "tile": tile,
        "batch_sizes": batch_sizes,
        "cog_block": cog_block,
        "threads": threads,
    }
    changed = {name: value for name, value in given.items() if value is not None}
    for name, value in changed.items():
        valid, allowed = _VALID[name]
        if not valid(value):
            raise ValueError(f"option {name}={value!r} is invalid; {name} takes {allowed}")
    if batch_sizes is not None:
        changed["batch_sizes"] = MappingProxyType({**OPTIONS["batch_sizes"], **batch_sizes})
    previous = {name: OPTIONS[name] for name in changed}  # type: ignore[literal-required]
    OPTIONS.update(changed)  # type: ignore[typeddict-item]
    return _Restore(previous)


def get_options() -> dict[str, Any]:
    """Return a copy of the options in force.

    ``set_options(**get_options())`` sets them again, in this process or another (the copy
    pickles and serialises to JSON), which is how a sweep hands them to its processes.

    See Also
    --------
    set_options : their meaning, and how to change them.
    """
    return {
        name: dict(value) if isinstance(value, Mapping) else value
        for name, value in OPTIONS.items()
    }


__all__ = ["OPTIONS", "Options", "get_options", "set_options"]
