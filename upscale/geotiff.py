"""Export maps to Cloud-Optimized GeoTIFFs for GIS: one file per variable, bands over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from dask.utils import SerializableLock
from rasterio.shutil import copy
from rio_cogeo.cogeo import cog_validate

from upscale.durable import output_lock, resumable, staged
from upscale.netcdf import NETCDF_NAME, write_netcdf

EXPORT_PLAN = ".upscale-export.json"
"""File in the export folder recording an export under way (see `upscale.durable.resumable`)."""


COG_BLOCK = 512
"""Tile size of the COGs (the GDAL COG driver's default), in pixels."""

STAGED_BLOCK = 256
"""Tile size of the staged GeoTIFF, and the chunks computed for it, in pixels."""


def write_cog(bands: xr.DataArray, labels: Sequence[str], path: Path) -> Path:
    """Write ``(band, y, x)`` as a COG with band descriptions and units, and NaN nodata.

    A lazy array is computed chunk by chunk into a tiled GeoTIFF (rioxarray, with a lock),
    which GDAL then copies into a COG, since the COG driver can only copy: memory holds
    the chunks in flight, not the whole raster. The file is validated under a temporary
    name and renamed into place ([`staged`][upscale.durable.staged]), replacing an older one.
    """
    tiled = path.with_name(path.stem + ".staged.tif")
    layer = bands.astype("float32", copy=False).drop_attrs(deep=False).rio.write_nodata(np.nan)
    if layer.chunks:  # one chunk per block: a chunk smaller than its block is rewritten 4-64x
        layer = layer.chunk({layer.dims[0]: -1, "y": STAGED_BLOCK, "x": STAGED_BLOCK})
    with staged(path, overwrite=True, suffix=".tif") as partial:
        try:
            _write_tiled(layer, labels, bands.attrs, tiled)
            copy(
                tiled,
                partial,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="3",
                BLOCKSIZE=str(COG_BLOCK),
                BIGTIFF="IF_SAFER",
            )
        finally:
            tiled.unlink(missing_ok=True)
        valid, errors, _ = cog_validate(str(partial))
        if not valid:
            raise RuntimeError(f"{path}: GDAL wrote an invalid COG: {errors}")
    return path


def _write_tiled(
    layer: xr.DataArray, labels: Sequence[str], attrs: Mapping[str, str], path: Path
) -> None:
    """Write bands as a tiled GeoTIFF with their labels, units and descriptive tags."""
    layer.rio.to_raster(
        path,
        driver="GTiff",
        tiled=True,
        blockxsize=STAGED_BLOCK,
        blockysize=STAGED_BLOCK,
        BIGTIFF="IF_SAFER",
        lock=SerializableLock(),  # one writer at a time; dask computes chunks in parallel
    )
    units = attrs.get("units", "")
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = tuple(labels)
        dst.units = (units,) * len(labels)
        tags = {"units": units} | {
            key: attrs[key] for key in ("long_name", "comment", "flag_meanings") if key in attrs
        }
        dst.update_tags(**tags)


def export_cogs(
    maps: xr.Dataset,
    layers: Mapping[str, tuple[xr.DataArray, Sequence[str]]],
    folder: str | Path,
    *,
    netcdf: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write layers of the maps as COGs, ``<folder>/<layer name>.tif``, and the maps as NetCDF.

    Parameters
    ----------
    maps
        Output of [`flux_maps`][upscale.engine.flux_maps], as written and reopened.
    layers
        Bands and labels by layer name, as [`export_layers`][upscale.annual.export_layers]
        makes them from the maps (annual totals, monthly means, the extrapolated share).
    folder
        Destination folder.
    netcdf
        Also write the maps as one CF-1.8 NetCDF, ``maps.nc``
        ([`write_netcdf`][upscale.netcdf.write_netcdf]), as part of the same resumable run.
    overwrite
        Replace existing files.

    Returns
    -------
    list of pathlib.Path
        The files written, each COG validated.

    Notes
    -----
    An export killed part-way and started again on the same maps writes only the files it
    had not finished; until all are written, its plan is in ``.upscale-export.json``.
    """
    folder = Path(folder)
    cogs = {folder / f"{name}.tif": layer for name, layer in layers.items()}
    cf_file = folder / NETCDF_NAME
    paths = [*cogs] + ([cf_file] if netcdf else [])
    plan = {
        "maps": {key: maps.attrs.get(key) for key in ("created", "inputs", "models")},
        "files": [path.name for path in paths],
    }
    with (
        output_lock(folder),  # one run at a time writes into the folder
        resumable(folder / EXPORT_PLAN, plan, paths, overwrite=overwrite) as finished,
    ):
        for path, (data, labels) in cogs.items():
            if path not in finished:  # a killed export, started again, writes the rest
                write_cog(data, labels, path)
        if netcdf and cf_file not in finished:
            # An existing file was refused above unless the user replaces it, or finished.
            write_netcdf(maps, cf_file, overwrite=True)
    return paths
