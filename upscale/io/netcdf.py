"""Export maps as one CF-1.8 NetCDF file, for tools that read NetCDF rather than Zarr or COGs.

The maps' own metadata is kept; what CF asks of a file beyond what the Zarr store carries
is added here: axis and standard names on the coordinates, UDUNITS units for the fluxes
(carbon is in their standard names), signed integer types, no fill value on coordinates,
and a ``history`` line. The mask's layers carry their own names and flags from
[`open_mask`][upscale.io.stores.open_mask].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import xarray as xr

from upscale.io.durable import staged, utc_now
from upscale.io.stores import COMPLETE
from upscale.schema import WETLAND

CARBON_UNITS = "gC m-2 d-1"
"""The maps' flux units; UDUNITS spells them ``g m-2 d-1`` (carbon is in the standard name)."""


def cf_maps(maps: xr.Dataset) -> xr.Dataset:
    """Return the maps with the metadata CF-1.8 asks of a NetCDF file beyond the store's."""
    ds = maps.copy()
    ds.attrs = {key: value for key, value in maps.attrs.items() if key != COMPLETE}
    ds.attrs["Conventions"] = "CF-1.8"
    ds.attrs["history"] = f"{utc_now()}: written by upscale export --netcdf"
    crs = maps.rio.crs
    if crs.is_geographic:
        axes = {"x": ("longitude", "degrees_east"), "y": ("latitude", "degrees_north")}
    else:
        units = {"metre": "m"}.get(crs.linear_units, crs.linear_units)
        axes = {d: (f"projection_{d}_coordinate", units) for d in ("x", "y")}
    for dim, (name, units) in axes.items():
        ds[dim].attrs = {
            "standard_name": name,
            "long_name": name.replace("_", " "),
            "axis": dim.upper(),
            "units": units,
        }
    ds["time"].attrs = {"standard_name": "time", "long_name": "month (its first day)", "axis": "T"}
    for var in ds.data_vars.values():
        if var.attrs.get("units") == CARBON_UNITS:
            var.attrs = var.attrs | {
                "units": "g m-2 d-1",
                "long_name": f"{var.attrs['long_name']}, as carbon",
            }
    # CF-1.8 has no unsigned integers: ecosystem codes and the CRS variable go signed.
    if WETLAND in ds:
        attrs = ds[WETLAND].attrs
        ds[WETLAND] = (
            ds[WETLAND]
            .astype("int8")
            .assign_attrs(attrs | {"flag_values": np.asarray(attrs["flag_values"], dtype="int8")})
        )
    ds["spatial_ref"] = (
        ds["spatial_ref"]
        .astype("int32")
        .assign_attrs(maps["spatial_ref"].attrs | {"long_name": "coordinate reference system"})
    )
    return ds


NETCDF_NAME = "maps.nc"
"""File name of the maps as NetCDF in an export folder."""


def write_netcdf(maps: xr.Dataset, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the maps as a CF-1.8 NetCDF4 file, atomically.

    Raises
    ------
    OutputExistsError
        When the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    with staged(path, overwrite=overwrite) as partial:
        ds = cf_maps(maps)
        encoding = {
            name: {"zlib": True, "complevel": 4}
            for name, var in ds.data_vars.items()
            if var.ndim >= 2
        }
        encoding |= {dim: {"_FillValue": None} for dim in ("x", "y")}
        encoding["time"] = {"units": "days since 1970-01-01", "dtype": "int32", "_FillValue": None}
        ds.to_netcdf(partial, encoding=encoding, engine="netcdf4")
    return path


def netcdf_files(maps: xr.Dataset, layers: object, folder: Path) -> dict[Path, Callable[[], Path]]:
    """Plan the maps as one NetCDF, ``<folder>/maps.nc`` (the ``netcdf`` export format).

    The file holds the maps themselves, whatever ``layers`` an export asked for.
    """
    path = folder / NETCDF_NAME
    # An existing file was refused by the export unless the user replaces it, or finished.
    return {path: partial(write_netcdf, maps, path, overwrite=True)}
