"""Cloud-Optimized GeoTIFFs for GIS: one file per variable, bands over time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from dask.utils import SerializableLock
from rasterio.shutil import copy
from rio_cogeo.cogeo import cog_validate

from upscale.io.durable import staged
from upscale.options import OPTIONS

STAGED_BLOCK = 256
"""Tile size of the staged GeoTIFF, and the chunks computed for it, in pixels."""


def write_cog(bands: xr.DataArray, labels: Sequence[str], path: Path) -> Path:
    """Write ``(band, y, x)`` as a COG with band descriptions and units, and NaN nodata.

    A lazy array is computed chunk by chunk into a tiled GeoTIFF (rioxarray, with a lock),
    which GDAL then copies into a COG, since the COG driver can only copy: memory holds
    the chunks in flight, not the whole raster. The file is validated under a temporary
    name and renamed into place ([`staged`][upscale.io.durable.staged]), replacing an older one.
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
                BLOCKSIZE=str(OPTIONS["cog_block"]),
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


def cog_files(
    maps: xr.Dataset, layers: Mapping[str, tuple[xr.DataArray, Sequence[str]]], folder: Path
) -> dict[Path, Callable[[], Path]]:
    """Plan one COG per layer, ``<folder>/<layer name>.tif`` (the ``cog`` export format)."""
    return {
        folder / f"{name}.tif": partial(write_cog, data, labels, folder / f"{name}.tif")
        for name, (data, labels) in layers.items()
    }
