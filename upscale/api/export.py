"""Export: Cloud-Optimized GeoTIFFs of the flux maps, and optionally one NetCDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from upscale.annual import ExportPeriod, export_layers
from upscale.cube import open_maps
from upscale.exports import export_maps


def export(
    maps: str | Path,
    out: str | Path,
    *,
    periods: Sequence[ExportPeriod] = ("annual",),
    netcdf: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Export flux maps to Cloud-Optimized GeoTIFFs, and optionally one CF-1.8 NetCDF.

    See [`export_layers`][upscale.annual.export_layers] for the layers of each period and
    [`export_maps`][upscale.exports.export_maps] for the files; with ``netcdf``, also
    ``<out>/maps.nc`` ([`write_netcdf`][upscale.netcdf.write_netcdf]).
    """
    opened = open_maps(maps)
    layers = export_layers(opened, periods)
    formats = ("cog", "netcdf") if netcdf else ("cog",)
    return export_maps(opened, layers, out, formats=formats, overwrite=overwrite)
