"""Inputs: the driver cube (Earth Engine or local files), drivers at the towers, the mask."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyproj.exceptions import CRSError

from upscale.api._common import write_text_atomic
from upscale.api.budgets import RegionSpec
from upscale.artifact import software_versions
from upscale.catalogue import resolve_regions
from upscale.cube import open_cube, write_store
from upscale.earthengine import EE_DRIVERS, export_tasks, fetch_cube, fetch_points, initialize
from upscale.errors import (
    CubeError,
    FetchError,
    MaskError,
    refuse_overwrite,
)
from upscale.gaps import fill_gaps, gap_summary
from upscale.grid import TargetGrid
from upscale.ingest import IngestConfig, build_drivers, load_ingest_config
from upscale.masks import ecosystem_covers, mask_areas, wetland_mask
from upscale.options import OPTIONS
from upscale.pixels import drivers_at_towers, monthly_variables, tower_pixels
from upscale.plots import (
    mask_figure,
    save_png,
)
from upscale.progress import dask_progress, new_progress
from upscale.schema import validate_cube
from upscale.sites import read_sites_table, site_drivers_csv


@dataclass(frozen=True)
class MaskReport:
    """What [`mask`][upscale.api.inputs.mask] wrote and how its areas compare with the sources'."""

    path: Path
    picture: Path
    areas: pd.DataFrame


def mask(
    cube: str | Path,
    out: str | Path,
    *,
    vectors: Sequence[str | Path] = (),
    sources: dict[str, Sequence[str | Path]] | None = None,
    ecosystem_column: str = "ecosystem",
    classes: dict[str, str] | None = None,
    min_fraction: float = 0.0,
    overwrite: bool = False,
) -> MaskReport:
    """Build the wetland mask on the cube's grid from vector maps and fine rasters.

    Parameters
    ----------
    cube
        Driver cube whose grid and CRS the mask takes.
    out
        ``mask.zarr`` to write; a picture of the cover goes beside it, named after it
        (``mask.png``).
    vectors
        Vector files whose polygons name their ecosystem in ``ecosystem_column``.
    sources
        Ecosystem -> files mapping that ecosystem alone: vectors (any CRS) or rasters such
        as Global Mangrove Watch tiles (0/1, any CRS), e.g. ``{"mangrove": ["gmw.tif"]}``.
    ecosystem_column, classes
        Where vectors name their ecosystem, and how source classes map to ecosystems (see
        [`read_wetland_vectors`][upscale.masks.read_wetland_vectors]).
    min_fraction
        Leave out pixels with less wetland cover than this.
    overwrite
        Replace an existing mask.

    Returns
    -------
    MaskReport
        The mask store, its picture and a table of areas per ecosystem: mask (km², pixel
        area x cover) against the sources' own geodesic area inside the grid.
    """
    out = Path(out)
    if out.suffix.lower() != ".zarr":
        raise MaskError(f"{out}: write the mask as a .zarr store")
    picture = out.with_suffix(".png")
    refuse_overwrite([out, picture], overwrite=overwrite)
    if not 0.0 <= min_fraction < 1.0:
        raise MaskError(f"min_fraction {min_fraction}: give a cover fraction in 0..1")
    grid = open_cube(cube, features=())
    covers = ecosystem_covers(
        grid, vectors=vectors, sources=sources, column=ecosystem_column, classes=classes
    )
    built = wetland_mask(covers, grid, min_fraction=min_fraction)
    built.attrs["sources"] = json.dumps(
        {"vectors": [str(v) for v in vectors]}
        | {eco: [str(p) for p in paths] for eco, paths in (sources or {}).items()}
    )
    built.attrs["software"] = json.dumps(software_versions())
    write_store(built, out, overwrite=overwrite)
    save_png(mask_figure(built), picture)
    return MaskReport(path=out, picture=picture, areas=mask_areas(built, covers))


@dataclass(frozen=True)
class IngestReport:
    """What `ingest` wrote: the cube and the share of each driver's values filled."""

    path: Path
    gaps: dict[str, float]


def ingest(
    config: str | Path | IngestConfig, out: str | Path, *, overwrite: bool = False
) -> IngestReport:
    """Build the canonical monthly driver cube from local NetCDF, Zarr and GeoTIFF sources.

    Parameters
    ----------
    config
        An ingest config (YAML file or [`IngestConfig`][upscale.ingest.IngestConfig]): the target
        grid, the period, the sources and their variable names, units and scale factors,
        and gap filling.
    out
        ``cube.zarr`` to write.
    overwrite
        Replace an existing cube.

    Returns
    -------
    IngestReport
        The cube and, per gap-filled driver, the share of its values that were missing.
    """
    out = Path(out)
    refuse_overwrite([out], overwrite=overwrite)
    base = Path(config).parent if isinstance(config, (str, Path)) else Path()
    if isinstance(config, (str, Path)):
        config = load_ingest_config(config)
    cube = build_drivers(config.sources, config.grid.target(), config.period, base=base)
    if config.fill.enabled:
        cube = fill_gaps(cube, max_interpolated=config.fill.max_interpolated)
    cube.attrs["software"] = json.dumps(software_versions())
    tile = min(OPTIONS["tile"], max(cube.sizes["y"], cube.sizes["x"]))
    write_store(cube.chunk({"time": -1, "y": tile, "x": tile}), out, overwrite=overwrite)
    return IngestReport(path=out, gaps=gap_summary(cube))


def fetch(
    project: str,
    out: str | Path,
    *,
    region: RegionSpec | Sequence[RegionSpec] | None = None,
    crs: str = "EPSG:4326",
    resolution: float | None = None,
    period: tuple[str, str],
    variables: Sequence[str] = EE_DRIVERS,
    sites: str | Path | None = None,
    scale: float | None = None,
    catalogue: str | Path | None = None,
    service_account: str | None = None,
    key_file: str | Path | None = None,
    export_to: str | None = None,
    overwrite: bool = False,
) -> Path | list[str]:
    """Build the monthly driver cube of a region, or the drivers at the towers, from Earth Engine.

    Parameters
    ----------
    project
        Google Cloud project with the Earth Engine API.
    out
        ``cube.zarr`` to write (resumable: a re-run fetches the missing tiles only); with
        ``sites``, the CSV of the drivers at the towers, as [`extract`][upscale.api.inputs.extract]
        writes it.
    region
        What to cover, as for [`query`][upscale.api.budgets.query]: catalogue names, files, bboxes
        (lon/lat) or GeoJSON/WKT polygons; the cube spans their bounding box.
    crs, resolution
        Target grid: any CRS, and the pixel size in its units.
    period
        First and last month, ``("YYYY-MM", "YYYY-MM")``.
    variables
        Canonical drivers (default: all of [`EE_DRIVERS`][upscale.earthengine.EE_DRIVERS]).
    sites
        Instead of ``region`` and ``resolution``: a site folder (or its ``sites.csv``); the
        drivers are sampled at the towers (see
        [`fetch_points`][upscale.earthengine.fetch_points]) and no cube is made.
    scale
        With ``sites``: the sampling scale in metres; by default each driver's native one.
    catalogue
        Region catalogue for names.
    service_account, key_file
        Service-account credentials; without them, those of ``earthengine authenticate``.
    export_to
        For large regions: ``gs://BUCKET[/PREFIX]`` or ``drive:FOLDER`` starts one export
        task per month instead of downloading, and the task ids are returned.
    overwrite
        Replace an existing cube.
    """
    out = Path(out)
    if sites is not None:
        if region is not None or resolution is not None or export_to is not None:
            raise FetchError(
                "--sites samples the drivers at the towers: leave out --region, --resolution "
                "and --export-to, which make a cube"
            )
        return _fetch_at_towers(
            project,
            out,
            sites=sites,
            period=period,
            variables=variables,
            scale=scale,
            credentials={"service_account": service_account, "key_file": key_file},
            overwrite=overwrite,
        )
    if region is None or resolution is None:
        raise FetchError(
            "give --region and --resolution for a cube, or --sites for the drivers at the towers"
        )
    if scale is not None:
        raise FetchError("--scale sets the sampling at the towers: use it with --sites")
    if export_to is None:
        refuse_overwrite([out], overwrite=overwrite)
    shapes = resolve_regions(region, catalogue=catalogue, crs=None)
    try:
        bounds = tuple(shapes.to_crs(crs).total_bounds)
        grid = TargetGrid(crs, bounds, resolution)
    except (ValueError, CRSError) as err:
        raise FetchError(f"target grid {crs} at {resolution}: {err}") from None
    initialize(project, service_account=service_account, key_file=key_file)
    if export_to is not None:
        tasks = export_tasks(grid, period, variables=variables, **_export_destination(export_to))
        for task in tasks:
            task.start()
        return [task.id for task in tasks]
    with new_progress() as progress:
        bar = progress.add_task(f"fetching {out.name}", total=None)
        return fetch_cube(
            grid,
            period,
            out,
            variables=variables,
            provenance={"earthengine_project": project},
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )


def _fetch_at_towers(
    project: str,
    out: Path,
    *,
    sites: str | Path,
    period: tuple[str, str],
    variables: Sequence[str],
    scale: float | None,
    credentials: dict,
    overwrite: bool,
) -> Path:
    """`fetch` with ``sites``: the towers' drivers from Earth Engine, written as `extract` does."""
    if out.suffix.lower() == ".zarr":
        raise FetchError(
            f"{out}: the drivers at the towers are a CSV table; give --out drivers.csv"
        )
    refuse_overwrite([out], overwrite=overwrite)
    meta = read_sites_table(sites)
    initialize(project, **credentials)
    with new_progress() as progress:
        bar = progress.add_task(f"fetching {out.name}", total=None)
        table = fetch_points(
            meta,
            period,
            variables=variables,
            scale=scale,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
        )
    return write_site_drivers(table, out)


def _export_destination(target: str) -> dict[str, str]:
    if target.startswith("gs://"):
        bucket, _, prefix = target.removeprefix("gs://").partition("/")
        return {"bucket": bucket, "prefix": prefix.strip("/") or "upscale"}
    if target.startswith("drive:"):
        return {"drive_folder": target.removeprefix("drive:")}
    raise FetchError(f"--export-to {target!r}: give gs://BUCKET[/PREFIX] or drive:FOLDER")


@dataclass(frozen=True)
class ExtractReport:
    """What [`extract`][upscale.api.inputs.extract] wrote, and the pixel under each tower."""

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
        [`read_site_drivers`][upscale.sites.read_site_drivers] reads it. The pixel under
        each tower goes beside it, ``<out stem>.pixels.csv`` (see
        [`tower_pixels`][upscale.pixels.tower_pixels]).
    features
        Drivers to write, in this order; by default every ``(time, y, x)`` variable of the
        cube: the canonical drivers in the schema's order, then the others by name (see
        [`monthly_variables`][upscale.pixels.monthly_variables]).
    overwrite
        Replace existing outputs.

    Returns
    -------
    ExtractReport
        Both CSVs and the pixel table.

    Raises
    ------
    SiteDataError
        When ``sites.csv`` is malformed or a tower lies outside the cube.
    CubeError
        When the cube breaks the contract or lacks a requested driver.
    """
    out = Path(out)
    beside = pixels_path(out)
    refuse_overwrite([out, beside], overwrite=overwrite)
    meta = read_sites_table(sites)
    grid = open_cube(cube, features=())
    features = list(features) if features is not None else monthly_variables(grid)
    if not features:
        raise CubeError(f"{cube}: no variable with dims (time, y, x) to extract")
    validate_cube(grid, features, source=str(cube))
    pixels = tower_pixels(grid, meta)
    with dask_progress(f"reading {len(meta)} tower pixel(s)"):
        table = drivers_at_towers(grid, meta, features)
    write_site_drivers(table, out)
    write_text_atomic(beside, pixels.to_csv(index=False, lineterminator="\n"))
    return ExtractReport(path=out, pixels_path=beside, pixels=pixels)


def write_site_drivers(table: pd.DataFrame, out: Path) -> Path:
    """Write drivers at the towers (from a cube or Earth Engine) atomically as a tidy CSV."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, site_drivers_csv(table))
    return out
