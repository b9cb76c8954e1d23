"""Carbon budgets of named regions: region weights on the map grid and zonal totals.

A budget integrates flux x pixel area x wetland fraction x the share of the pixel inside
the region, for every region, ecosystem and period at once: one weighted sum over the maps
(``xarray.dot`` on dask arrays), never a loop over pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from pyproj import Geod

from upscale.budgets.annual import annual_totals, monthly_amounts
from upscale.errors import InvalidRegionsError
from upscale.grid import cover_fraction, grid_crs, grid_outline, pixel_areas
from upscale.io.vectors import read_vector
from upscale.schema import (
    ANNUAL_FLUX_UNITS,
    ECOSYSTEMS,
    FLUXES,
    MONTHLY_FLUX_UNITS,
    MONTHLY_TOTAL_UNITS,
    SPREAD_SUFFIX,
    TARGETS,
    TOTAL_UNITS,
    WETLAND,
    WETLAND_FRACTION,
    cover_name,
    spread_name,
)

BudgetStep = Literal["year", "month"]
"""The time step of a budget: one row per region and year, or per region and month."""

_GEOD = Geod(ellps="WGS84")

ALL_WETLAND = "wetland"
"""``ecosystem`` of budget rows over all wetland of a region."""


def read_regions(path: str | Path) -> gpd.GeoDataFrame:
    """Read a vector file of named regions (any format and CRS GDAL reads).

    Raises
    ------
    InvalidRegionsError
        When the file cannot be read, is empty, has no CRS, or has no unique ``name`` column.
    """
    path = Path(path)
    regions = read_vector(path, InvalidRegionsError)
    if "name" not in regions.columns:
        raise InvalidRegionsError(f"{path}: no 'name' column; name each region in a 'name' column")
    if regions.empty:
        raise InvalidRegionsError(f"{path}: holds no region")
    if regions["name"].duplicated().any():
        dupes = sorted(set(regions.loc[regions["name"].duplicated(), "name"]))
        raise InvalidRegionsError(f"{path}: duplicated region names {dupes}; names must be unique")
    if regions.crs is None:
        raise InvalidRegionsError(f"{path}: no CRS; set one (e.g. EPSG:4326) in the file")
    return valid_regions(regions, str(path))


def valid_regions(regions: gpd.GeoDataFrame, source: str) -> gpd.GeoDataFrame:
    """Regions with repaired geometries, or a InvalidRegionsError naming empty or non-areal ones."""
    unnamed = regions["name"].isna() | (regions["name"].astype(str).str.strip() == "")
    if unnamed.any():
        raise InvalidRegionsError(
            f"{source}: {int(unnamed.sum())} region(s) without a name; name every region"
        )
    if regions.geometry.isna().any():
        raise InvalidRegionsError(
            f"{source}: region(s) {regions.loc[regions.geometry.isna(), 'name'].tolist()} have "
            "no geometry; remove them or draw them"
        )
    regions = regions.assign(name=regions["name"].astype(str))
    regions["geometry"] = shapely.make_valid(regions.geometry.values)
    areal = pd.Series(shapely.area(regions.geometry.values) > 0, index=regions.index)
    if not areal.all():
        names = regions.loc[~areal, "name"].tolist()
        raise InvalidRegionsError(
            f"{source}: region(s) {names} have no area (empty, points or lines); "
            "regions must be polygons"
        )
    return regions


PARTLY_INSIDE = 0.99
"""Below this share of its area on the maps, a region's budget comes with a warning."""


def region_weights(
    regions: gpd.GeoDataFrame, grid: xr.Dataset, *, require_overlap: bool = True
) -> xr.DataArray:
    """Share of each pixel's area inside each region, ``(region, y, x)`` in 0..1.

    Regions are reprojected to the grid's CRS; overlapping regions are allowed (each
    gets its own layer). Pixels on a region's edge count with the share of their area
    inside it, so a budget does not depend on where pixel centres happen to fall.

    Raises
    ------
    InvalidRegionsError
        When a region does not overlap the grid and ``require_overlap`` is set.
    """
    crs = grid_crs(grid)
    shapes = regions.to_crs(crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate slivers of make_valid
        layers = np.stack([cover_fraction(shape, grid) for shape in shapes.geometry.values])
    outside = [name for name, layer in zip(regions["name"], layers, strict=True) if not layer.any()]
    if outside and require_overlap:
        raise InvalidRegionsError(
            f"region(s) {', '.join(map(str, outside))} do not overlap the maps; "
            "check their extent and CRS"
        )
    outline = grid_outline(grid)
    for name, shape in zip(regions["name"], shapes.geometry.values, strict=True):
        inside = shape.intersection(outline).area / shape.area if shape.area else 1.0
        if 0 < inside < PARTLY_INSIDE:
            warnings.warn(
                f"region {name}: only {inside:.0%} of its area lies on the maps; its budget "
                "counts that part alone (maps of a larger extent would count the rest)",
                UserWarning,
                stacklevel=2,
            )
    return xr.DataArray(
        layers.astype("float32"),
        dims=("region", "y", "x"),
        coords={"region": regions["name"].to_numpy(), "y": grid["y"], "x": grid["x"]},
    )


def ecosystem_weights(maps: xr.Dataset, areas: xr.DataArray) -> xr.DataArray:
    """Wetland area of each pixel per ecosystem, ``(ecosystem, y, x)`` in m².

    The first layer, ``wetland``, is all wetland: pixel area x ``wetland_fraction``. The
    others take each ecosystem's own cover (``mangrove_fraction``...) where the maps carry
    it (masks built by ``upscale mask``), so a mixed pixel counts in both; otherwise the
    whole pixel counts for the ecosystem it is mapped as.

    Parameters
    ----------
    maps
        Maps or mask with ``wetland``, ``wetland_fraction`` and optionally the covers.
    areas
        Pixel areas (m²) on the same grid ([`pixel_areas`][upscale.grid.pixel_areas]).
    """
    wetland = maps[WETLAND]
    layers = [areas * maps[WETLAND_FRACTION].where(wetland > 0, 0.0)]
    for code, name in ECOSYSTEMS.items():
        cover = cover_name(name)
        if cover in maps:
            layers.append(areas * maps[cover].where(wetland > 0, 0.0))
        else:
            layers.append(layers[0].where(wetland == code, 0.0))
    names = [ALL_WETLAND, *ECOSYSTEMS.values()]
    return xr.concat(layers, dim=pd.Index(names, name="ecosystem")).astype("float64")


def budget(maps: xr.Dataset, regions: gpd.GeoDataFrame, *, by: BudgetStep = "year") -> pd.DataFrame:
    """Carbon budget per region, ecosystem and year (or month).

    Parameters
    ----------
    maps
        Flux maps with ``wetland`` and ``wetland_fraction`` (as written by ``predict``).
    regions
        Regions with a ``name`` column, any CRS.
    by
        ``"year"``: complete calendar years, means in gC m-2 yr-1 and totals in Gg C yr-1;
        ``"month"``: every valid month, in gC m-2 month-1 and Gg C month-1.

    Returns
    -------
    pandas.DataFrame
        One row per region, period (``year``, or ``month`` as ``YYYY-MM``) and ecosystem
        (``wetland`` for all, then each ecosystem with area in the region): ``area_km2``,
        ``<FLUX>_mean``, ``<FLUX>_total``, ``sink_mean`` and ``sink_total`` (-NEE); with
        ``_std`` columns when the maps carry the ensemble spread; ``mean_units`` and
        ``total_units`` (also in ``table.attrs["units"]``). A row is NaN where a wetland
        pixel it counts has no flux (a gap in the maps), never filled in silently.

    Raises
    ------
    InvalidRegionsError
        When a region does not overlap the maps, or ``by`` is unknown.

    Notes
    -----
    Only the bounding window of all regions is read. The spread of a total sums the
    pixels' spreads: the members' errors are taken as fully correlated between pixels and
    months, so it is an upper bound on the ensemble spread of the total (per-member maps
    would be needed for the exact value).
    """
    if by not in ("year", "month"):
        raise InvalidRegionsError(f"budget by {by!r}: choose 'year' or 'month'")
    weights = region_weights(regions, maps)
    window = _window(weights)
    areas = pixel_areas(maps).isel(window)  # on the whole grid: a window may be one pixel
    weights, maps = weights.isel(window), maps.isel(window)
    amounts = annual_totals(maps) if by == "year" else monthly_amounts(maps)
    # m2 of each pixel counted for each region and ecosystem: small next to the maps.
    area_weights = (weights * ecosystem_weights(maps, areas)).compute()
    area = area_weights.sum(["y", "x"])
    columns: dict[str, xr.DataArray] = {"area_km2": area / 1e6}
    for flux in FLUXES:
        for name, suffix in ((flux, ""), (spread_name(flux), SPREAD_SUFFIX)):
            if name in amounts:
                grams = _weighted_sum(area_weights, amounts[name], maps[WETLAND] > 0)
                columns[f"{flux}_mean{suffix}"] = grams / area.where(area > 0)
                columns[f"{flux}_total{suffix}"] = grams / 1e9
    nee = TARGETS[2]
    for suffix in ("", SPREAD_SUFFIX):
        for kind in ("mean", "total"):
            if f"{nee}_{kind}{suffix}" in columns:
                sign = 1 if suffix else -1  # the spread of -NEE is the spread of NEE
                columns[f"sink_{kind}{suffix}"] = sign * columns[f"{nee}_{kind}{suffix}"]
    table = xr.Dataset(columns).compute().to_dataframe().reset_index()
    table = table.rename(columns={"region": "name"})
    if by == "month":
        table = table.rename(columns={"time": "month"})
        table["month"] = pd.DatetimeIndex(table["month"]).strftime("%Y-%m")
    keep = (table["ecosystem"] == ALL_WETLAND) | (table["area_km2"] > 0)
    # Regions in the order given, then periods, then all wetland before each ecosystem.
    region_order = pd.Categorical(table["name"], categories=list(regions["name"]), ordered=True)
    table = table[keep].assign(_region=region_order[keep.to_numpy()])
    table = table.sort_values(["_region", by], kind="stable").drop(columns="_region")
    order = ["name", by, "ecosystem", "area_km2"]
    order += [c for c in table.columns if "_mean" in c]
    order += [c for c in table.columns if "_total" in c]
    table = table[order].reset_index(drop=True)
    units = {
        "area": "km2",
        "mean": ANNUAL_FLUX_UNITS if by == "year" else MONTHLY_FLUX_UNITS,
        "total": TOTAL_UNITS if by == "year" else MONTHLY_TOTAL_UNITS,
    }
    # In the rows too: CSV, JSON and GeoJSON keep no table attributes.
    table["mean_units"], table["total_units"] = units["mean"], units["total"]
    table.attrs["units"] = units
    return table


def wetland_area_km2(regions: gpd.GeoDataFrame, mask: xr.Dataset) -> pd.DataFrame:
    """Wetland area of each region per ecosystem (km²), regions off the mask at 0.

    Parameters
    ----------
    regions
        Regions with a ``name`` column, any CRS.
    mask
        A wetland mask or maps store (``wetland``, ``wetland_fraction``).

    Returns
    -------
    pandas.DataFrame
        Indexed by region name, one column per ecosystem and ``wetland`` for all.
    """
    weights = region_weights(regions, mask, require_overlap=False)
    area = xr.dot(weights, ecosystem_weights(mask, pixel_areas(mask)), dim=["y", "x"]) / 1e6
    return area.to_pandas()


def _weighted_sum(
    area_weights: xr.DataArray, values: xr.DataArray, wetland: xr.DataArray
) -> xr.DataArray:
    """Sum of values x m² per region and ecosystem; NaN only where a NaN pixel counts.

    Fluxes are NaN off wetland (weight 0 there) and may be NaN on wetland (a gap the user
    must see). A plain dot would let 0 x NaN spoil every region sharing the graph, so NaN
    are zeroed for the sum and counted apart: a row is NaN exactly when one of its
    weighted wetland pixels is.
    """
    missing = values.isnull() & wetland
    # optimize=True lets einsum hand the sum to BLAS (3x faster for many regions)
    total = xr.dot(area_weights, values.fillna(0.0), dim=["y", "x"], optimize=True)
    hits = xr.dot(area_weights, missing.astype("float64"), dim=["y", "x"], optimize=True)
    return total.where(hits == 0)


def _window(weights: xr.DataArray) -> dict[str, slice]:
    """Index window of the pixels any region touches."""
    touched = (weights > 0).any("region").values
    rows, cols = np.flatnonzero(touched.any(1)), np.flatnonzero(touched.any(0))
    return {"y": slice(rows[0], rows[-1] + 1), "x": slice(cols[0], cols[-1] + 1)}


def in_lonlat(regions: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the regions in EPSG:4326, their edges densified in their own CRS first.

    A straight edge in a projected CRS is a curve in lon/lat (and a geodesic between two
    vertices is neither); densifying every 0.01 degree or 1 km keeps the shape.
    """
    step = 0.01 if regions.crs.is_geographic else 1000.0
    return regions.set_geometry(regions.geometry.segmentize(step)).to_crs("EPSG:4326")


def region_area_km2(regions: gpd.GeoDataFrame) -> pd.Series:
    """Area of each region on the WGS84 ellipsoid (km²), indexed by name."""
    dense = in_lonlat(regions).geometry
    areas = [abs(_GEOD.geometry_area_perimeter(shape)[0]) / 1e6 for shape in dense]
    return pd.Series(areas, index=regions["name"].to_numpy(), name="area_km2")
