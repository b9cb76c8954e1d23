"""Export: Cloud-Optimized GeoTIFFs of the flux maps, and optionally one NetCDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from upscale.annual import Period, export_layers
from upscale.cube import open_maps
from upscale.geotiff import export_cogs


def export(
    maps: str | Path,
    out: str | Path,
    *,
    periods: Sequence[Period] = ("annual",),
    netcdf: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Export flux maps to Cloud-Optimized GeoTIFFs, and optionally one CF-1.8 NetCDF.

    See [`export_layers`][upscale.annual.export_layers] for the files of each period and
    [`export_cogs`][upscale.geotiff.export_cogs]; with ``netcdf``, also ``<out>/maps.nc``
    ([`write_netcdf`][upscale.netcdf.write_netcdf]).
    """
    opened = open_maps(maps)
    layers = export_layers(opened, periods)
    return export_cogs(opened, layers, out, netcdf=netcdf, overwrite=overwrite)
