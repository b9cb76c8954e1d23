"""The Python API behind each CLI verb: paths in, paths (or tables) out.

Each function reads its inputs, calls the library, writes its outputs and returns where
they are, so a notebook can run exactly what the command line runs.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
import xarray as xr
from pyproj.exceptions import CRSError
from rich.markup import escape

from upscale.annual import annual_totals, valid_period
from upscale.artifact import load_model, read_card, save_model, software_versions
from upscale.attribution import TowerExplanation, explain_towers
from upscale.balance import NEE_MODES
from upscale.catalogue import catalogue_regions, catalogue_table, resolve_regions
from upscale.config import save_train_config
from upscale.cube import DEFAULT_TILE, open_cube, open_maps, open_mask, open_store, write_store
from upscale.demo_region import DemoSpec, make_demo_region, write_demo_region
from upscale.earthengine import EE_DRIVERS, export_tasks, fetch_cube, initialize
from upscale.engine import flux_maps
from upscale.errors import (
    FetchError,
    MaskError,
    ModelArtifactError,
    OutputExistsError,
    RegionError,
    SiteDataError,
    refuse_overwrite,
)
from upscale.gaps import FILLED, fill_gaps, gap_summary
from upscale.geotiff import Period, export_cogs
from upscale.grid import TargetGrid
from upscale.ingest import IngestConfig, build_drivers, load_ingest_config
from upscale.masks import ecosystem_covers, mask_areas, wetland_mask
from upscale.metrics import COMPONENTS, skill
from upscale.plots import (
    annual_maps_png,
    cv_scatter_png,
    importance_png,
    mask_png,
    memory_png,
    region_fluxes_png,
    region_sink_png,
    sweep_png,
    uncertainty_png,
)
from upscale.progress import console, dask_progress, new_progress
from upscale.regions import Period as BudgetPeriod
from upscale.regions import budget, read_regions, wetland_area_km2
from upscale.samples import (
    SiteSeries,
    driver_agreement,
    extract_site_series,
    tower_drivers,
    with_site_drivers,
)
from upscale.schema import DRIVERS, EXTRAPOLATED, TARGETS, WETLAND
from upscale.shap_maps import export_shap_cogs, shap_maps
from upscale.sites import Partitioning, read_site_drivers, read_sites
from upscale.sweep import DEFAULT_MEMORIES, SweepResult, run_sweep
from upscale.training import MIN_TOWERS, TrainConfig, train_ensemble

Status = Callable[[str], None]
TABLE_SUFFIXES = (".csv", ".json", ".geojson")


def _status(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/dim]", highlight=False)


def _require_towers(series: SiteSeries, sites: str | Path, ecosystems: Sequence[str]) -> None:
    """Check every ecosystem has enough tower pixels to cross-validate, before any training."""
    for eco in ecosystems:
        towers = series.of_ecosystem(eco)
        pixels = len(towers.pixel_groups())
        if pixels < MIN_TOWERS:
            raise SiteDataError(
                f"{sites}: {eco} has {len(towers.site_ids)} tower(s) in {pixels} cube pixel(s); "
                f"at least {MIN_TOWERS} pixels with towers are needed to cross-validate"
            )


@dataclass(frozen=True)
class TrainResult:
    """Models written by :func:`train`, with their held-out predictions.

    Attributes
    ----------
    models
        Ecosystem -> model folder.
    metrics
        Ecosystem -> target -> component -> cross-validated scores (as in the cards).
    held_out
        Ecosystem -> (tower fluxes, held-out predictions), both ``(S, T, K)``.
    config
        The resolved training config written beside the models (``<name>.yaml``).
    drivers
        Agreement of the cube's drivers with the towers' own at their pixels
        (:func:`upscale.samples.driver_agreement`), also written as ``<name>-drivers.csv``.
    """

    models: dict[str, Path]
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]]
    held_out: dict[str, tuple[np.ndarray, np.ndarray]]
    config: Path
    drivers: pd.DataFrame

    def skill_table(self) -> pd.DataFrame:
        """One row per ecosystem and flux: scores over all months, R² of each component."""
        return pd.DataFrame(
            [
                {"ecosystem": eco, "flux": flux, **parts["all"]}
                | {f"{part}_r2": parts[part]["r2"] for part in COMPONENTS[1:]}
                for eco, by_flux in self.metrics.items()
                for flux, parts in by_flux.items()
            ]
        )


def train(
    sites: str | Path,
    cube: str | Path,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    name: str = "model",
    partitioning: Partitioning = "NT",
    ecosystems: Sequence[str] | None = None,
    site_drivers_table: str | Path | None = None,
    overwrite: bool = False,
    status: Status = _status,
) -> TrainResult:
    """Cross-validate and train one model per ecosystem from a folder of towers.

    Parameters
    ----------
    sites
        Folder with ``sites.csv`` and FLUXNET-format (or tidy) CSVs.
    cube
        Driver cube (Zarr v3 or NetCDF).
    out
        Folder that receives one model folder per ecosystem, ``<name>-<ecosystem>``.
    config
        Architecture, memory and training settings.
    name
        Prefix of the model names.
    partitioning
        Night-time (``NT``) or day-time (``DT``) partitioned GPP and RE.
    ecosystems
        Ecosystems to train; by default all those of the towers.
    site_drivers_table
        Drivers measured or extracted at the towers (``site_id, time, <DRIVER>...``), for
        ``config.site_drivers`` and the agreement table.
    overwrite
        Replace existing model folders.
    status
        Receives progress lines.

    Returns
    -------
    TrainResult
        Model folders, cross-validated metrics and held-out predictions per ecosystem.
    """
    config = config or TrainConfig()
    if FILLED in open_cube(cube, ()).data_vars and FILLED not in config.features:
        status(f"the cube is gap-filled: the models also read the {FILLED} flag")
        config = config.model_copy(update={"features": (*config.features, FILLED)})
    series, measured = _cube_and_tower_drivers(
        sites, cube, config, partitioning, site_drivers_table
    )
    agreement = driver_agreement(series, measured)
    if config.site_drivers:
        status(f"taking {', '.join(config.site_drivers)} from the towers, not the cube")
        series = with_site_drivers(series, measured, config.site_drivers)
    ecosystems = list(ecosystems or sorted(set(series.ecosystems)))
    folders = {eco: Path(out) / f"{name}-{eco}" for eco in ecosystems}
    agreement_path = Path(out) / f"{name}-drivers.csv"
    refuse_overwrite([*folders.values(), agreement_path], overwrite=overwrite)
    _require_towers(series, sites, ecosystems)
    result = TrainResult(
        models={},
        metrics={},
        held_out={},
        config=save_train_config(config, Path(out) / f"{name}.yaml"),
        drivers=agreement,
    )
    if not agreement.empty:
        agreement.to_csv(agreement_path, index=False, float_format="%.4g")
    for eco in ecosystems:
        eco_series = series.of_ecosystem(eco)
        status(
            f"training {config.architecture} L={config.memory} for {eco}: "
            f"{len(eco_series.site_ids)} towers, {eco_series.n_windows(config.memory)} windows"
        )
        fitted = train_ensemble(
            eco_series,
            config,
            name=f"{name}-{eco}",
            ecosystem=eco,
            data={"sites": str(Path(sites).resolve()), "cube": str(Path(cube).resolve())},
            progress=lambda line, eco=eco: status(f"  {eco}: {line}"),
        )
        result.models[eco] = save_model(fitted.model, folders[eco], overwrite=overwrite)
        result.metrics[eco] = fitted.model.card.cv_metrics
        result.held_out[eco] = (eco_series.fluxes, fitted.predictions)
    return result


def predict(
    cube: str | Path,
    mask: str | Path,
    models: Sequence[str | Path],
    out: str | Path,
    *,
    tile: int | None = None,
    batch_size: int = 2048,
    overwrite: bool = False,
) -> Path:
    """Apply one model per ecosystem to every wetland pixel and write ``maps.zarr``.

    Parameters
    ----------
    cube, mask
        Driver cube and wetland mask on the same grid.
    models
        Model folders; each card names its ecosystem.
    out
        Zarr store to write (``maps.zarr``).
    tile
        Spatial tile size in pixels; by default the cube's chunks.
    batch_size
        Windows per forward pass.
    overwrite
        Replace an existing store.
    """
    out = Path(out)
    refuse_overwrite([out], overwrite=overwrite)
    by_ecosystem: dict[str, Path] = {}
    features: list[str] = []
    for folder in models:
        card = read_card(folder)
        if card.ecosystem in by_ecosystem:
            raise ModelArtifactError(
                f"two models for {card.ecosystem}: {by_ecosystem[card.ecosystem]} and {folder}"
            )
        by_ecosystem[card.ecosystem] = Path(folder)
        features += [f for f in card.features if f not in features]
    drivers = open_cube(cube, features, tile=tile)
    wetland = open_mask(mask, drivers)
    maps = flux_maps(
        drivers,
        wetland,
        by_ecosystem,
        batch_size=batch_size,
        provenance={
            "inputs": json.dumps(
                {"cube": str(Path(cube).resolve()), "mask": str(Path(mask).resolve())}
            ),
            "command": shlex.join(sys.argv),
            "input_gap_fraction": json.dumps(gap_summary(drivers)),
        },
    )
    threads = torch.get_num_threads()
    try:
        with dask_progress(f"predicting {out.name}"):
            return write_store(maps, out, overwrite=overwrite)
    finally:
        torch.set_num_threads(threads)


def export(
    maps: str | Path,
    out: str | Path,
    *,
    periods: Sequence[Period] = ("annual",),
    overwrite: bool = False,
) -> list[Path]:
    """Export flux maps to Cloud-Optimized GeoTIFFs (see :func:`upscale.geotiff.export_cogs`)."""
    return export_cogs(open_maps(maps), out, periods=periods, overwrite=overwrite)


RegionSpec = str | Path
"""A region for a query: a catalogue name, a vector file, a bbox, or a GeoJSON/WKT polygon."""


def query(
    maps: str | Path,
    regions: RegionSpec | Sequence[RegionSpec] | gpd.GeoDataFrame,
    *,
    by: BudgetPeriod = "year",
    catalogue: str | Path | None = None,
    crs: str | None = None,
    out: str | Path | None = None,
    plots: str | Path | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Carbon budget per region, ecosystem and year or month (see :func:`upscale.regions.budget`).

    Parameters
    ----------
    maps
        ``maps.zarr`` written by :func:`predict`.
    regions
        Region(s) to budget: names from the catalogue, vector files with a ``name``
        column, bounding boxes ``west,south,east,north``, GeoJSON or WKT polygons (see
        :func:`upscale.catalogue.resolve_regions`), or a GeoDataFrame.
    by
        ``"year"`` (complete years) or ``"month"``.
    catalogue
        Region catalogue folder for names (default ``$UPSCALE_REGIONS`` or ``./regions``).
    crs
        CRS of bounding boxes and WKT polygons (default EPSG:4326).
    out
        Optional table to write: ``.csv``, ``.json`` (records) or ``.geojson`` (the region
        outlines in EPSG:4326, one feature per row of the table, for GIS).
    plots
        Optional folder for ``region_sink.png`` (map of the mean annual sink with the
        outlines) and ``region_fluxes.png`` (monthly fluxes of each region).
    overwrite
        Replace existing outputs.
    """
    if out is not None and Path(out).suffix.lower() not in TABLE_SUFFIXES:
        raise RegionError(f"{out}: write the budget as .csv, .json or .geojson")
    pictures = [Path(plots) / name for name in QUERY_PICTURES] if plots is not None else []
    refuse_overwrite([p for p in [out, *pictures] if p is not None], overwrite=overwrite)
    if isinstance(regions, gpd.GeoDataFrame):
        shapes = regions
    else:
        shapes = resolve_regions(regions, catalogue=catalogue, crs=crs)
    flux_maps_ = open_maps(maps)
    table = budget(flux_maps_, shapes, by=by)
    if out is not None:
        write_budget(table, shapes, Path(out))
    if pictures:
        pictures[0].parent.mkdir(parents=True, exist_ok=True)
        region_sink_png(annual_totals(flux_maps_), shapes, pictures[0])
        monthly = table if by == "month" else budget(flux_maps_, shapes, by="month")
        region_fluxes_png(monthly, pictures[1])
    return table


QUERY_PICTURES = ("region_sink.png", "region_fluxes.png")


def write_budget(table: pd.DataFrame, regions: gpd.GeoDataFrame, out: Path) -> Path:
    """Write a budget table as CSV, JSON records, or GeoJSON features with the outlines."""
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".geojson":
        outlines = regions[["name", "geometry"]].to_crs("EPSG:4326")
        features = outlines.merge(table, on="name")
        partial = out.with_name(out.name + ".partial")
        features.to_file(partial, driver="GeoJSON")
        partial.replace(out)
    elif suffix == ".json":
        _atomic_text(out, table.to_json(orient="records", indent=2))
    else:
        _atomic_text(out, table.to_csv(index=False, float_format="%.6g"))
    return out


def _atomic_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


@dataclass(frozen=True)
class MaskReport:
    """What :func:`mask` wrote and how its areas compare with the sources'."""

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
        ``mask.zarr`` to write; a picture of the cover goes beside it (``mask.png``).
    vectors
        Vector files whose polygons name their ecosystem in ``ecosystem_column``.
    sources
        Ecosystem -> files mapping that ecosystem alone: vectors (any CRS) or rasters such
        as Global Mangrove Watch tiles (0/1, any CRS), e.g. ``{"mangrove": ["gmw.tif"]}``.
    ecosystem_column, classes
        Where vectors name their ecosystem, and how source classes map to ecosystems (see
        :func:`upscale.masks.read_wetland_vectors`).
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
    mask_png(built, picture)
    return MaskReport(path=out, picture=picture, areas=mask_areas(built, covers))


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest` wrote: the cube and the share of each driver's values filled."""

    path: Path
    gaps: dict[str, float]


def ingest(
    config: str | Path | IngestConfig, out: str | Path, *, overwrite: bool = False
) -> IngestReport:
    """Build the canonical monthly driver cube from local NetCDF, Zarr and GeoTIFF sources.

    Parameters
    ----------
    config
        An ingest config (YAML file or :class:`upscale.ingest.IngestConfig`): the target
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
    tile = min(DEFAULT_TILE, max(cube.sizes["y"], cube.sizes["x"]))
    write_store(cube.chunk({"time": -1, "y": tile, "x": tile}), out, overwrite=overwrite)
    return IngestReport(path=out, gaps=gap_summary(cube))


def fetch(
    project: str,
    out: str | Path,
    *,
    region: RegionSpec | Sequence[RegionSpec],
    crs: str,
    resolution: float,
    period: tuple[str, str],
    variables: Sequence[str] = EE_DRIVERS,
    catalogue: str | Path | None = None,
    service_account: str | None = None,
    key_file: str | Path | None = None,
    export_to: str | None = None,
    overwrite: bool = False,
) -> Path | list[str]:
    """Build the monthly driver cube of a region from Earth Engine.

    Parameters
    ----------
    project
        Google Cloud project with the Earth Engine API.
    out
        ``cube.zarr`` to write (resumable: a re-run fetches the missing tiles only).
    region
        What to cover, as for :func:`query`: catalogue names, files, bboxes (lon/lat) or
        GeoJSON/WKT polygons; the cube spans their bounding box.
    crs, resolution
        Target grid: any CRS, and the pixel size in its units.
    period
        First and last month, ``("YYYY-MM", "YYYY-MM")``.
    variables
        Canonical drivers (default: all of :data:`upscale.earthengine.EE_DRIVERS`).
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


def _export_destination(target: str) -> dict[str, str]:
    if target.startswith("gs://"):
        bucket, _, prefix = target.removeprefix("gs://").partition("/")
        return {"bucket": bucket, "prefix": prefix.strip("/") or "upscale"}
    if target.startswith("drive:"):
        return {"drive_folder": target.removeprefix("drive:")}
    raise FetchError(f"--export-to {target!r}: give gs://BUCKET[/PREFIX] or drive:FOLDER")


def list_regions(
    catalogue: str | Path | None = None, *, mask: str | Path | None = None
) -> pd.DataFrame:
    """List the catalogue regions: file, geodesic area, bounds, and wetland by ecosystem.

    Parameters
    ----------
    catalogue
        Catalogue folder (default ``$UPSCALE_REGIONS`` or ``./regions``).
    mask
        A wetland mask or ``maps.zarr``: adds the wetland area of each region per
        ecosystem (``<ecosystem>_km2``, 0 for regions off the mask).
    """
    regions = catalogue_regions(catalogue)
    table = catalogue_table(regions)
    if mask is not None:
        wetland = wetland_area_km2(regions, open_mask(mask))
        wetland.columns = [f"{column}_km2" for column in wetland.columns]
        table = table.merge(wetland, left_on="name", right_index=True)
    return table


def show_region(
    name: str, catalogue: str | Path | None = None, *, mask: str | Path | None = None
) -> pd.Series:
    """Return one catalogue region's row of :func:`list_regions`.

    Raises
    ------
    RegionError
        When the catalogue holds no region of that name.
    """
    table = list_regions(catalogue, mask=mask)
    match = table[table["name"] == name]
    if match.empty:
        raise RegionError(
            f"{name!r} is not in the catalogue; it holds {', '.join(map(repr, table['name']))}"
        )
    return match.iloc[0]


def _input_stamp(*paths: Path) -> str:
    """Fingerprint of input files (names, sizes, modification times) for caches."""
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def tower_series(
    sites: str | Path,
    cube: str | Path,
    config: TrainConfig,
    *,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
    cache: str | Path | None = None,
    status: Status = _status,
) -> SiteSeries:
    """Read the towers and the drivers at their pixels, reusing a cache when inputs match.

    Parameters
    ----------
    sites, cube
        Tower folder and driver cube.
    config
        Its features and targets select what is extracted; its ``site_drivers`` are taken
        from the towers' own data instead of the cube.
    partitioning
        NT or DT partitioned GPP and RE.
    site_drivers_table
        More drivers measured or extracted at the towers (``site_id, time, <DRIVER>...``).
    cache
        ``.npz`` file of the extracted series; reused when the inputs' files, features,
        site drivers, targets and partitioning are unchanged, rewritten otherwise.
    status
        Receives progress lines.
    """
    inputs = [Path(sites), Path(cube)] + ([Path(site_drivers_table)] if site_drivers_table else [])
    key = _input_stamp(*inputs) + repr(
        (config.features, config.site_drivers, config.targets, partitioning)
    )
    stamp = Path(f"{cache}.key") if cache else None
    if cache and Path(cache).exists() and stamp.exists() and stamp.read_text() == key:
        status(f"reusing the tower samples cached in {cache}")
        return SiteSeries.load(cache)
    series, measured = _cube_and_tower_drivers(
        sites, cube, config, partitioning, site_drivers_table
    )
    if config.site_drivers:
        series = with_site_drivers(series, measured, config.site_drivers)
    if cache:
        # The key goes last: a crash while writing leaves no key, so no stale reuse.
        stamp.unlink(missing_ok=True)
        partial = Path(f"{cache}.partial.npz")
        series.save(partial)
        partial.replace(cache)
        stamp.write_text(key)
    return series


def _cube_and_tower_drivers(
    sites: str | Path,
    cube: str | Path,
    config: TrainConfig,
    partitioning: Partitioning,
    site_drivers_table: str | Path | None,
) -> tuple[SiteSeries, pd.DataFrame]:
    """Tower series with the cube's drivers, and the drivers the towers measured."""
    site_data = read_sites(sites, partitioning=partitioning)
    drivers = open_cube(cube, config.features)
    series = extract_site_series(drivers, site_data, config.features, targets=config.targets)
    extra = read_site_drivers(site_drivers_table) if site_drivers_table else None
    return series, tower_drivers(site_data, extra)


def compare_drivers(
    sites: str | Path,
    cube: str | Path,
    *,
    features: Sequence[str] | None = None,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
) -> pd.DataFrame:
    """Agreement of the cube's drivers at each tower's pixel with the tower's own.

    See :func:`upscale.samples.driver_agreement`; ``features`` default to the canonical
    drivers the cube has.
    """
    if features is None:
        features = [f for f in DRIVERS if f in open_cube(cube, ()).data_vars]
    config = TrainConfig(features=tuple(features))
    series, measured = _cube_and_tower_drivers(
        sites, cube, config, partitioning, site_drivers_table
    )
    return driver_agreement(series, measured)


@dataclass(frozen=True)
class SweepReport:
    """What :func:`sweep` wrote, and the tables."""

    outputs: dict[str, Path]
    result: SweepResult


def sweep(
    sites: str | Path,
    cube: str | Path,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    architectures: Sequence[str] = ("lstm", "transformer"),
    memories: Sequence[int] = DEFAULT_MEMORIES,
    nee_modes: Sequence[str] = NEE_MODES,
    partitioning: Partitioning = "NT",
    workers: int | None = None,
    overwrite: bool = False,
    status: Status = _status,
) -> SweepReport:
    """Cross-validate architectures x memory lengths x ecosystems and choose the memory.

    Writes ``skill.csv`` (every run, fold by fold), ``optimum.csv`` (the memory chosen per
    ecosystem, architecture and flux), ``nee_modes.csv`` (NEE skill of each NEE mode) and
    ``skill_vs_memory.png`` into ``out``; the tower samples are cached in ``samples.npz``
    and reused by later sweeps on the same inputs. See :func:`upscale.sweep.run_sweep`.
    """
    out = Path(out)
    outputs = {
        "skill": out / "skill.csv",
        "optimum": out / "optimum.csv",
        "nee_modes": out / "nee_modes.csv",
        "figure": out / "skill_vs_memory.png",
    }
    refuse_overwrite(outputs.values(), overwrite=overwrite)
    config = config or TrainConfig()
    out.mkdir(parents=True, exist_ok=True)
    series = tower_series(
        sites, cube, config, partitioning=partitioning, cache=out / "samples.npz", status=status
    )
    _require_towers(series, sites, sorted(set(series.ecosystems)))
    result = run_sweep(
        series,
        config,
        architectures=architectures,
        memories=memories,
        nee_modes=nee_modes,
        workers=workers,
        progress=status,
    )
    result.skill.to_csv(outputs["skill"], index=False, float_format="%.4f")
    result.optimum.to_csv(outputs["optimum"], index=False, float_format="%.4f")
    result.nee_modes.to_csv(outputs["nee_modes"], index=False, float_format="%.4f")
    sweep_png(result.skill, result.optimum, outputs["figure"])
    return SweepReport(outputs=outputs | {"samples": out / "samples.npz"}, result=result)


@dataclass(frozen=True)
class ExplainReport:
    """What :func:`explain` wrote, and the explanations per ecosystem."""

    outputs: dict[str, Path]
    explanations: list[TowerExplanation]


def explain(
    sites: str | Path,
    cube: str | Path,
    models: Sequence[str | Path],
    out: str | Path,
    *,
    windows: int = 300,
    background: int = 200,
    samples: int = 64,
    seed: int = 0,
    null: bool = True,
    mask: str | Path | None = None,
    months: int = 4,
    period: tuple[str, str] | None = None,
    raster_samples: int = 16,
    partitioning: Partitioning = "NT",
    overwrite: bool = False,
    status: Status = _status,
) -> ExplainReport:
    """Explain trained models at their towers: drivers, lags and memory per flux.

    Writes ``importance.csv`` (mean |SHAP| per ecosystem, flux and driver, ranked),
    ``memory.csv`` (attribution-weighted mean lag, 50 % and 90 % cumulative lags, with the
    spread over ensemble members, the null model's and the distance to it, and the sampling),
    ``memory_profile.csv`` (share of mean
    |SHAP| per lag and driver), ``importance.png`` and ``memory_profile.png`` into ``out``.
    See :func:`upscale.attribution.explain_towers`.

    With a wetland ``mask``, also maps the explanation over the region: ``shap.zarr``
    (mean |SHAP| per target and driver, dominant driver, weighted mean lag per pixel, from
    ``months`` sampled months with ``raster_samples`` samples each; see
    :func:`upscale.shap_maps.shap_maps`) and its COGs in ``shap_cogs/``.
    """
    out = Path(out)
    outputs = {
        "importance": out / "importance.csv",
        "memory": out / "memory.csv",
        "profile": out / "memory_profile.csv",
        "importance_png": out / "importance.png",
        "profile_png": out / "memory_profile.png",
    }
    if mask is not None:
        outputs |= {"shap": out / "shap.zarr", "shap_cogs": out / "shap_cogs"}
    refuse_overwrite(outputs.values(), overwrite=overwrite)
    explanations = []
    extracted: dict[tuple, SiteSeries] = {}  # the models of one run share their features
    for folder in models:
        model = load_model(folder)
        key = (tuple(model.card.features), tuple(model.card.targets))
        if key not in extracted:
            config = TrainConfig(features=key[0], targets=key[1])
            extracted[key] = tower_series(
                sites, cube, config, partitioning=partitioning, status=status
            )
        series = extracted[key]
        towers = [s for s in model.card.sites if s in series.site_ids]
        if not towers:
            raise SiteDataError(
                f"{sites}: none of the towers of {folder} ({', '.join(model.card.sites)}); "
                "explain a model with the towers it was trained on"
            )
        status(
            f"explaining {folder} at {len(towers)} towers"
            + (" (and training its memoryless null)" if null else "")
        )
        explanations.append(
            explain_towers(
                model,
                series.subset(towers),
                windows=windows,
                background=background,
                samples=samples,
                seed=seed,
                null=null,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    importance = pd.concat(
        [e.attribution.importance().assign(ecosystem=e.ecosystem) for e in explanations]
    )
    importance.to_csv(outputs["importance"], index=False, float_format="%.5g")
    memory = pd.concat(
        [e.lag_summary().assign(**e.sampling) for e in explanations], ignore_index=True
    )
    memory.to_csv(outputs["memory"], index=False, float_format="%.4g")
    profile = pd.concat(
        [
            xr.DataArray(
                e.attribution.memory_profile(),
                dims=("target", "lag", "feature"),
                coords={"target": e.attribution.targets, "feature": e.attribution.features},
                name="share",
            )
            .to_dataframe()
            .reset_index()
            .assign(ecosystem=e.ecosystem)
            for e in explanations
        ]
    )
    profile.to_csv(outputs["profile"], index=False, float_format="%.4g")
    importance_png(explanations, outputs["importance_png"])
    memory_png(explanations, outputs["profile_png"])
    if mask is not None:
        folders = {
            e.ecosystem: Path(folder) for e, folder in zip(explanations, models, strict=True)
        }
        features = list(dict.fromkeys(f for key in extracted for f in key[0]))
        drivers = open_cube(cube, features)
        rasters = shap_maps(
            drivers,
            open_mask(mask, drivers),
            folders,
            months=months,
            period=period,
            samples=raster_samples,
            seed=seed,
        )
        with dask_progress(f"explaining every wetland pixel ({months} months each)"):
            write_store(rasters, outputs["shap"], overwrite=overwrite)
        export_shap_cogs(open_store(outputs["shap"]), outputs["shap_cogs"], overwrite=overwrite)
    return ExplainReport(outputs=outputs, explanations=explanations)


@dataclass(frozen=True)
class DemoReport:
    """What :func:`demo` produced: where, and how good."""

    outputs: dict[str, Path]
    sites: pd.DataFrame
    cv_metrics: pd.DataFrame
    truth_skill: pd.DataFrame
    budget: pd.DataFrame


def truth_skill(maps: xr.Dataset, truth: xr.Dataset) -> pd.DataFrame:
    """Score the mapped fluxes against the demo truth over wetland pixel-months."""
    maps, truth = valid_period(maps), truth.sel(time=valid_period(maps)["time"])
    wetland = maps[WETLAND] > 0
    return pd.DataFrame(
        [
            {"flux": name}
            | skill(truth[name].where(wetland).values, maps[name].where(wetland).values)
            for name in TARGETS
            if name in maps
        ]
    )


def demo(
    out: str | Path = "upscale-demo",
    *,
    overwrite: bool = False,
    spec: DemoSpec | None = None,
    config: TrainConfig | None = None,
    status: Status = _status,
) -> DemoReport:
    """Run the whole chain on the embedded demo region.

    Writes the demo inputs (cube, mask, truth, towers, regions), trains and cross-validates
    one model per ecosystem, maps the fluxes, exports COGs, queries the regions' budgets,
    draws quick-looks and compares the maps with the truth.

    Parameters
    ----------
    out
        Folder for everything; ``inputs/``, ``models/``, ``maps.zarr``, ``cogs/``,
        ``budget.csv`` and PNGs are written inside.
    overwrite
        Replace the outputs of an earlier demo in ``out``.
    spec
        Size of the demo region (tests use a small one).
    config
        Training settings.
    status
        Receives progress lines.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to run the demo again there")
    status("writing the demo region (south-west Florida coast)")
    region = make_demo_region(spec)
    inputs = write_demo_region(region, out / "inputs", overwrite=True)
    trained = train(
        inputs.sites,
        inputs.cube,
        out / "models",
        config=config,
        name="demo",
        overwrite=True,
        status=status,
    )
    maps_path = predict(
        inputs.cube, inputs.mask, list(trained.models.values()), out / "maps.zarr", overwrite=True
    )
    status("exporting Cloud-Optimized GeoTIFFs")
    cogs = export(maps_path, out / "cogs", overwrite=True)
    status("querying the regions' budgets")
    table = query(maps_path, inputs.regions, out=out / "budget.csv", plots=out, overwrite=True)
    maps = open_maps(maps_path)
    totals = annual_totals(maps)
    panels = {}
    for eco, (observed, predicted) in trained.held_out.items():
        for k, target in enumerate(TARGETS):
            panels[f"{target} {eco}"] = (
                observed[..., k],
                predicted[..., k],
                trained.metrics[eco][target]["all"],
            )
    outputs = {
        "inputs": out / "inputs",
        "models": out / "models",
        "maps": maps_path,
        "cogs": out / "cogs",
        "budget": out / "budget.csv",
        "maps_png": annual_maps_png(
            totals,
            out / "annual_maps.png",
            regions=read_regions(inputs.regions),
            sites=region.sites,
        ),
        "spread_png": uncertainty_png(
            totals, maps[EXTRAPOLATED.name], out / "uncertainty_maps.png", sites=region.sites
        ),
        "cv_png": cv_scatter_png(panels, out / "cross_validation.png"),
        "region_sink": out / QUERY_PICTURES[0],
        "region_fluxes": out / QUERY_PICTURES[1],
    }
    status(f"{len(cogs)} COGs written")
    site_table = read_sites(inputs.sites).fluxes.groupby("site_id")["GPP"].count()
    sites = region.sites.assign(months=site_table)
    return DemoReport(
        outputs=outputs,
        sites=sites,
        cv_metrics=trained.skill_table(),
        truth_skill=truth_skill(maps, open_store(inputs.truth)),
        budget=table,
    )
