"""Export: Cloud-Optimized GeoTIFFs of the flux maps, and optionally one NetCDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from upscale.cube import open_maps
from upscale.geotiff import Period, export_cogs


def export(
    maps: str | Path,
    out: str | Path,
    *,
    periods: Sequence[Period] = ("annual",),
    netcdf: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Export flux maps to Cloud-Optimized GeoTIFFs, and optionally one CF-1.8 NetCDF.

    See [`export_cogs`][upscale.geotiff.export_cogs]; with ``netcdf``, also ``<out>/maps.nc``
    ([`write_netcdf`][upscale.netcdf.write_netcdf]).
    """
    return export_cogs(open_maps(maps), out, periods=periods, netcdf=netcdf, overwrite=overwrite)
