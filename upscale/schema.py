"""Canonical variables, units and CF attributes, and validation of a driver cube against them.

This is the one place that knows variable names and units: drivers read by the models,
fluxes written to the maps, and the wetland classes of the mask. Other modules import the
constants from here instead of spelling ``"GPP"`` or ``"gC m-2 d-1"`` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from upscale.errors import InvalidCubeError


@dataclass(frozen=True)
class Variable:
    """A canonical variable: name, units (UDUNITS spelling) and CF attributes.

    Parameters
    ----------
    name
        Variable name in cubes, site tables and maps.
    units
        Canonical units; inputs in other units are rejected, never guessed.
    long_name
        Human-readable description (CF ``long_name``).
    standard_name
        CF standard name, only where one exists with the same meaning and sign.
    comment
        CF ``comment``, e.g. the sign convention of NEE.
    """

    name: str
    units: str
    long_name: str
    standard_name: str | None = None
    comment: str | None = None

    def attrs(self) -> dict[str, str]:
        """Return the CF attributes to attach to a DataArray of this variable."""
        out = {"units": self.units, "long_name": self.long_name}
        if self.standard_name:
            out["standard_name"] = self.standard_name
        if self.comment:
            out["comment"] = self.comment
        return out


FLUX_UNITS = "gC m-2 d-1"
ANNUAL_FLUX_UNITS = "gC m-2 yr-1"
TOTAL_UNITS = "Gg C yr-1"
MONTHLY_FLUX_UNITS = "gC m-2 month-1"
MONTHLY_TOTAL_UNITS = "Gg C month-1"

DRIVERS: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("LAI", "m2 m-2", "leaf area index"),
        Variable("FAPAR", "1", "fraction of absorbed photosynthetically active radiation"),
        Variable("NDVI", "1", "normalised difference vegetation index"),
        Variable("EVI", "1", "enhanced vegetation index"),
        Variable("LST_DAY", "degC", "daytime land surface temperature"),
        Variable("LST_NIGHT", "degC", "night-time land surface temperature"),
        Variable("TA", "degC", "air temperature at 2 m", "air_temperature"),
        Variable(
            "SW_IN",
            "W m-2",
            "incoming shortwave radiation",
            "surface_downwelling_shortwave_flux_in_air",
        ),
        Variable("VPD", "hPa", "vapour pressure deficit"),
        Variable("PRECIP", "mm d-1", "precipitation rate"),
    )
}
"""Canonical drivers of the models, in their default feature order."""

FLUXES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable(
            "GPP",
            FLUX_UNITS,
            "gross primary productivity",
            "gross_primary_productivity_of_biomass_expressed_as_carbon",
        ),
        Variable(
            "RE",
            FLUX_UNITS,
            "total ecosystem respiration",
            comment="Positive: carbon released from the ecosystem to the atmosphere.",
        ),
        Variable(
            "NEE",
            FLUX_UNITS,
            "net ecosystem exchange of CO2",
            comment=("Positive upward (a carbon source); the carbon sink is -NEE. NEE = RE - GPP."),
        ),
    )
}
"""Tower fluxes learned by the models and written to the maps."""


def check_driver_names(names: Iterable[str]) -> None:
    """Refuse names that are not canonical drivers, naming them and the canonical ones.

    For the keys of a config (an ingest source's variables, STAC recipes); a ``ValueError``,
    which pydantic reports with the field it was raised for.
    """
    unknown = sorted(set(names) - set(DRIVERS))
    if unknown:
        raise ValueError(f"{unknown} are not canonical drivers ({', '.join(DRIVERS)})")


TARGETS: tuple[str, ...] = tuple(FLUXES)

UNCERTAINTY_KINDS: tuple[str, ...] = ("RANDUNC", "JOINTUNC")
"""Tower uncertainty of a flux: random (measurement) and joint (random and u* threshold)."""


def uncertainty_name(flux: str, kind: str) -> str:
    """Name a tower uncertainty column of the site tables (``NEE``, ``RANDUNC``: ``NEE_RANDUNC``).

    Parameters
    ----------
    flux
        A flux of [`FLUXES`][upscale.schema.FLUXES]: ``GPP``, ``RE`` or ``NEE``.
    kind
        ``RANDUNC`` (random uncertainty) or ``JOINTUNC`` (random and u*-threshold uncertainty).

    Returns
    -------
    str
        The column name; its values are one standard deviation of the monthly mean, in
        gC m-2 d-1 like the flux.
    """
    if flux not in FLUXES or kind not in UNCERTAINTY_KINDS:
        raise ValueError(
            f"no tower uncertainty {kind!r} of {flux!r}: fluxes are {', '.join(FLUXES)}, "
            f"kinds {', '.join(UNCERTAINTY_KINDS)}"
        )
    return f"{flux}_{kind}"


TOWER_UNITS: dict[str, str] = {"PPFD_IN": "umol m-2 s-1"}
"""Units of the non-canonical numeric columns that tower files define (not model drivers)."""

SPREAD_SUFFIX = "_std"


def spread_name(flux: str) -> str:
    """Name of the ensemble spread of a flux in the maps (``GPP`` -> ``GPP_std``)."""
    return flux + SPREAD_SUFFIX


def spread_attrs(flux: str) -> dict[str, str]:
    """CF attributes of the ensemble spread of a flux."""
    return {
        "units": FLUXES[flux].units,
        "long_name": f"ensemble standard deviation of {FLUXES[flux].long_name}",
        "comment": "Spread of the ensemble members (the cross-validation folds' models).",
    }


DOMAIN_DISTANCE = Variable(
    "doa_distance",
    "1",
    "distance of the drivers' window to the nearest tower window, in units of the "
    "extrapolation threshold",
    comment=(
        "Domain of applicability: above 1 the window is farther from every tower window than "
        "95 % of tower windows are from those of other towers, and the model extrapolates."
    ),
)
EXTRAPOLATED = Variable(
    "extrapolated_fraction",
    "1",
    "share of the valid months whose drivers' window lies outside the towers' domain",
    comment="Months with doa_distance > 1, over the months from valid_from on.",
)
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "LAI": (0.0, 15.0),
    "FAPAR": (0.0, 1.0),
    "NDVI": (-1.0, 1.0),
    "EVI": (-1.0, 1.0),
    "LST_DAY": (-90.0, 90.0),
    "LST_NIGHT": (-90.0, 90.0),
    "TA": (-90.0, 60.0),
    "SW_IN": (0.0, 500.0),
    "VPD": (0.0, 120.0),
    "PRECIP": (0.0, 200.0),
    # Monthly means in gC m-2 d-1: the most productive ecosystems stay below 20 of GPP, and
    # partitioning leaves GPP and RE at most slightly negative.
    "GPP": (-3.0, 30.0),
    "RE": (-3.0, 30.0),
    "NEE": (-25.0, 15.0),
}
"""Monthly-mean ranges a correctly scaled and converted driver or flux stays within."""

PLAUSIBLE_SLACK = 0.01
"""Share of a plausible range that values may pass its bounds by."""


def implausible_value(
    names: Sequence[str], lows: Sequence[float], highs: Sequence[float]
) -> str | None:
    """Describe the first driver or flux whose values leave its plausible range, or None.

    A nodata value left unmasked (-9999), a driver in other units (K for degC) or a flux
    of the other sign gives maps and models without any other sign of it; variables
    without a range pass.

    Parameters
    ----------
    names
        Driver or flux names.
    lows, highs
        The smallest and largest value of each.
    """
    for name, low, high in zip(names, lows, highs, strict=True):
        if name in PLAUSIBLE_RANGES:
            least, most = PLAUSIBLE_RANGES[name]
            # Regridding and packing leave values a little past a hard bound (-0.01 mm d-1
            # of precipitation, -0.5 W m-2 at night): a slack of 1 % of the range lets them.
            slack = PLAUSIBLE_SLACK * (most - least)
            if low < least - slack or high > most + slack:
                variable = FLUXES.get(name) or DRIVERS[name]
                units = "" if variable.units == "1" else f" {variable.units}"
                return (
                    f"{'flux' if name in FLUXES else 'driver'} {name} ranges "
                    f"{low:.4g}..{high:.4g}, outside the plausible {least:g}..{most:g}{units}"
                )
    return None


IMPLAUSIBLE_FIX = "check its units, and that a nodata value such as -9999 is stored as NaN"
"""What to do about an implausible driver, for the messages that name one."""

DEFAULT_FEATURES: tuple[str, ...] = tuple(DRIVERS)

WETLAND = "wetland"
WETLAND_FRACTION = "wetland_fraction"
ECOSYSTEMS: dict[int, str] = {1: "mangrove", 2: "saltmarsh"}
"""Codes of the ``wetland`` mask raster; 0 is no wetland."""


def cover_name(ecosystem: str) -> str:
    """Name of the mask (and maps) variable holding one ecosystem's cover fraction."""
    return f"{ecosystem}_fraction"


ECOSYSTEM_CODES: dict[str, int] = {name: code for code, name in ECOSYSTEMS.items()}

SPATIAL_DIMS = ("y", "x")
CUBE_DIMS = ("time", "y", "x")

# Spellings of the canonical units that mean the same thing.
_UNIT_ALIASES: dict[str, set[str]] = {
    "m2 m-2": {"m2 m-2", "m2/m2", "m^2 m^-2", "m2.m-2"},
    "1": {"1", "", "-", "dimensionless", "fraction"},
    "degC": {
        "degC",
        "°C",
        "deg_C",
        "degree_C",
        "degrees_C",
        "degree_Celsius",
        "degrees_Celsius",
        "celsius",
        "Celsius",
    },
    "W m-2": {"W m-2", "W/m2", "W m^-2", "W/m^2", "W.m-2"},
    "hPa": {"hPa", "hectopascal"},
    "mm d-1": {"mm d-1", "mm/d", "mm day-1", "mm/day", "mm.d-1"},
    FLUX_UNITS: {FLUX_UNITS, "gC/m2/d", "g C m-2 d-1", "gC m-2 day-1"},
}


def units_match(found: str, expected: str) -> bool:
    """Return True when ``found`` is a spelling of the canonical ``expected`` units."""
    return found.strip() in _UNIT_ALIASES.get(expected, {expected})


def validate_cube(
    cube: xr.Dataset,
    features: Iterable[str] = DEFAULT_FEATURES,
    *,
    source: str = "cube",
) -> None:
    """Check that a driver cube follows the contract of DESIGN.md.

    Parameters
    ----------
    cube
        Dataset with dims ``(time, y, x)`` (as returned by
        [`open_cube`][upscale.io.stores.open_cube]).
    features
        Variables the caller needs; canonical ones must carry canonical units.
    source
        Name of the file the cube came from, used in error messages.

    Raises
    ------
    InvalidCubeError
        On the first violation: a missing variable, wrong dims or units, a time axis that is
        not sorted, not monthly or not stamped on the first of the month, or no CRS.

    Notes
    -----
    Only metadata and the time coordinate are read: nothing of a lazy cube is computed.
    """
    features = list(features)
    missing = [name for name in features if name not in cube.data_vars]
    if missing:
        raise InvalidCubeError(
            f"{source}: missing driver variable(s) {', '.join(missing)} "
            f"(has {', '.join(sorted(map(str, cube.data_vars))) or 'none'}); add them, or choose "
            "features the cube has"
        )
    for name in features:
        dims = cube[name].dims
        if set(dims) != set(CUBE_DIMS):
            raise InvalidCubeError(
                f"{source}: variable {name} has dims {dims}, expected {CUBE_DIMS} "
                "(lat/lon and latitude/longitude are renamed on open)"
            )
        if name in DRIVERS:
            expected = DRIVERS[name].units
            found = cube[name].attrs.get("units")
            if found is None:
                raise InvalidCubeError(
                    f"{source}: variable {name} has no 'units' attribute; "
                    f"set it to '{expected}' after checking the values are in {expected}"
                )
            if not units_match(str(found), expected):
                raise InvalidCubeError(
                    f"{source}: variable {name} is in '{found}', expected '{expected}'; "
                    "convert it before building the cube"
                )
    _validate_time(cube, source)
    if cube.rio.crs is None:
        raise InvalidCubeError(
            f"{source}: no CRS found (no 'spatial_ref' grid mapping); write one with "
            "ds.rio.write_crs(...), or use lat/lon dims for EPSG:4326"
        )
    for dim in ("y", "x"):
        _validate_spacing(cube[dim].values, dim, source)


def _validate_spacing(coords: np.ndarray, dim: str, source: str) -> None:
    """Refuse a grid whose pixels are not evenly spaced along ``dim``.

    Maps, GeoTIFFs and budgets place pixels by one origin and one step (an affine
    transform); a grid with a row or column left out would be exported stretched. Each
    coordinate may be off its place on the regular grid by a tenth of a step, which float32
    coordinates (common in NetCDF) stay well within.
    """
    values = coords.astype("float64")
    if len(values) < 3:
        return
    step = float(np.median(np.diff(values)))
    regular = values[0] + step * np.arange(len(values))
    off = np.abs(values - regular) > 0.1 * abs(step)
    if off.any():
        at = int(np.argmax(off))
        raise InvalidCubeError(
            f"{source}: the {dim} coordinates are not evenly spaced (step {step:.6g}; "
            f"{dim}={values[at]:.6g} is off its place on that grid); a row or column may "
            "be missing: regrid the cube to a regular grid (upscale ingest does)"
        )


def _validate_time(cube: xr.Dataset, source: str) -> None:
    if "time" not in cube.coords:
        raise InvalidCubeError(f"{source}: no 'time' coordinate")
    if not np.issubdtype(cube["time"].dtype, np.datetime64):
        raise InvalidCubeError(
            f"{source}: time is of type {cube['time'].dtype}, expected datetimes of a "
            "standard calendar; convert it (xarray's ds.convert_calendar('standard'))"
        )
    times = pd.DatetimeIndex(cube["time"].values)
    if len(times) == 0:
        raise InvalidCubeError(f"{source}: the time axis is empty")
    if not times.is_monotonic_increasing or times.has_duplicates:
        raise InvalidCubeError(
            f"{source}: time is not sorted or has duplicates; sort it (ds.sortby)"
        )
    off = times[(times.day != 1) | (times.hour != 0) | (times.minute != 0)]
    if len(off):
        raise InvalidCubeError(
            f"{source}: time steps must be monthly, stamped on the first of the month; "
            f"found {off[0]:%Y-%m-%d %H:%M}; resample to 'MS'"
        )
    expected = pd.date_range(times[0], periods=len(times), freq="MS")
    if not times.equals(expected):
        first_gap = next(t for t, e in zip(times, expected, strict=True) if t != e)
        raise InvalidCubeError(
            f"{source}: time is not a gapless monthly series (jump at {first_gap:%Y-%m}); "
            "fill missing months with NaN and let the gap filler handle them"
        )
