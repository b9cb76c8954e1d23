"""Local driver sources (NetCDF, Zarr, GeoTIFF stacks) into the canonical monthly cube.

Real inputs come with other variable names, ``lat/lon`` or ``latitude/longitude`` dims,
0-360 longitudes, Kelvin, Pascal, accumulations per day, MODIS scale factors, and daily or
8-day steps. Each source variable is renamed, scaled, converted to the canonical units of
[`upscale.schema`][upscale.schema], averaged to calendar months and regridded to one target grid.
Units are converted only when they say what they are: an accumulation without its period
(``J m-2``, ``m``) is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.warp import Resampling, transform_bounds

from upscale.drivers.stac_recipes import StacSection
from upscale.errors import InvalidCubeError
from upscale.grid import TargetGrid
from upscale.io.stores import RASTER_BANDS, open_gridded
from upscale.schema import DRIVERS, check_driver_names, implausible_value, units_match

_CONVERSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "degC": {"K": (1.0, -273.15), "kelvin": (1.0, -273.15), "Kelvin": (1.0, -273.15)},
    "hPa": {"Pa": (0.01, 0.0), "kPa": (10.0, 0.0)},
    "W m-2": {
        "J m-2 d-1": (1 / 86400, 0.0),
        "J m-2 day-1": (1 / 86400, 0.0),
        "J m-2 h-1": (1 / 3600, 0.0),
        "MJ m-2 d-1": (1e6 / 86400, 0.0),
    },
    "mm d-1": {
        "m d-1": (1000.0, 0.0),
        "m day-1": (1000.0, 0.0),
        "mm h-1": (24.0, 0.0),
        "kg m-2 s-1": (86400.0, 0.0),
        "mm s-1": (86400.0, 0.0),
    },
    "1": {"%": (0.01, 0.0), "percent": (0.01, 0.0)},
}
"""Canonical units -> source units -> (scale, offset): canonical = source x scale + offset."""

_ACCUMULATIONS = {"J m-2", "J/m2", "m", "mm", "kg m-2", "MJ m-2"}
"""Units of amounts accumulated over a period the file does not state."""


SourceReader = Callable[["SourceSpec", str, Path], xr.DataArray]
"""Reads one variable (by its name in the source) of a source spec, relative paths from a base."""


@dataclass(frozen=True)
class DriverSource:
    """A kind of local driver source, as a source spec names it.

    Attributes
    ----------
    kind
        The key that gives the source's location in a spec (``path: era5.nc``).
    description
        What the location is, for the docs and for messages.
    read
        Reads one variable of a spec of this kind: a lazy ``(time, y, x)`` array with a CRS,
        in the source's units; [`read_source_variable`][upscale.drivers.ingest.read_source_variable]
        does the rest (no data, scale, units).
    """

    kind: str
    description: str
    read: SourceReader


DRIVER_SOURCES: dict[str, DriverSource] = {}
"""The registered kinds of driver source, by the key a spec gives them with."""


def register_driver_source(source: DriverSource) -> DriverSource:
    """Add a kind of driver source; a spec then takes its key as ``<kind>: <location>``.

    Raises
    ------
    ValueError
        When the kind is taken, or clashes with another field of a source spec.
    """
    if source.kind in DRIVER_SOURCES or source.kind in SourceSpec.model_fields:
        raise ValueError(f"a driver source or spec field is already called {source.kind!r}")
    DRIVER_SOURCES[source.kind] = source
    return source


class SourceSpec(BaseModel):
    """One driver source: its kind and location, and how to read its variables.

    A spec names its source by one registered kind (see
    [`DRIVER_SOURCES`][upscale.drivers.ingest.DRIVER_SOURCES]), e.g. ``path: era5.nc``,
    ``pattern: modis/{variable}_{date:%Y%m%d}.tif`` or ``listing: files.csv``.

    Attributes
    ----------
    kind
        The registered kind of source: ``path`` (a NetCDF file or Zarr store), ``pattern``
        (a GeoTIFF stack: a path pattern with ``{variable}`` and ``{date:FORMAT}`` fields;
        without ``{variable}`` every file holds all variables as bands, named in
        ``variables`` by band description or number, as in the monthly exports of
        ``upscale fetch --export-to``) or ``listing`` (a GeoTIFF stack listed in a CSV with
        ``path``, ``variable`` and ``time`` columns).
    location
        Where the source is, as its kind reads it.
    variables
        Canonical name -> the source's name (the variable in a file, or the ``{variable}``
        value of a stack), e.g. ``{"TA": "t2m"}``.
    units
        Source units where the file has none or states them incompletely.
    scale, offset
        Applied before unit conversion where the file does not carry CF ``scale_factor`` /
        ``add_offset`` (e.g. ``{"NDVI": 0.0001}`` for MODIS); refused where it does.
    nodata
        Raw values meaning "no data" that the file does not declare (e.g. ``-9999`` in the
        exports of ``upscale fetch --export-to``).
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    location: str
    variables: dict[str, str]
    units: dict[str, str] = {}
    scale: dict[str, float] = {}
    offset: dict[str, float] = {}
    nodata: dict[str, float] = {}

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, given: Any) -> Any:
        if not isinstance(given, dict) or "kind" in given:
            return given
        kinds = [k for k in DRIVER_SOURCES if given.get(k)]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of {', '.join(DRIVER_SOURCES)}")
        rest = {k: v for k, v in given.items() if k not in DRIVER_SOURCES}
        return {"kind": kinds[0], "location": str(given[kinds[0]]), **rest}

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind not in DRIVER_SOURCES:
            raise ValueError(f"{kind!r} is not a driver source ({', '.join(DRIVER_SOURCES)})")
        return kind

    @field_validator("variables")
    @classmethod
    def _canonical(cls, variables: dict[str, str]) -> dict[str, str]:
        check_driver_names(variables)
        return variables

    @property
    def label(self) -> str:
        """How error messages name this source."""
        return self.location


def read_source_variable(spec: SourceSpec, variable: str, *, base: Path = Path()) -> xr.DataArray:
    """One canonical driver from a source, in canonical units, on its own grid and steps.

    Parameters
    ----------
    spec
        The source.
    variable
        Canonical driver name, a key of ``spec.variables``.
    base
        Folder relative paths in ``spec`` start from.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 with a CRS, canonical units and attributes, lazily read.

    Raises
    ------
    InvalidCubeError
        When the source is unreadable, lacks the variable, or its units are unknown.
    """
    name = spec.variables[variable]
    array = DRIVER_SOURCES[spec.kind].read(spec, name, base)
    array = _check_source(array, spec.label)
    if variable in spec.nodata:
        array = array.where(array != spec.nodata[variable])
    if variable in spec.scale or variable in spec.offset:
        if array.encoding.get("scale_factor", 1.0) != 1.0 or array.encoding.get("add_offset", 0.0):
            raise InvalidCubeError(
                f"{spec.label}: {name} carries its own scale factor, already applied; drop "
                f"scale/offset for {variable} from the source spec"
            )
        array = array * spec.scale.get(variable, 1.0) + spec.offset.get(variable, 0.0)
    units = spec.units.get(variable) or array.attrs.get("units")
    return _to_canonical_units(array, variable, units, f"{spec.label}: {name}")


def _read_store(spec: SourceSpec, name: str, base: Path) -> xr.DataArray:
    return _from_store(base / spec.location, name)


def _from_store(path: Path, name: str) -> xr.DataArray:
    ds = open_gridded(path, kind="source")
    if name not in ds.data_vars:
        raise InvalidCubeError(f"{path}: no variable '{name}'; it has {list(ds.data_vars)}")
    array = ds[name]
    if array.rio.crs is None and ds.rio.crs is not None:
        array = array.rio.write_crs(ds.rio.crs)
    return array


def _stack_files(spec: SourceSpec, name: str, base: Path) -> list[tuple[Path, pd.Timestamp]]:
    """List the files of one variable of a GeoTIFF stack, with their dates."""
    if spec.kind == "listing":
        try:
            listing = pd.read_csv(base / spec.location)
        except (OSError, pd.errors.ParserError) as err:
            raise InvalidCubeError(f"{spec.location}: not a readable listing ({err})") from None
        missing = {"path", "variable", "time"} - set(listing.columns)
        if missing:
            raise InvalidCubeError(
                f"{spec.location}: no column(s) {sorted(missing)} (path, variable, time)"
            )
        rows = listing[listing["variable"] == name]
        try:
            times = pd.to_datetime(rows["time"])
        except (ValueError, TypeError) as err:
            raise InvalidCubeError(f"{spec.location}: a time does not parse ({err})") from None
        return [(base / p, t) for p, t in zip(rows["path"], times, strict=True)]
    pattern = spec.location
    fields = re.findall(r"\{(\w+)(?::([^}]*))?\}", pattern)
    if {f for f, _ in fields} not in ({"variable", "date"}, {"date"}):
        raise InvalidCubeError(
            f"{pattern}: a stack pattern has a {{date:FORMAT}} field, and a {{variable}} "
            "field unless each file holds every variable as a band"
        )
    if Path(pattern).is_absolute():  # glob works from a folder: start at the root
        base, pattern = Path(Path(pattern).anchor), str(Path(pattern).relative_to("/"))
    date_format = dict(fields)["date"] or "%Y-%m-%d"
    glob = re.sub(r"\{variable\}", name, re.sub(r"\{date(:[^}]*)?\}", "*", pattern))
    regex = re.escape(pattern.replace("{variable}", name))
    regex = re.sub(r"\\\{date(?::[^}]*)?\\\}", "(?P<date>.+)", regex)
    files = []
    for path in sorted(base.glob(glob)):
        match = re.fullmatch(regex, str(path.relative_to(base)))
        if match is None:
            continue
        try:
            files.append((path, pd.Timestamp(datetime.strptime(match["date"], date_format))))
        except ValueError:
            raise InvalidCubeError(
                f"{path}: the date {match['date']!r} does not follow {date_format}"
            ) from None
    return files


def _from_stack(spec: SourceSpec, name: str, base: Path) -> xr.DataArray:
    files = _stack_files(spec, name, base)
    if not files:
        raise InvalidCubeError(f"{spec.label}: no file for variable '{name}'")
    layers = []
    for path, when in sorted(files, key=lambda item: item[1]):
        bands = open_gridded(path, kind="source")
        if RASTER_BANDS not in bands:
            raise InvalidCubeError(f"{path}: not a GeoTIFF; a stack is made of GeoTIFFs")
        layer = bands[RASTER_BANDS]
        multiband = spec.kind == "pattern" and "{variable}" not in spec.location
        band = _band_index(layer, name, path) if multiband else 0
        layers.append(layer.isel(band=band, drop=True).expand_dims(time=[when]))
    crss = {str(layer.rio.crs) for layer in layers}
    if len(crss) > 1:
        raise InvalidCubeError(
            f"{spec.label}: the GeoTIFFs of '{name}' are in several CRSs {sorted(crss)}"
        )
    try:
        array = xr.concat(layers, dim="time", join="exact")
    except ValueError:
        raise InvalidCubeError(
            f"{spec.label}: the GeoTIFFs of '{name}' are not on one grid"
        ) from None
    array.attrs.update(layers[0].attrs)
    return array


for _source in (
    DriverSource("path", "a NetCDF file or Zarr store", _read_store),
    DriverSource("pattern", "a GeoTIFF stack named by a path pattern", _from_stack),
    DriverSource("listing", "a GeoTIFF stack listed in a CSV (path, variable, time)", _from_stack),
):
    register_driver_source(_source)


def _band_index(layer: xr.DataArray, name: str, path: Path) -> int:
    """Return the band index of a variable in a multi-band file: by description or number."""
    descriptions = layer.attrs.get("long_name")
    if isinstance(descriptions, str):
        descriptions = (descriptions,)
    if descriptions and name in descriptions:
        return list(descriptions).index(name)
    if name.isdigit() and 1 <= int(name) <= layer.sizes["band"]:
        return int(name) - 1
    bands = list(descriptions or range(1, layer.sizes["band"] + 1))
    raise InvalidCubeError(
        f"{path}: no band '{name}' (bands: {bands}); name a band by its description or "
        "its number from 1"
    )


def _check_source(array: xr.DataArray, source: str) -> xr.DataArray:
    """Refuse a source a monthly cube cannot be made of; order its steps and dims.

    The array is on the canonical grid already
    ([`to_canonical_grid`][upscale.io.stores.to_canonical_grid]): what is left to check is what
    a driver needs beyond it.
    """
    if set(array.dims) != {"time", "y", "x"}:
        raise InvalidCubeError(
            f"{source}: dims {array.dims}; a driver needs time and two spatial dims"
        )
    if min(array.sizes["y"], array.sizes["x"]) < 2:
        raise InvalidCubeError(
            f"{source}: {dict(array.sizes)}; a source needs at least 2 x 2 pixels"
        )
    if not np.issubdtype(array["time"].dtype, np.datetime64):
        raise InvalidCubeError(
            f"{source}: time is not on the standard calendar ({array['time'].dtype}); "
            "convert it (e.g. xarray's convert_calendar('standard')) first"
        )
    if array.indexes["time"].has_duplicates:
        raise InvalidCubeError(f"{source}: repeated time stamps; keep one value per time step")
    if array.rio.crs is None:
        raise InvalidCubeError(f"{source}: no CRS; write one in the file (or use lat/lon dims)")
    if CRS.from_user_input(array.rio.crs).is_geographic and float(array["x"].max()) > 180:
        # Left at 0-360 by the canonical grid: the only regular longitudes of this source.
        raise InvalidCubeError(
            f"{source}: 0-360 longitudes that cross 180 E cannot be shifted to -180..180 "
            "as one regular grid; cut the source at 180 E first"
        )
    return array.sortby("time").transpose("time", "y", "x").rio.set_spatial_dims("x", "y")


def _to_canonical_units(
    array: xr.DataArray, variable: str, units: str | None, source: str
) -> xr.DataArray:
    expected = DRIVERS[variable].units
    if units is None:
        raise InvalidCubeError(
            f"{source}: no units; state them in the source spec (units: {{{variable}: ...}})"
        )
    units = str(units).strip()
    if not units_match(units, expected):
        if units in _ACCUMULATIONS:
            raise InvalidCubeError(
                f"{source}: '{units}' is an amount accumulated over an unstated period; give "
                f"its rate units in the source spec, e.g. units: {{{variable}: '{units} d-1'}}"
            )
        conversion = _CONVERSIONS.get(expected, {}).get(units)
        if conversion is None:
            known = sorted({expected, *_CONVERSIONS.get(expected, {})})
            raise InvalidCubeError(
                f"{source}: cannot convert '{units}' to {variable}'s '{expected}'; known: {known}"
            )
        scale, offset = conversion
        array = array * scale + offset
    out = array.astype("float32")
    out.attrs = DRIVERS[variable].attrs()
    return out.rename(variable)


def monthly_means(array: xr.DataArray, period: tuple[str, str]) -> xr.DataArray:
    """Average any time steps (hourly to 16-day) to calendar months stamped on the 1st.

    Months of ``period`` without any value stay NaN: they are gaps, for
    [`fill_gaps`][upscale.drivers.gaps.fill_gaps] or for the user to see, never invented here.
    """
    months = pd.date_range(period[0], period[1], freq="MS")
    start, end = months[0], months[-1] + pd.offsets.MonthEnd(1) + pd.Timedelta(days=1)
    inside = array.sel(time=slice(start, end - pd.Timedelta(seconds=1)))
    if inside.sizes["time"] == 0:
        return array.isel(time=[]).reindex(time=months)
    means = inside.resample(time="MS").mean()
    out = means.reindex(time=months)
    out.attrs = array.attrs
    return out


def regrid(array: xr.DataArray, grid: TargetGrid) -> xr.DataArray:
    """Reproject a driver onto the target grid, averaging when the source is finer.

    Finer sources are averaged over each target pixel (area-weighted, GDAL ``average``);
    coarser ones are interpolated bilinearly, which keeps smooth fields such as air
    temperature smooth instead of blocky.
    """
    src_crs = array.rio.crs
    src_bounds = transform_bounds(src_crs, grid.crs, *array.rio.bounds(), densify_pts=21)
    src_pixel = (src_bounds[2] - src_bounds[0]) / array.sizes["x"]
    resampling = Resampling.average if src_pixel < grid.resolution else Resampling.bilinear
    height, width = grid.shape
    out = (
        array.rio.write_nodata(np.nan, encoded=False)
        .rio.reproject(
            grid.crs,
            shape=(height, width),
            transform=grid.transform,
            resampling=resampling,
            nodata=np.nan,
        )
        .astype("float32")
    )
    template = grid.template()
    out = out.assign_coords(x=template["x"], y=template["y"])
    out.attrs = array.attrs
    out.attrs["resampling"] = resampling.name
    return out


def build_drivers(
    sources: Sequence[SourceSpec],
    grid: TargetGrid,
    period: tuple[str, str],
    *,
    base: Path = Path(),
) -> xr.Dataset:
    """Every driver of the sources, monthly on the target grid, checked for plausibility.

    Raises
    ------
    InvalidCubeError
        When a driver comes from two sources, or its monthly values fall outside the
        physically plausible range (a sign of a missing scale factor or wrong units).
    """
    drivers: dict[str, xr.DataArray] = {}
    origin: dict[str, str] = {}
    for spec in sources:
        for variable in spec.variables:
            if variable in drivers:
                raise InvalidCubeError(
                    f"{variable} comes from both {origin[variable]} and {spec.label}; give one"
                )
            array = clip_to(read_source_variable(spec, variable, base=base), grid, spec.label)
            drivers[variable] = regrid(monthly_means(array, period).compute(), grid)
            origin[variable] = spec.label
            _check_plausible(drivers[variable], spec.label)
            _check_months(drivers[variable], spec.label)
    cube = xr.Dataset(drivers).rio.write_crs(grid.crs)
    cube.attrs["sources"] = "; ".join(f"{v} <- {s}" for v, s in origin.items())
    return cube


def clip_to(array: xr.DataArray, grid: TargetGrid, source: str) -> xr.DataArray:
    """Return the part of a source around the target grid (two source pixels of margin).

    Raises
    ------
    InvalidCubeError
        When the source covers less than 2 x 2 of its pixels around the grid.
    """
    west, south, east, north = transform_bounds(
        grid.crs, array.rio.crs, *grid.bounds, densify_pts=21
    )
    dx = abs(float(array["x"][1] - array["x"][0]))
    dy = abs(float(array["y"][1] - array["y"][0]))
    x, y = array["x"], array["y"]
    inside = array.isel(
        x=np.flatnonzero(((x >= west - 2 * dx) & (x <= east + 2 * dx)).values),
        y=np.flatnonzero(((y >= south - 2 * dy) & (y <= north + 2 * dy)).values),
    )
    if min(inside.sizes["x"], inside.sizes["y"]) < 2:
        raise InvalidCubeError(
            f"{source}: {array.name} does not cover the target grid {grid.bounds}"
        )
    return inside


def _check_months(array: xr.DataArray, source: str) -> None:
    """Refuse a driver with months of the period that no source value reaches."""
    empty = array.isnull().all(("y", "x")).values
    if empty.any():
        months = [f"{t:%Y-%m}" for t in pd.DatetimeIndex(array["time"].values[empty])]
        raise InvalidCubeError(
            f"{source}: {array.name} has no value in {len(months)} month(s) of the period "
            f"({', '.join(months[:6])}{'...' if len(months) > 6 else ''}); give a source that "
            "covers them, or shorten the period"
        )


def _check_plausible(array: xr.DataArray, source: str) -> None:
    found_low, found_high = float(array.min()), float(array.max())
    if np.isnan(found_low):
        raise InvalidCubeError(f"{source}: {array.name} has no value on the target grid and period")
    problem = implausible_value([str(array.name)], [found_low], [found_high])
    if problem:
        raise InvalidCubeError(
            f"{source}: {problem}; check its units and scale factor (MODIS NDVI/EVI need "
            "0.0001, LAI 0.1, FAPAR 0.01)"
        )


class GridSpec(BaseModel):
    """The target grid of an ingest config (see [`TargetGrid`][upscale.grid.TargetGrid])."""

    model_config = ConfigDict(extra="forbid")

    crs: str
    bounds: tuple[float, float, float, float]
    resolution: float

    def target(self) -> TargetGrid:
        """Return the grid itself; a InvalidCubeError names what is wrong with it."""
        try:
            return TargetGrid(self.crs, self.bounds, self.resolution)
        except (ValueError, CRSError) as err:
            raise InvalidCubeError(f"grid: {err}") from None


class FillSpec(BaseModel):
    """Gap filling of optical drivers (see [`fill_gaps`][upscale.drivers.gaps.fill_gaps])."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_interpolated: int = 2


class IngestConfig(BaseModel):
    """What ``upscale ingest`` builds: a grid, a period, sources, and gap filling.

    Relative paths in ``sources`` (and a relative ``stac.catalog``) start from the folder of
    the config file. The drivers come from local ``sources``, a ``stac`` catalogue
    ([`StacSection`][upscale.drivers.stac_recipes.StacSection]), or both.
    """

    model_config = ConfigDict(extra="forbid")

    grid: GridSpec
    period: tuple[str, str]
    sources: list[SourceSpec] = []
    stac: StacSection | None = None
    fill: FillSpec = FillSpec()

    @model_validator(mode="after")
    def _some_source(self) -> IngestConfig:
        if not self.sources and self.stac is None:
            raise ValueError("give local sources, a stac section, or both")
        return self

    @field_validator("period")
    @classmethod
    def _months(cls, period: tuple[str, str]) -> tuple[str, str]:
        try:
            first, last = (pd.Timestamp(p) for p in period)
        except ValueError:
            raise ValueError(f"period {period}: write months as YYYY-MM") from None
        if last < first:
            raise ValueError(f"period {period} ends before it starts")
        return first.strftime("%Y-%m"), last.strftime("%Y-%m")


def load_ingest_config(path: str | Path) -> IngestConfig:
    """Read an ingest config from YAML, with one clear error for any problem in it."""
    path = Path(path)
    try:
        fields = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidCubeError(f"{path}: no such ingest config") from None
    except yaml.YAMLError as err:
        raise InvalidCubeError(f"{path}: not valid YAML ({err})") from None
    try:
        return IngestConfig(**(fields or {}))
    except (ValidationError, TypeError) as err:
        if isinstance(err, ValidationError):
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"])) or "config"
            raise InvalidCubeError(f"{path}: {where}: {first['msg']}") from None
        raise InvalidCubeError(
            f"{path}: an ingest config is a mapping (grid, period, sources)"
        ) from None
