"""Export: Cloud-Optimized GeoTIFFs of the flux maps, and optionally one NetCDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from upscale.budgets.annual import ExportPeriod, export_layers
from upscale.io.exports import export_maps
from upscale.io.stores import open_maps


def export(
    maps: str | Path,
    out: str | Path,
    *,
    periods: Sequence[ExportPeriod] = ("annual",),
    netcdf: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Export flux maps to Cloud-Optimized GeoTIFFs, and optionally one CF-1.8 NetCDF.

    See [`export_layers`][upscale.budgets.annual.export_layers] for the layers of each period and
    [`export_maps`][upscale.io.exports.export_maps] for the files; with ``netcdf``, also
    ``<out>/maps.nc`` ([`write_netcdf`][upscale.io.netcdf.write_netcdf]).
    """
    opened = open_maps(maps)
    layers = export_layers(opened, periods)
    formats = ("cog", "netcdf") if netcdf else ("cog",)
    return export_maps(opened, layers, out, formats=formats, overwrite=overwrite)
