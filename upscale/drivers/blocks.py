"""A driver cube downloaded block by block: staged, recorded, resumed, then written whole.

Remote sources of drivers (Earth Engine, STAC catalogues) hand out a region's pixels in pieces:
tiles of the target grid x blocks of months. [`fetch_blocks`][upscale.drivers.blocks.fetch_blocks]
asks a source for each block in turn, writes it into a staging store beside the cube
(``<out>.fetching``) and records it as finished; after a crash, a quota stop or a kill the same
call fetches only the blocks not recorded. When every block is there, the cube is rechunked to
whole time series, its cloud gaps are filled and flagged, and it is written in one piece. The
record is [`ResumeRecord`][upscale.io.durable.ResumeRecord], the lock
[`output_lock`][upscale.io.durable.output_lock]: the source only says how to get one block.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from upscale.drivers.gaps import fill_gaps
from upscale.errors import FetchFailedError
from upscale.grid import TargetGrid
from upscale.io.durable import ResumeRecord, output_lock
from upscale.io.stores import write_store
from upscale.options import OPTIONS
from upscale.progress import Advance
from upscale.schema import DRIVERS

Block = tuple[slice, slice, slice]
"""``(months, rows, cols)`` index windows of one request."""

BlockFetcher = Callable[[Block], Mapping[str, np.ndarray]]
"""Returns a block's values per driver, ``(months, rows, cols)`` float arrays, NaN where missing."""


@dataclass(frozen=True)
class FetchPlan:
    """The requests of one fetch: tiles of the grid x blocks of months."""

    grid: TargetGrid
    variables: tuple[str, ...]
    months: pd.DatetimeIndex
    tile: int
    months_per_request: int

    def blocks(self) -> list[Block]:
        """``(months, rows, cols)`` index windows, in the order they are fetched."""
        height, width = self.grid.shape
        out = []
        for t in range(0, len(self.months), self.months_per_request):
            months = slice(t, min(t + self.months_per_request, len(self.months)))
            for r in range(0, height, self.tile):
                for c in range(0, width, self.tile):
                    out.append(
                        (
                            months,
                            slice(r, min(r + self.tile, height)),
                            slice(c, min(c + self.tile, width)),
                        )
                    )
        return out

    def block_grid(self, block: Block) -> TargetGrid:
        """Return the target grid of a block's window (same CRS and pixels as the whole)."""
        _, rows, cols = block
        t = self.grid.transform
        west, north = t.c + cols.start * t.a, t.f + rows.start * t.e
        east, south = t.c + cols.stop * t.a, t.f + rows.stop * t.e
        return TargetGrid(self.grid.crs, (west, south, east, north), self.grid.resolution)


def block_name(block: Block) -> str:
    """Name a block is recorded under when finished."""
    months, rows, cols = block
    return f"t{months.start}_y{rows.start}_x{cols.start}"


def fetch_blocks(
    plan: FetchPlan,
    out: str | Path,
    fetch_block: BlockFetcher,
    *,
    attrs: Mapping[str, str],
    comments: Mapping[str, str] | None = None,
    max_interpolated: int | None = 2,
    progress: Advance | None = None,
) -> Path:
    """Fetch every block of a plan into ``out``, resuming an interrupted fetch of the same plan.

    Parameters
    ----------
    plan
        Grid, drivers, months and block sizes.
    out
        ``cube.zarr`` to write. Blocks go to ``<out>.fetching`` first, each recorded when
        complete; a re-run fetches only the blocks not recorded.
    fetch_block
        Returns one block's values per driver of the plan, in canonical units, NaN where
        the source has no good value.
    attrs
        The cube's provenance (source, collections...); never credentials.
    comments
        A ``comment`` attribute per driver, where the source's method needs one.
    max_interpolated
        Fill cloud gaps of the optical drivers (see [`fill_gaps`][upscale.drivers.gaps.fill_gaps])
        with this longest interpolated run; None leaves them NaN.
    progress
        Called with (blocks done, blocks in all) after each block.

    Returns
    -------
    pathlib.Path
        The written cube.

    Raises
    ------
    FetchFailedError
        When the staging folder holds an unfinished fetch of another plan, or a source
        returns a block of the wrong shape.
    """
    out = Path(out)
    with output_lock(out):  # its staging folder too: one fetch of a cube at a time
        staging = out.with_name(out.name + ".fetching")
        if out.exists() and staging.exists():  # left by a run that finished: stale
            shutil.rmtree(staging)
        record = _prepare_staging(staging, plan)
        blocks = plan.blocks()
        fetched = record.finished()
        for count, block in enumerate(blocks, start=1):
            if block_name(block) not in fetched:
                _store_block(plan, block, fetch_block(block), staging)
                record.mark(block_name(block))
            if progress is not None:
                progress(count, len(blocks))
        cube = _finished_cube(staging, plan, attrs, comments or {})
        cube = cube.chunk({"time": -1, "y": OPTIONS["tile"], "x": OPTIONS["tile"]})
        if max_interpolated is not None:
            cube = fill_gaps(cube, max_interpolated=max_interpolated)
        write_store(cube, out, overwrite=True)
        shutil.rmtree(staging)
    return out


def _prepare_staging(staging: Path, plan: FetchPlan) -> ResumeRecord:
    """Create the staging store once, and return its record of the blocks fetched.

    A later run with the same plan resumes; one with another plan is refused, since the
    blocks of the first would be lost.
    """
    settings = {
        "grid": [plan.grid.crs, list(plan.grid.bounds), plan.grid.resolution],
        "variables": list(plan.variables),
        "months": [str(plan.months[0].date()), str(plan.months[-1].date())],
        "tile": plan.tile,
        "months_per_request": plan.months_per_request,
    }
    record = ResumeRecord(staging / "plan.json", settings, parts=staging / "blocks_done")
    if record.resumes():
        return record
    if record.exists():
        raise FetchFailedError(
            f"{staging} holds an unfinished fetch with other settings; finish it with "
            "those settings, or delete the folder to start again"
        )
    record.clear()  # blocks recorded by a start killed before its plan was
    staging.mkdir(parents=True, exist_ok=True)
    height, width = plan.grid.shape
    store = zarr.open_group(staging / "data.zarr", mode="w", zarr_format=3)
    for name in plan.variables:
        store.create_array(
            name,
            shape=(len(plan.months), height, width),
            chunks=(plan.months_per_request, plan.tile, plan.tile),
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("time", "y", "x"),
        )
    record.start()  # last: the store is complete
    return record


def _store_block(
    plan: FetchPlan, block: Block, values: Mapping[str, np.ndarray], staging: Path
) -> None:
    months, rows, cols = block
    shape = (months.stop - months.start, rows.stop - rows.start, cols.stop - cols.start)
    store = zarr.open_group(staging / "data.zarr", mode="r+")
    for name in plan.variables:
        array = np.asarray(values[name], dtype="float32")
        if array.shape != shape:
            raise FetchFailedError(
                f"{name}: the source returned {array.shape} values for block "
                f"{block_name(block)}, expected {shape} (months, rows, columns)"
            )
        store[name][months, rows, cols] = array


def _finished_cube(
    staging: Path, plan: FetchPlan, attrs: Mapping[str, str], comments: Mapping[str, str]
) -> xr.Dataset:
    data = xr.open_zarr(staging / "data.zarr", consolidated=False)
    template = plan.grid.template()
    cube = data.assign_coords(time=plan.months, y=template["y"], x=template["x"])
    for name in plan.variables:
        cube[name].attrs = DRIVERS[name].attrs()
        if name in comments:
            cube[name].attrs["comment"] = comments[name]
    cube.attrs = dict(attrs)
    return cube.rio.write_crs(plan.grid.crs)
