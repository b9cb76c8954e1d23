"""Named regions: masks on the map grid, pixel areas, and carbon budgets per region and year."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import regionmask
import xarray as xr
from pyproj import CRS, Geod, Transformer

from upscale.annual import annual_totals
from upscale.errors import RegionError
from upscale.schema import (
    ANNUAL_FLUX_UNITS,
    ECOSYSTEMS,
    FLUXES,
    SPREAD_SUFFIX,
    TARGETS,
    TOTAL_UNITS,
    WETLAND,
    WETLAND_FRACTION,
    spread_name,
)


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
    """Area of each pixel on the WGS84 ellipsoid, in m².

    Parameters
    ----------
    grid
        Dataset with regular ``y``/``x`` pixel-centre coordinates and a CRS.

    Notes
    -----
    On geographic grids every pixel of a row has the same area: one geodesic polygon per
    row, with the edges along parallels densified (a geodesic between two corners bows
    poleward). On projected grids the nominal cell size is not the area on the ground
    (Web Mercator cells at 25 N are about 20 % smaller than they look), so the cell
    corners are moved to a Lambert azimuthal equal-area projection centred on the grid,
    where planar areas are ellipsoidal areas.
    """
    crs = CRS.from_user_input(grid.rio.crs)
    if crs.is_geographic:
        dx = abs(float(grid["x"][1] - grid["x"][0]))
        dy = abs(float(grid["y"][1] - grid["y"][0]))
        geod = Geod(ellps="WGS84")
        along = np.linspace(0.0, dx, 33)
        lons = np.concatenate([along, along[::-1]])
        rows = []
        for lat in grid["y"].values:
            lats = np.repeat([lat - dy / 2, lat + dy / 2], len(along))
            rows.append(abs(geod.polygon_area_perimeter(lons, lats)[0]))
        values = np.asarray(rows)[:, None] * np.ones(grid.sizes["x"])
    else:
        values = _equal_area_cells(grid, crs)
    area = xr.DataArray(values, dims=("y", "x"), coords={"y": grid["y"], "x": grid["x"]})
    area.attrs = {"units": "m2", "long_name": "pixel area"}
    return area


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of regularly spaced centres (ascending or descending)."""
    step = centres[1] - centres[0]
    return np.append(centres - step / 2, centres[-1] + step / 2)


def _equal_area_cells(grid: xr.Dataset, crs: CRS) -> np.ndarray:
    """Ellipsoidal areas of projected cells, from their corners in an equal-area projection."""
    corner_x, corner_y = np.meshgrid(_edges(grid["x"].values), _edges(grid["y"].values))
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(corner_x, corner_y)
    laea = CRS.from_proj4(
        f"+proj=laea +lat_0={lat.mean()} +lon_0={lon.mean()} +ellps=WGS84 +units=m"
    )
    ex, ey = Transformer.from_crs("EPSG:4326", laea, always_xy=True).transform(lon, lat)
    # Shoelace formula over the four corners of every cell at once.
    ring = [
        (slice(None, -1), slice(None, -1)),
        (slice(None, -1), slice(1, None)),
        (slice(1, None), slice(1, None)),
        (slice(1, None), slice(None, -1)),
    ]
    twice = sum(
        ex[a] * ey[b] - ex[b] * ey[a] for a, b in zip(ring, ring[1:] + ring[:1], strict=True)
    )
    return np.abs(twice) / 2


def region_masks(regions: gpd.GeoDataFrame, grid: xr.Dataset) -> xr.DataArray:
    """Boolean masks ``(region, y, x)`` of pixel centres inside each region.

    Regions are reprojected to the grid's CRS first; overlapping regions are allowed.
    """
    regions = regions.to_crs(grid.rio.crs).reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # regions without pixels: raised below
        masks = regionmask.mask_3D_geopandas(
            regions, grid["x"].values, grid["y"].values, drop=False, wrap_lon=False, overlap=True
        )
    empty = regions.loc[~masks.any(["lat", "lon"]).values, "name"].tolist()
    if empty:
        raise RegionError(
            f"region(s) {', '.join(map(str, empty))} contain no pixel centre of the maps; "
            "check their extent and CRS"
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
        (-NEE, Gg C yr-1); with ``_std`` columns when the maps carry the ensemble spread.

    Notes
    -----
    The spread of a total sums the pixels' spreads: the members' errors are taken as fully
    correlated between pixels and months, so it is an upper bound on the ensemble spread
    of the total (per-member maps would be needed for the exact value).
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
    for flux in FLUXES:
        for name, suffix in ((flux, ""), (spread_name(flux), SPREAD_SUFFIX)):
            if name not in totals:
                continue
            values = totals[name].where(wetland > 0, 0.0)  # keeps NaN on wetland visible
            grams = xr.dot(masks, values * weight, dim=["y", "x"])
            columns[f"{flux}_mean{suffix}"] = grams / area_by_region
            columns[f"{flux}_total{suffix}"] = grams / 1e9
    nee = TARGETS[2]
    if f"{nee}_total" in columns:
        columns["sink_total"] = -columns[f"{nee}_total"]
    if f"{nee}_total{SPREAD_SUFFIX}" in columns:
        columns[f"sink_total{SPREAD_SUFFIX}"] = columns[f"{nee}_total{SPREAD_SUFFIX}"]
    table = xr.Dataset(columns).compute().to_dataframe().reset_index()
    table = table.rename(columns={"region": "name"})
    order = ["name", "year", "area_km2", *(f"{e}_area_km2" for e in ECOSYSTEMS.values())]
    order += [c for c in table.columns if "_mean" in c]
    order += [c for c in table.columns if "_total" in c]
    table = table[order]
    table.attrs["units"] = {"area": "km2", "mean": ANNUAL_FLUX_UNITS, "total": TOTAL_UNITS}
    return table
