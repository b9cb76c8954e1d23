"""Export maps to Cloud-Optimized GeoTIFFs for GIS: one file per variable, bands over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import xarray as xr
from dask.utils import SerializableLock
from rasterio.shutil import copy
from rio_cogeo.cogeo import cog_validate

from upscale.annual import annual_totals, valid_period
from upscale.locking import output_lock
from upscale.netcdf import NETCDF_NAME, write_netcdf
from upscale.options import OPTIONS
from upscale.resume import resumable
from upscale.schema import EXTRAPOLATED, FLUXES, spread_name

Period = Literal["annual", "monthly"]

EXPORT_PLAN = ".upscale-export.json"
"""File in the export folder recording an export under way (see `upscale.resume`)."""


STAGED_BLOCK = 256
"""Tile size of the staged GeoTIFF, and the chunks computed for it, in pixels."""


def write_cog(bands: xr.DataArray, labels: Sequence[str], path: Path) -> Path:
    """Write ``(band, y, x)`` as a COG with band descriptions and units, and NaN nodata.

    A lazy array is computed chunk by chunk into a tiled GeoTIFF (rioxarray, with a lock),
    which GDAL then copies into a COG, since the COG driver can only copy: memory holds
    the chunks in flight, not the whole raster. The file is validated under a temporary
    name and renamed into place.
    """
    units = bands.attrs.get("units", "")
    staged = path.with_name(path.stem + ".staged.tif")
    partial = path.with_name(path.stem + ".partial.tif")
    layer = bands.astype("float32", copy=False).drop_attrs(deep=False).rio.write_nodata(np.nan)
    if layer.chunks:  # one chunk per block: a chunk smaller than its block is rewritten 4-64x
        layer = layer.chunk({layer.dims[0]: -1, "y": STAGED_BLOCK, "x": STAGED_BLOCK})
    try:
        layer.rio.to_raster(
            staged,
            driver="GTiff",
            tiled=True,
            blockxsize=STAGED_BLOCK,
            blockysize=STAGED_BLOCK,
            BIGTIFF="IF_SAFER",
            lock=SerializableLock(),  # one writer at a time; dask computes chunks in parallel
        )
        with rasterio.open(staged, "r+") as dst:
            dst.descriptions = tuple(labels)
            dst.units = (units,) * len(labels)
            tags = {"units": units} | {
                key: bands.attrs[key]
                for key in ("long_name", "comment", "flag_meanings")
                if key in bands.attrs
            }
            dst.update_tags(**tags)
        copy(
            staged,
            partial,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="3",
            BLOCKSIZE=str(OPTIONS["cog_block"]),
            BIGTIFF="IF_SAFER",
        )
    finally:
        staged.unlink(missing_ok=True)
    valid, errors, _ = cog_validate(str(partial))
    if not valid:
        partial.unlink()
        raise RuntimeError(f"{path}: GDAL wrote an invalid COG: {errors}")
    partial.replace(path)
    return path


def export_cogs(
    maps: xr.Dataset,
    folder: str | Path,
    *,
    periods: Sequence[Period] = ("annual",),
    netcdf: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write each flux, its ensemble spread and the extrapolated share as COGs.

    Parameters
    ----------
    maps
        Output of [`flux_maps`][upscale.engine.flux_maps], as written and reopened.
    folder
        Destination folder.
    periods
        ``annual``: one band per complete year, totals in gC m-2 yr-1, file
        ``<VAR>_annual.tif``. ``monthly``: one band per valid month, in gC m-2 d-1, file
        ``<VAR>_monthly.tif``. VAR is each flux and its spread (``GPP_std``...). The share
        of months outside the towers' domain is written once, ``extrapolated_fraction.tif``.
    netcdf
        Also write the maps as one CF-1.8 NetCDF, ``maps.nc``
        ([`write_netcdf`][upscale.netcdf.write_netcdf]), as part of the same resumable run.
    overwrite
        Replace existing files.

    Returns
    -------
    list of pathlib.Path
        The files written, each validated as a COG.

    Notes
    -----
    An export killed part-way and started again on the same maps writes only the files it
    had not finished; until all are written, its plan is in ``.upscale-export.json``.
    """
    folder = Path(folder)
    layers: list[tuple[Path, xr.DataArray, list[str]]] = []
    if "annual" in periods:
        totals = annual_totals(maps)
        for name in totals.data_vars:
            labels = [f"{name} {year} total" for year in totals["year"].values]
            layers.append((folder / f"{name}_annual.tif", totals[name], labels))
    if "monthly" in periods:
        monthly = valid_period(maps)
        for name in (n for flux in FLUXES for n in (flux, spread_name(flux)) if n in maps):
            labels = [f"{name} {t:%Y-%m} mean" for t in monthly.indexes["time"]]
            layers.append((folder / f"{name}_monthly.tif", monthly[name], labels))
    if EXTRAPOLATED.name in maps:
        months = valid_period(maps).indexes["time"]
        label = f"{EXTRAPOLATED.name} {months[0]:%Y-%m}..{months[-1]:%Y-%m}"
        share = maps[EXTRAPOLATED.name].expand_dims(band=1)
        layers.append((folder / f"{EXTRAPOLATED.name}.tif", share, [label]))
    cf_file = folder / NETCDF_NAME
    paths = [path for path, _, _ in layers] + ([cf_file] if netcdf else [])
    plan = {
        "maps": {key: maps.attrs.get(key) for key in ("created", "inputs", "models")},
        "periods": sorted(periods),
        "files": [path.name for path in paths],
    }
    with (
        output_lock(folder),  # one run at a time writes into the folder
        resumable(folder / EXPORT_PLAN, plan, paths, overwrite=overwrite) as finished,
    ):
        for path, data, labels in layers:
            if path not in finished:  # a killed export, started again, writes the rest
                write_cog(data, labels, path)
        if netcdf and cf_file not in finished:
            # An existing file was refused above unless the user replaces it, or finished.
            write_netcdf(maps, cf_file, overwrite=True)
    return paths
