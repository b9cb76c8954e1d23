"""AmeriFlux BASE files (``AMF_<SITE>_BASE_<HH|HR>_<ver>.csv``) read to monthly tower values.

A BASE file is what a site team submits to AmeriFlux: half-hourly (or hourly) rows after two
``#`` header lines, ``TIMESTAMP_START``/``TIMESTAMP_END`` as YYYYMMDDHHMM in local standard
time, ``-9999`` missing, fluxes in µmol CO2 m-2 s-1, repeated sensors told apart by
``_<H>_<V>_<R>`` qualifiers, and the PI's own gap-filled and partitioned fluxes (``*_PI_F``)
where the team made them. This module turns one into the monthly table of
[`upscale.towers.sites`][upscale.towers.sites], with the meteorology as site drivers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from upscale.errors import InvalidTowerDataError
from upscale.schema import DRIVERS, FLUXES, TOWER_UNITS
from upscale.towers.monthly import (
    MISSING,
    QC,
    STEPS_PER_DAY,
    UMOL_CO2_TO_GC_PER_DAY,
    keep_good_months,
    monthly_means,
    parse_numbers,
    parse_time,
    read_header,
)

FORMAT = "AmeriFlux BASE"
"""How ``SiteData.sources`` names this format."""

BASE_PATTERN = "AMF_<SITE>_BASE_<HH|HR>_<ver>.csv (or AMF_<SITE>_BASE_<HH|HR>_<ver>_<any>.csv)"
# The trailing part takes cut-outs such as AMF_US-Tw3_BASE_HH_5-5_2014.csv.
_BASE_RE = re.compile(
    r"^AMF_(?P<site>[A-Za-z0-9]+-[A-Za-z0-9]+)_BASE_(?P<res>HH|HR)_(?P<version>\d+-\d+)"
    r"(?:_[^/\\]*)?\.csv$"
)
_START, _END = "TIMESTAMP_START", "TIMESTAMP_END"
_TIME_FORMAT = "%Y%m%d%H%M"
_STEP = {"HH": pd.Timedelta(minutes=30), "HR": pd.Timedelta(hours=1)}
# A hole this long is lost rows, not a flux gap (BASE files write -9999 rows for those).
_LONG_GAP = pd.Timedelta(days=1)

GPP, RE, NEE = (FLUXES[f].name for f in ("GPP", "RE", "NEE"))
MEASURED = "FC"
"""The measured (raw, gappy) CO2 flux of a BASE file, µmol CO2 m-2 s-1."""

# Role -> BASE variable roots, first present wins. The PI's gap-filled NEE is preferred to the
# raw FC since its gaps were filled with the site's own knowledge.
_SOURCES: dict[str, tuple[str, ...]] = {
    "NEE_PI": ("NEE_PI_F", "FC_PI_F"),
    MEASURED: (MEASURED,),
    GPP: ("GPP_PI_F", "GPP_PI"),
    RE: ("RECO_PI_F", "RECO_PI"),
    DRIVERS["TA"].name: ("TA",),
    DRIVERS["SW_IN"].name: ("SW_IN",),
    DRIVERS["VPD"].name: ("VPD", "VPD_PI"),
    DRIVERS["PRECIP"].name: ("P",),
    "PPFD_IN": ("PPFD_IN",),
    "USTAR": ("USTAR",),
}
_DRIVER_ROLES = [DRIVERS[d].name for d in ("TA", "SW_IN", "VPD", "PRECIP")]
_EXTRA_ROLES = list(TOWER_UNITS)  # kept as their own columns, in their own units


@dataclass(frozen=True)
class BaseSteps:
    """The resolved half-hourly (or hourly) columns of a BASE file.

    Attributes
    ----------
    values
        Regular DatetimeIndex (``TIMESTAMP_START``), rows of short holes added as NaN; one
        column per role of the file (``NEE_PI``, ``FC``, ``GPP``, ``RE`` in µmol CO2
        m-2 s-1; ``TA`` degC, ``SW_IN`` W m-2, ``VPD`` hPa, ``PRECIP`` mm per step,
        ``PPFD_IN`` µmol m-2 s-1, ``USTAR`` m s-1), only those the file has.
    res
        ``HH`` or ``HR``.
    columns
        Role -> the file column it was read from.
    """

    values: pd.DataFrame
    res: str
    columns: dict[str, str]


def is_base_name(name: str) -> bool:
    """Whether a file name claims to be an AmeriFlux BASE file (``AMF_..._BASE_...``)."""
    return name.startswith("AMF_") and "_BASE_" in name


def parse_base_name(path: str | Path) -> dict[str, str]:
    """Split a BASE file name into ``site``, ``res`` and ``version``.

    Raises
    ------
    InvalidTowerDataError
        When the name does not follow ``AMF_<SITE>_BASE_<HH|HR>_<ver>.csv``.
    """
    name = Path(path).name
    match = _BASE_RE.match(name)
    if match is None:
        raise InvalidTowerDataError(
            f"{name}: not an AmeriFlux BASE file name; expected {BASE_PATTERN} "
            "(e.g. AMF_US-Tw3_BASE_HH_5-5.csv); rename it"
        )
    return match.groupdict()


def resolve_columns(header: list[str]) -> dict[str, list[str]]:
    """Role -> candidate file columns: the unqualified variable, else its qualified sensors.

    The first root of a role present in any form wins; within it the unqualified column is
    the only candidate when present (it is the team's own choice), otherwise every
    ``<ROOT>_<H>_<V>_<R>`` column is, and `read_base_steps` keeps the one with most values.
    """
    found: dict[str, list[str]] = {}
    for role, roots in _SOURCES.items():
        for root in roots:
            if root in header:
                found[role] = [root]
                break
            qualified = [c for c in header if re.fullmatch(rf"{root}_\d+_\d+_\d+", c)]
            if qualified:
                found[role] = qualified
                break
    return found


def read_base_steps(path: str | Path) -> BaseSteps:
    """Read a BASE file's useful columns at their own step, checked and on a regular grid.

    Parameters
    ----------
    path
        ``AMF_<SITE>_BASE_<HH|HR>_<ver>.csv``.

    Returns
    -------
    BaseSteps
        The values (file units), the resolution and the columns used.

    Raises
    ------
    InvalidTowerDataError
        When the name does not parse, the file has no CO2 flux column (``FC``,
        ``NEE_PI_F`` or ``FC_PI_F``), a value or timestamp does not parse, half-hours are
        repeated, the step disagrees with the name, or rows are missing for a day or more.

    Notes
    -----
    Where a variable has several sensors and no unqualified column, the sensor with the
    most valid values is kept, not the mean of the replicates: qualifiers differ in position
    and height (``TA_1_2_1`` is the second level of a profile), so a mean would mix
    different air, and its coverage would change with each sensor's gaps.
    """
    path = Path(path)
    res = parse_base_name(path)["res"]
    header = read_header(path, comment="#")
    candidates = resolve_columns(header)
    if "NEE_PI" not in candidates and MEASURED not in candidates:
        raise InvalidTowerDataError(
            f"{path.name}: no CO2 flux column (FC, NEE_PI_F or FC_PI_F); a BASE file for "
            "upscale needs the tower's FC, or give the site's FLUXNET product instead"
        )
    for column in (_START, _END):
        if column not in header:
            raise InvalidTowerDataError(f"{path.name}: no {column} column; BASE files have both")
    wanted = sorted({c for cs in candidates.values() for c in cs})
    try:
        table = pd.read_csv(
            path, comment="#", usecols=[_START, _END, *wanted], dtype={_START: str, _END: str}
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise InvalidTowerDataError(f"{path.name}: cannot be read as a BASE CSV ({err})") from None
    numbers = parse_numbers(table, wanted, path, "BASE files write -9999 for missing")
    numbers = numbers.mask(numbers == MISSING)
    start = parse_time(path, table[_START], _TIME_FORMAT)
    end = parse_time(path, table[_END], _TIME_FORMAT)
    numbers.index = start
    _check_steps(path, start, end, res)

    chosen = {role: max(cs, key=lambda c: numbers[c].count()) for role, cs in candidates.items()}
    values = pd.DataFrame({role: numbers[c] for role, c in chosen.items()}).sort_index()
    grid = pd.date_range(values.index[0], values.index[-1], freq=_STEP[res])
    return BaseSteps(values=values.reindex(grid), res=res, columns=chosen)


def _check_steps(path: Path, start: pd.DatetimeIndex, end: pd.DatetimeIndex, res: str) -> None:
    """Refuse repeated rows, a step other than the name's, and lost rows."""
    if start.has_duplicates:
        repeated = start[start.duplicated()]
        raise InvalidTowerDataError(
            f"{path.name}: duplicated half-hours ({len(repeated)}, the first at "
            f"{repeated[0]:%Y-%m-%d %H:%M}); remove the repeated rows"
        )
    step = _STEP[res]
    lengths = pd.Series(end - start)
    if len(lengths) and lengths.median() != step:
        found = lengths.median()
        other = next((r for r, s in _STEP.items() if s == found), None)
        fix = f"name the file {other}" if other else "check TIMESTAMP_START and TIMESTAMP_END"
        raise InvalidTowerDataError(
            f"{path.name}: the rows are {found.total_seconds() / 60:g} minutes long but the "
            f"name says {res} ({step.total_seconds() / 60:g} minutes); {fix}"
        )
    ordered = start.sort_values()
    gaps = ordered[1:] - ordered[:-1]
    long = np.flatnonzero(gaps > _LONG_GAP)
    if len(long):
        first = long[0]
        after, before = ordered[first], ordered[first + 1]
        raise InvalidTowerDataError(
            f"{path.name}: {len(long)} timestamp gap(s) of a day or more; the first has no rows "
            f"from {after + step:%Y-%m-%d %H:%M} to {before - step:%Y-%m-%d %H:%M} "
            f"({(before - after - step) / pd.Timedelta(days=1):.1f} days). BASE files are "
            "continuous (missing values are -9999 rows): download the site's file again, or "
            "add the missing rows with -9999"
        )


def base_methods(columns: dict[str, str], file: str) -> dict[str, str]:
    """Describe the fluxes of a BASE file read with these columns (a ``SiteData.sources`` row)."""
    from upscale.towers import partition

    if "NEE_PI" in columns:
        nee = f"{columns['NEE_PI']} (PI gap-filled)"
    else:
        nee = f"{columns[MEASURED]} measured"
    methods = {"file": file, "format": FORMAT, f"{NEE}_method": nee}
    for flux in (GPP, RE):
        methods[f"{flux}_method"] = (
            f"{columns[flux]} (PI partitioning)" if flux in columns else partition.METHOD
        )
    return methods


def read_ameriflux(
    path: str | Path, *, qc_min: float = 0.5, min_coverage: float = 0.5
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read an AmeriFlux BASE file and aggregate it to monthly means.

    Parameters
    ----------
    path
        ``AMF_<SITE>_BASE_<HH|HR>_<ver>.csv`` (a trailing ``_<anything>`` before ``.csv`` is
        accepted, e.g. a one-year cut-out ``..._5-5_2014.csv``).
    qc_min
        Months whose fraction of measured ``FC`` (``NEE_QC``) is below this get NaN GPP,
        RE and NEE, as in [`read_fluxnet`][upscale.towers.fluxnet.read_fluxnet]; files without
        ``FC`` have NaN ``NEE_QC`` and keep their months.
    min_coverage
        A month with fewer than this fraction of its steps valid for a variable is NaN for
        that variable.

    Returns
    -------
    monthly : pandas.DataFrame
        Indexed by ``time`` (month starts); ``GPP``, ``RE``, ``NEE`` (gC m-2 d-1),
        ``NEE_QC`` (fraction of the month's steps with measured ``FC``), and the drivers
        present: ``TA`` (degC), ``SW_IN`` (W m-2), ``VPD`` (hPa, from ``VPD`` or
        ``VPD_PI``), ``PRECIP`` (mm d-1, from ``P``), ``PPFD_IN`` (µmol m-2 s-1).
    methods : dict
        The ``SiteData.sources`` row: ``file``, ``format``, ``GPP_method``, ``RE_method``,
        ``NEE_method``.

    Raises
    ------
    InvalidTowerDataError
        As [`read_base_steps`][upscale.towers.ameriflux.read_base_steps]; and when the file has
        no partitioned fluxes and hesseflux is missing or cannot partition it.

    Notes
    -----
    NEE is the PI's gap-filled ``NEE_PI_F`` or ``FC_PI_F`` when present, else the measured
    ``FC`` under the coverage rule. GPP and RE are the PI's ``GPP_PI_F``/``RECO_PI_F`` (or
    ``GPP_PI``/``RECO_PI``) when present, else the night-time partitioning of ``FC`` by
    [`partition_night_time`][upscale.towers.partition.partition_night_time] (the optional
    ``partition`` extra); NEE is then its gap-filled NEE unless the PI's is there. Fluxes
    are multiplied by 12.011e-6 * 86400 (µmol CO2 m-2 s-1 to gC m-2 d-1), ``P`` (mm per
    step) by the steps per day.
    """
    path = Path(path)
    steps = read_base_steps(path)
    values, columns = steps.values, steps.columns
    methods = base_methods(columns, path.name)
    out = pd.DataFrame(index=values.index)
    out[NEE] = values["NEE_PI"] if "NEE_PI" in values else values[MEASURED]
    if GPP not in values or RE not in values:
        from upscale.towers import partition

        parts = partition.partition_night_time(_partition_inputs(values), source=path.name)
        if "NEE_PI" not in values:
            out[NEE] = parts[NEE]
            methods[f"{NEE}_method"] = partition.NEE_METHOD
        for flux in (GPP, RE):
            out[flux] = values[flux] if flux in values else parts[flux]
    else:
        out[GPP], out[RE] = values[GPP], values[RE]
    out[[GPP, RE, NEE]] *= UMOL_CO2_TO_GC_PER_DAY
    measured = values[MEASURED].notna().astype(float) if MEASURED in values else np.nan
    out[QC] = measured
    for role in (*_DRIVER_ROLES, *_EXTRA_ROLES):
        # A sensor column of -9999 only (P at many towers) is no driver: leave it out.
        if role in values and values[role].notna().any():
            out[role] = values[role]
    if DRIVERS["PRECIP"].name in out:
        out[DRIVERS["PRECIP"].name] *= STEPS_PER_DAY[steps.res]

    monthly = monthly_means(out, steps.res, min_coverage, no_coverage=[QC])
    monthly = keep_good_months(
        monthly,
        QC,
        qc_min=qc_min,
        min_coverage=min_coverage,
        path=path,
        what="the share of steps with measured FC",
    )
    order = [GPP, RE, NEE, QC, *(c for c in (*_DRIVER_ROLES, *_EXTRA_ROLES) if c in monthly)]
    return monthly[order], methods


def _partition_inputs(values: pd.DataFrame) -> pd.DataFrame:
    """Select the partitioning's inputs under its own names (FC, TA, SW_IN, VPD, USTAR)."""
    names = {MEASURED: "FC", "TA": "TA", "SW_IN": "SW_IN", "VPD": "VPD", "USTAR": "USTAR"}
    return pd.DataFrame({new: values[old] for old, new in names.items() if old in values})
