"""The cube pixel under each tower: where it lies, how far from the tower, what it holds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import Geod, Transformer

from upscale.errors import InvalidTowerDataError
from upscale.schema import CUBE_DIMS, DRIVERS
from upscale.towers.monthly import SITE_ID, TIME

PIXEL_COLUMNS = (
    "lat",
    "lon",
    "row",
    "col",
    "pixel_x",
    "pixel_y",
    "pixel_lon",
    "pixel_lat",
    "distance_m",
)
"""Columns of [`tower_pixels`][upscale.towers.pixels.tower_pixels] after ``site_id``."""

_GEOD = Geod(ellps="WGS84")


def site_pixels(cube: xr.Dataset, meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the cube pixel that contains each tower.

    Parameters
    ----------
    cube
        Cube with ``y``/``x`` pixel-centre coordinates and a CRS.
    meta
        ``lat``/``lon`` (WGS84) indexed by ``site_id``.

    Raises
    ------
    InvalidTowerDataError
        Naming the towers that fall outside the cube's extent.
    """
    to_cube = Transformer.from_crs("EPSG:4326", cube.rio.crs, always_xy=True)
    xs, ys = to_cube.transform(meta["lon"].to_numpy(), meta["lat"].to_numpy())
    x0, dx = float(cube["x"][0]), float(cube["x"][1] - cube["x"][0])
    y0, dy = float(cube["y"][0]), float(cube["y"][1] - cube["y"][0])
    cols = np.floor((xs - x0) / dx + 0.5).astype(int)
    rows = np.floor((ys - y0) / dy + 0.5).astype(int)
    outside = (cols < 0) | (cols >= cube.sizes["x"]) | (rows < 0) | (rows >= cube.sizes["y"])
    if outside.any():
        raise InvalidTowerDataError(
            f"site(s) outside the cube extent: {located(meta[outside])}; remove them from "
            "sites.csv or use a cube that covers them"
        )
    return rows, cols


def located(meta: pd.DataFrame) -> str:
    """Name towers with their coordinates, for messages: ``US-Skr (25.3629 N, -81.0776 E)``."""
    return ", ".join(
        f"{site} ({lat:.4f} N, {lon:.4f} E)" for site, lat, lon in meta[["lat", "lon"]].itertuples()
    )


def monthly_variables(cube: xr.Dataset) -> list[str]:
    """Return the data variables of a cube with dims ``(time, y, x)``, in a stable order.

    The canonical drivers come in the schema's order, then the others by name: a Zarr v3
    store lists its arrays in the order the file system gives, which changes between opens.
    """
    names = [str(name) for name, var in cube.data_vars.items() if set(var.dims) == set(CUBE_DIMS)]
    return [d for d in DRIVERS if d in names] + sorted(n for n in names if n not in DRIVERS)


def tower_pixels(cube: xr.Dataset, meta: pd.DataFrame) -> pd.DataFrame:
    """Find the cube pixel containing each tower, and the geodesic distance to its centre.

    Parameters
    ----------
    cube
        Cube with ``y``/``x`` pixel-centre coordinates and a CRS.
    meta
        ``lat``/``lon`` (degrees WGS84) indexed by ``site_id``.

    Returns
    -------
    pandas.DataFrame
        One row per tower in ``meta``'s order: ``site_id``, the tower's ``lat``/``lon``, the
        pixel's ``row``/``col``, its centre in the cube's CRS (``pixel_x``/``pixel_y``) and
        in degrees WGS84 (``pixel_lon``/``pixel_lat``), and ``distance_m`` (metres on the
        WGS84 ellipsoid, tower to pixel centre).

    Raises
    ------
    InvalidTowerDataError
        Naming the towers outside the cube's extent.
    """
    rows, cols = site_pixels(cube, meta)
    xs, ys = cube["x"].values[cols].astype(float), cube["y"].values[rows].astype(float)
    to_wgs84 = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    lons, lats = to_wgs84.transform(xs, ys)
    _, _, distance = _GEOD.inv(meta["lon"].to_numpy(), meta["lat"].to_numpy(), lons, lats)
    table = pd.DataFrame(
        {
            "lat": meta["lat"].to_numpy(),
            "lon": meta["lon"].to_numpy(),
            "row": rows,
            "col": cols,
            "pixel_x": xs,
            "pixel_y": ys,
            "pixel_lon": lons,
            "pixel_lat": lats,
            "distance_m": distance,
        },
        index=meta.index.rename(SITE_ID),
    )
    return table.reset_index()


def drivers_at_towers(
    cube: xr.Dataset, meta: pd.DataFrame, features: Sequence[str]
) -> pd.DataFrame:
    """Monthly drivers of the cube at the pixel under each tower, as a tidy table.

    Only the towers' pixels are read: one vectorised selection of a lazy cube, loaded in
    one compute (the chunks holding a tower, never the whole cube).

    Parameters
    ----------
    cube
        Validated driver cube (lazy or not).
    meta
        ``lat``/``lon`` (degrees WGS84) indexed by ``site_id``.
    features
        Driver variables with dims ``(time, y, x)``, in the order of the columns.

    Returns
    -------
    pandas.DataFrame
        ``site_id``, ``time``, then one column per feature, rows by tower (``meta``'s order)
        then month; NaN where the cube has no value.

    Raises
    ------
    InvalidTowerDataError
        Naming the towers outside the cube's extent.
    """
    features = list(features)
    rows, cols = site_pixels(cube, meta)
    at_towers = (
        cube[features]
        .isel(y=xr.DataArray(rows, dims="site"), x=xr.DataArray(cols, dims="site"))
        .drop_vars(["y", "x", "spatial_ref"], errors="ignore")
        .load()
    )
    times = pd.DatetimeIndex(at_towers["time"].values)
    index = pd.MultiIndex.from_product([meta.index, times], names=[SITE_ID, TIME])
    values = {
        name: at_towers[name].transpose("site", "time").values.reshape(-1) for name in features
    }
    return pd.DataFrame(values, index=index).reset_index()
