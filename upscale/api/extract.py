"""Extract: the monthly drivers of a cube at the pixel under each tower."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from upscale.errors import InvalidCubeError
from upscale.io.durable import refuse_overwrite, write_text
from upscale.io.stores import open_cube
from upscale.progress import dask_progress
from upscale.schema import validate_cube
from upscale.towers.pixels import drivers_at_towers, monthly_variables, tower_pixels
from upscale.towers.sites import read_sites_table
from upscale.towers.tidy import site_drivers_csv


@dataclass(frozen=True)
class ExtractReport:
    """What [`extract`][upscale.api.extract.extract] wrote, and the pixel under each tower."""

    path: Path
    pixels_path: Path
    pixels: pd.DataFrame


def pixels_path(out: str | Path) -> Path:
    """Where `extract` writes the towers' pixels: ``<out stem>.pixels.csv`` beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.pixels.csv")


def extract(
    sites: str | Path,
    cube: str | Path,
    out: str | Path,
    *,
    features: Sequence[str] | None = None,
    overwrite: bool = False,
) -> ExtractReport:
    """Write the monthly drivers of a cube at the pixel under each tower, as a tidy CSV.

    Parameters
    ----------
    sites
        Site folder with ``sites.csv`` (only the tower table is read: no fluxes needed).
    cube
        Driver cube (Zarr v3 or NetCDF).
    out
        CSV to write: ``site_id, time, <DRIVER>...`` (dates ``YYYY-MM-DD``, missing values
        empty), rows by tower in ``sites.csv`` order then month, as
        [`read_site_drivers`][upscale.towers.tidy.read_site_drivers] reads it. The pixel under
        each tower goes beside it, ``<out stem>.pixels.csv`` (see
        [`tower_pixels`][upscale.towers.pixels.tower_pixels]).
    features
        Drivers to write, in this order; by default every ``(time, y, x)`` variable of the
        cube: the canonical drivers in the schema's order, then the others by name (see
        [`monthly_variables`][upscale.towers.pixels.monthly_variables]).
    overwrite
        Replace existing outputs.

    Returns
    -------
    ExtractReport
        Both CSVs and the pixel table.

    Raises
    ------
    InvalidTowerDataError
        When ``sites.csv`` is malformed or a tower lies outside the cube.
    InvalidCubeError
        When the cube breaks the contract or lacks a requested driver.
    """
    out = Path(out)
    beside = pixels_path(out)
    refuse_overwrite([out, beside], overwrite=overwrite)
    meta = read_sites_table(sites)
    grid = open_cube(cube, features=())
    features = list(features) if features is not None else monthly_variables(grid)
    if not features:
        raise InvalidCubeError(f"{cube}: no variable with dims (time, y, x) to extract")
    validate_cube(grid, features, source=str(cube))
    pixels = tower_pixels(grid, meta)
    with dask_progress(f"reading {len(meta)} tower pixel(s)"):
        table = drivers_at_towers(grid, meta, features)
    write_site_drivers(table, out)
    write_text(beside, pixels.to_csv(index=False, lineterminator="\n"))
    return ExtractReport(path=out, pixels_path=beside, pixels=pixels)


def write_site_drivers(table: pd.DataFrame, out: Path) -> Path:
    """Write drivers at the towers (from a cube or Earth Engine) atomically as a tidy CSV."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, site_drivers_csv(table))
    return out
