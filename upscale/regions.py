"""Named regions: masks on the map grid, pixel areas, and carbon budgets per region and year."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import regionmask
import xarray as xr
from pyproj import CRS, Geod

from upscale.annual import annual_totals
from upscale.errors import RegionError
from upscale.schema import ANNUAL_FLUX_UNITS, ECOSYSTEMS, TOTAL_UNITS, WETLAND, WETLAND_FRACTION


def read_regions(path: str | Path) -> gpd.GeoDataFrame:
    """Read a vector file of named regions (any format and CRS GDAL reads).

    Raises
    ------
    RegionError
        When the file cannot be read, is empty, or has no unique ``name`` column.
    """
    path = Path(path)
    try:
        regions = gpd.read_file(path)
    except Exception as err:  # GDAL raises many types; all mean the same to the user
        raise RegionError(f"{path}: not a readable vector file ({err})") from None
    if "name" not in regions.columns:
        raise RegionError(f"{path}: no 'name' column; name each region in a 'name' column")
    if regions.empty:
        raise RegionError(f"{path}: holds no region")
    if regions["name"].duplicated().any():
        dupes = sorted(set(regions.loc[regions["name"].duplicated(), "name"]))
        raise RegionError(f"{path}: duplicated region names {dupes}; names must be unique")
    if regions.crs is None:
        raise RegionError(f"{path}: no CRS; set one (e.g. EPSG:4326) in the file")
    return regions


def pixel_areas(grid: xr.Dataset) -> xr.DataArray:
    """Area of each pixel in m².

    Geodesic (WGS84 ellipsoid) on geographic grids, computed once per row with the edges
    along parallels densified; the cell size on projected grids.

    Parameters
    ----------
    grid
        Dataset with regular ``y``/``x`` pixel-centre coordinates and a CRS.
    """
    crs = CRS.from_user_input(grid.rio.crs)
    dx = abs(float(grid["x"][1] - grid["x"][0]))
    dy = abs(float(grid["y"][1] - grid["y"][0]))
    if crs.is_geographic:
        geod = Geod(ellps="WGS84")
        # Densify the edges along parallels: a geodesic between two corners bows poleward.
        along = np.linspace(0.0, dx, 33)
        lons = np.concatenate([along, along[::-1]])
        rows = []
        for lat in grid["y"].values:
            lats = np.repeat([lat - dy / 2, lat + dy / 2], len(along))
            rows.append(abs(geod.polygon_area_perimeter(lons, lats)[0]))
        per_row = np.asarray(rows)
    else:
        per_row = np.full(grid.sizes["y"], dx * dy * crs.axis_info[0].unit_conversion_factor ** 2)
    area = xr.DataArray(per_row, dims="y", coords={"y": grid["y"]}) * xr.ones_like(
        grid["x"], dtype="float64"
    )
    area.attrs = {"units": "m2", "long_name": "pixel area"}
    return area.transpose("y", "x")


def region_masks(regions: gpd.GeoDataFrame, grid: xr.Dataset) -> xr.DataArray:
    """Boolean masks ``(region, y, x)`` of pixel centres inside each region.

    Regions are reprojected to the grid's CRS first; overlapping regions are allowed.
    """
    regions = regions.to_crs(grid.rio.crs).reset_index(drop=True)
    masks = regionmask.mask_3D_geopandas(
        regions, grid["x"].values, grid["y"].values, drop=False, wrap_lon=False, overlap=True
    )
    masks = masks.rename(lon="x", lat="y").assign_coords(x=grid["x"], y=grid["y"])
    return masks.assign_coords(region=regions["name"].to_numpy()).drop_vars(
        [c for c in masks.coords if c not in ("region", "x", "y")]
    )


def budget(maps: xr.Dataset, regions: gpd.GeoDataFrame) -> pd.DataFrame:
    """Carbon budget per region and complete year.

    Wetland area is the sum of pixel area x ``wetland_fraction`` over wetland pixels whose
    centre lies in the region. Totals integrate annual fluxes over that area; means divide
    the totals by it.

    Parameters
    ----------
    maps
        Flux maps with ``wetland`` and ``wetland_fraction`` (as written by ``predict``).
    regions
        Regions with a ``name`` column, any CRS.

    Returns
    -------
    pandas.DataFrame
        One row per region and year: ``area_km2`` and ``<ecosystem>_area_km2``,
        ``<FLUX>_mean`` (gC m-2 yr-1), ``<FLUX>_total`` (Gg C yr-1) and ``sink_total``
        (-NEE, Gg C yr-1).
    """
    totals = annual_totals(maps)
    wetland = maps[WETLAND]
    weight = pixel_areas(maps) * maps[WETLAND_FRACTION].where(wetland > 0, 0.0)
    masks = region_masks(regions, maps)
    area_by_region = xr.dot(masks, weight, dim=["y", "x"])  # m2
    columns: dict[str, xr.DataArray] = {"area_km2": area_by_region / 1e6}
    for code, eco in ECOSYSTEMS.items():
        eco_weight = weight.where(wetland == code, 0.0)
        columns[f"{eco}_area_km2"] = xr.dot(masks, eco_weight, dim=["y", "x"]) / 1e6
    for name in totals.data_vars:
        flux = totals[name].where(wetland > 0, 0.0)  # keeps NaN on wetland pixels visible
        grams = xr.dot(masks, flux * weight, dim=["y", "x"])
        columns[f"{name}_total"] = grams / 1e9
        columns[f"{name}_mean"] = grams / area_by_region
    if "NEE_total" in columns:
        columns["sink_total"] = -columns["NEE_total"]
    table = xr.Dataset(columns).compute().to_dataframe().reset_index()
    table = table.rename(columns={"region": "name"})
    order = ["name", "year", "area_km2", *(f"{e}_area_km2" for e in ECOSYSTEMS.values())]
    order += [c for c in table.columns if c.endswith("_mean")]
    order += [c for c in table.columns if c.endswith("_total")]
    table = table[order]
    table.attrs["units"] = {"area": "km2", "mean": ANNUAL_FLUX_UNITS, "total": TOTAL_UNITS}
    return table
