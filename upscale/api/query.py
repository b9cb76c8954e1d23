"""Query: carbon budgets of regions from the flux maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd

from upscale.api._common import TABLE_SUFFIXES
from upscale.budgets.annual import annual_totals
from upscale.budgets.catalogue import resolve_regions
from upscale.budgets.regions import BudgetStep, budget
from upscale.errors import InvalidRegionsError
from upscale.io.durable import refuse_overwrite, staged, write_text
from upscale.io.stores import open_maps
from upscale.report.plots import region_fluxes_figure, region_sink_figure, save_png

RegionSpec = str | Path
"""A region for a query: a catalogue name, a vector file, a bbox, or a GeoJSON/WKT polygon."""


def query(
    maps: str | Path,
    regions: RegionSpec | Sequence[RegionSpec] | gpd.GeoDataFrame,
    *,
    by: BudgetStep = "year",
    catalogue: str | Path | None = None,
    crs: str | None = None,
    out: str | Path | None = None,
    plots: str | Path | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Carbon budget per region, ecosystem and year or month (see `budget`).

    Parameters
    ----------
    maps
        ``maps.zarr`` written by [`predict`][upscale.api.predict.predict].
    regions
        Region(s) to budget: names from the catalogue, vector files with a ``name``
        column, bounding boxes ``west,south,east,north``, GeoJSON or WKT polygons (see
        [`resolve_regions`][upscale.budgets.catalogue.resolve_regions]), or a GeoDataFrame.
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
        raise InvalidRegionsError(f"{out}: write the budget as .csv, .json or .geojson")
    pictures = [Path(plots) / name for name in QUERY_PICTURES] if plots is not None else []
    refuse_overwrite([p for p in [out, *pictures] if p is not None], overwrite=overwrite)
    if isinstance(regions, gpd.GeoDataFrame):
        shapes = regions
    else:
        shapes = resolve_regions(regions, catalogue=catalogue, crs=crs)
    fluxes = open_maps(maps)
    table = budget(fluxes, shapes, by=by)
    # Everything that can fail is computed before anything is written.
    totals = annual_totals(fluxes) if pictures else None
    monthly = table if by == "month" or not pictures else budget(fluxes, shapes, by="month")
    if out is not None:
        write_budget(table, shapes, Path(out))
    if pictures:
        pictures[0].parent.mkdir(parents=True, exist_ok=True)
        save_png(region_sink_figure(totals, shapes), pictures[0])
        save_png(region_fluxes_figure(monthly), pictures[1])
    return table


QUERY_PICTURES = ("region_sink.png", "region_fluxes.png")


def write_budget(table: pd.DataFrame, regions: gpd.GeoDataFrame, out: Path) -> Path:
    """Write a budget table as CSV, JSON records, or GeoJSON features with the outlines."""
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".geojson":
        outlines = regions[["name", "geometry"]].to_crs("EPSG:4326")
        features = outlines.merge(table, on="name")
        with staged(out, overwrite=True) as partial:
            features.to_file(partial, driver="GeoJSON")
    elif suffix == ".json":
        write_text(out, table.to_json(orient="records", indent=2))
    else:
        write_text(out, table.to_csv(index=False, float_format="%.6g"))
    return out
