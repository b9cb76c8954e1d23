"""Fetch: a region's driver cube (Earth Engine or a STAC catalogue), or the towers' drivers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pyproj.exceptions import CRSError

from upscale.api.extract import write_site_drivers
from upscale.api.query import RegionSpec
from upscale.budgets.catalogue import resolve_regions
from upscale.drivers.earthengine import (
    EE_DRIVERS,
    export_tasks,
    fetch_cube,
    fetch_points,
    initialize,
)
from upscale.drivers.stac import fetch_stac_cube
from upscale.drivers.stac_recipes import PLANETARY_COMPUTER, STAC_DRIVERS
from upscale.errors import FetchFailedError
from upscale.grid import TargetGrid
from upscale.io.durable import refuse_overwrite
from upscale.progress import new_progress
from upscale.towers.sites import read_sites_table

Source = Literal["earthengine", "stac"]
"""Where `fetch` reads drivers: Google Earth Engine, or a STAC catalogue."""

SOURCES: tuple[str, ...] = ("earthengine", "stac")


def fetch(
    project: str | None,
    out: str | Path,
    *,
    region: RegionSpec | Sequence[RegionSpec] | None = None,
    crs: str = "EPSG:4326",
    resolution: float | None = None,
    period: tuple[str, str],
    variables: Sequence[str] | None = None,
    source: Source = "earthengine",
    catalog: str | None = None,
    sites: str | Path | None = None,
    scale: float | None = None,
    catalogue: str | Path | None = None,
    service_account: str | None = None,
    key_file: str | Path | None = None,
    export_to: str | None = None,
    overwrite: bool = False,
) -> Path | list[str]:
    """Build the monthly driver cube of a region from Earth Engine or a STAC catalogue.

    With Earth Engine, ``sites`` instead of a region gives the drivers at the towers.

    Parameters
    ----------
    project
        Google Cloud project with the Earth Engine API (not used by ``source="stac"``).
    out
        ``cube.zarr`` to write (resumable: a re-run fetches the missing tiles only); with
        ``sites``, the CSV of the drivers at the towers, as [`extract`][upscale.api.extract.extract]
        writes it.
    region
        What to cover, as for [`query`][upscale.api.query.query]: catalogue names, files, bboxes
        (lon/lat) or GeoJSON/WKT polygons; the cube spans their bounding box.
    crs, resolution
        Target grid: any CRS, and the pixel size in its units.
    period
        First and last month, ``("YYYY-MM", "YYYY-MM")``.
    variables
        Canonical drivers (default: all of [`EE_DRIVERS`][upscale.drivers.earthengine.EE_DRIVERS],
        or with STAC all of [`STAC_DRIVERS`][upscale.drivers.stac_recipes.STAC_DRIVERS]).
    source
        ``earthengine`` or ``stac`` (see [`fetch_stac_cube`][upscale.drivers.stac.fetch_stac_cube]:
        MODIS and ERA5 from Planetary Computer by default, no account needed).
    catalog
        With ``stac``: the STAC API URL or static ``catalog.json`` (default: Planetary Computer).
    sites
        Instead of ``region`` and ``resolution``: a site folder (or its ``sites.csv``); the
        drivers are sampled at the towers (see
        [`fetch_points`][upscale.drivers.earthengine.fetch_points]) and no cube is made.
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
    if source not in SOURCES:
        raise FetchFailedError(f"--source {source!r}: choose one of {', '.join(SOURCES)}")
    if source == "stac":
        if sites is not None or export_to is not None or scale is not None:
            raise FetchFailedError(
                "--source stac makes a cube: leave out --sites, --scale and --export-to (for the "
                "drivers at the towers, run `upscale extract` on the cube)"
            )
    elif catalog is not None:
        raise FetchFailedError("--catalog names a STAC catalogue: use it with --source stac")
    elif project is None:
        raise FetchFailedError(
            "Earth Engine needs --project (a Google Cloud project); or use --source stac"
        )
    if sites is not None:
        if region is not None or resolution is not None or export_to is not None:
            raise FetchFailedError(
                "--sites samples the drivers at the towers: leave out --region, --resolution "
                "and --export-to, which make a cube"
            )
        return _fetch_at_towers(
            str(project),
            out,
            sites=sites,
            period=period,
            variables=variables or EE_DRIVERS,
            scale=scale,
            credentials={"service_account": service_account, "key_file": key_file},
            overwrite=overwrite,
        )
    if region is None or resolution is None:
        raise FetchFailedError(
            "give --region and --resolution for a cube, or --sites for the drivers at the towers"
        )
    if scale is not None:
        raise FetchFailedError("--scale sets the sampling at the towers: use it with --sites")
    if export_to is None:
        refuse_overwrite([out], overwrite=overwrite)
    shapes = resolve_regions(region, catalogue=catalogue, crs=None)
    try:
        bounds = tuple(shapes.to_crs(crs).total_bounds)
        grid = TargetGrid(crs, bounds, resolution)
    except (ValueError, CRSError) as err:
        raise FetchFailedError(f"target grid {crs} at {resolution}: {err}") from None
    if source == "stac":
        return _with_progress(
            fetch_stac_cube,
            grid,
            period,
            out,
            catalog=catalog or PLANETARY_COMPUTER,
            variables=variables or STAC_DRIVERS,
        )
    variables = variables or EE_DRIVERS
    initialize(str(project), service_account=service_account, key_file=key_file)
    if export_to is not None:
        tasks = export_tasks(grid, period, variables=variables, **_export_destination(export_to))
        for task in tasks:
            task.start()
        return [task.id for task in tasks]
    return _with_progress(
        fetch_cube,
        grid,
        period,
        out,
        variables=variables,
        provenance={"earthengine_project": str(project)},
    )


def _with_progress(
    fetch_cube_from: Callable[..., Path],
    grid: TargetGrid,
    period: tuple[str, str],
    out: Path,
    **options: Any,
) -> Path:
    """Run a cube fetcher (Earth Engine's or STAC's) with a progress bar of its blocks."""
    with new_progress() as progress:
        bar = progress.add_task(f"fetching {out.name}", total=None)
        return fetch_cube_from(
            grid,
            period,
            out,
            progress=lambda done, total: progress.update(bar, completed=done, total=total),
            **options,
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
        raise FetchFailedError(
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
    raise FetchFailedError(f"--export-to {target!r}: give gs://BUCKET[/PREFIX] or drive:FOLDER")
