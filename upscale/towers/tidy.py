"""Tidy tower tables: fluxes and drivers as ``site_id, time, <column>...`` CSVs, monthly.

A tidy table holds one row per tower and time step (or month), any number of towers, and any
of ``GPP``, ``RE``, ``NEE`` (gC m-2 d-1) and driver columns in the units of
[`upscale.schema`][upscale.schema]. [`read_tidy`][upscale.towers.tidy.read_tidy] reads such a
table of fluxes (a site folder's CSVs that no tower format of
[`upscale.towers.sites`][upscale.towers.sites] claims);
[`read_site_drivers`][upscale.towers.tidy.read_site_drivers] reads one of drivers only (e.g.
MODIS subsets at the towers), and [`site_drivers_csv`][upscale.towers.tidy.site_drivers_csv]
writes one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from upscale.errors import InvalidTowerDataError
from upscale.schema import DRIVERS, TARGETS, implausible_value
from upscale.towers.monthly import MISSING, SITE_ID, TIME, TIME_DTYPE, parse_numbers, read_header


def read_tidy(path: str | Path) -> pd.DataFrame:
    """Read a tidy tower table and aggregate it to monthly means per site.

    Parameters
    ----------
    path
        CSV with columns ``site_id``, ``time`` (ISO dates: ``2015-07-01``, ``2015-07``, with
        or without a time of day) and at least one of
        ``GPP``, ``RE``, ``NEE`` (gC m-2 d-1); other numeric columns (drivers measured at the site,
        in the units of [`upscale.schema`][upscale.schema]) are kept. ``-9999`` is missing.

    Returns
    -------
    pandas.DataFrame
        Long table sorted by ``site_id`` and ``time``: ``site_id`` (str), ``time`` (first of
        the month), ``GPP``, ``RE``, ``NEE`` (NaN columns for those absent), then the other
        columns in file order.

    Raises
    ------
    InvalidTowerDataError
        When a required column is missing, a time does not parse, or a value column is not
        numeric.

    Notes
    -----
    Times are floored to the month; rows finer than monthly (daily, half-hourly) are
    averaged over the valid values of each site and month. No coverage rule applies, since
    a tidy table does not say its time step.
    """
    path = Path(path)
    header = read_header(path)
    missing = [c for c in (SITE_ID, TIME) if c not in header]
    if missing:
        raise InvalidTowerDataError(
            f"{path.name}: not a tidy site table (no {' or '.join(missing)} column); "
            f"tidy CSVs need {SITE_ID}, {TIME} and any of {', '.join(TARGETS)}"
        )
    if not any(t in header for t in TARGETS):
        raise InvalidTowerDataError(
            f"{path.name}: no flux column; a tidy site table needs at least one of "
            f"{', '.join(TARGETS)} (gC m-2 d-1)"
        )
    return _tidy_monthly(path)


def read_site_drivers(path: str | Path) -> pd.DataFrame:
    """Read drivers measured or extracted at the towers (e.g. MODIS subsets), monthly.

    Parameters
    ----------
    path
        CSV with ``site_id``, ``time`` and driver columns: canonical drivers (``NDVI``,
        ``LAI``, ``TA``...) in the units of [`upscale.schema`][upscale.schema], or any other
        numeric column (``PAR``, ``WTD``, ``SALINITY``...), whose units are taken as given;
        ``-9999`` is missing.

    Returns
    -------
    pandas.DataFrame
        ``site_id``, ``time`` (first of the month) and the driver columns, monthly means.

    Raises
    ------
    InvalidTowerDataError
        When ``site_id`` or ``time`` is missing, a column holds a flux, a value or time does
        not parse, or a canonical driver leaves its plausible range.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidTowerDataError(f"{path}: no such file of site drivers")
    header = read_header(path)
    fluxes = [c for c in header if c in TARGETS]
    if SITE_ID not in header or TIME not in header or fluxes:
        raise InvalidTowerDataError(
            f"{path.name}: a site-driver table has {SITE_ID}, {TIME} and driver columns, no "
            f"fluxes; found {', '.join(header)}"
        )
    monthly = _tidy_monthly(path)
    monthly = monthly.drop(columns=list(TARGETS))
    drivers = [c for c in monthly.columns if c in DRIVERS]
    problem = implausible_value(drivers, monthly[drivers].min(), monthly[drivers].max())
    if problem:
        raise InvalidTowerDataError(f"{path.name}: {problem}; check its units")
    return monthly


def _tidy_monthly(path: Path) -> pd.DataFrame:
    """Monthly means per site of a tidy table's numeric columns, fluxes first."""
    table = pd.read_csv(path, dtype={SITE_ID: str, TIME: str}, na_values=[str(int(MISSING))])
    try:
        # Only ISO dates: a guessed format reads 01/02/2010 as 2 January or 1 February.
        time = pd.to_datetime(table[TIME], format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(table[TIME], format="ISO8601", errors="coerce")
        first = table[TIME][parsed.isna()].iloc[0]
        raise InvalidTowerDataError(
            f"{path.name}: column {TIME} has values that are not ISO dates (e.g. {first!r}); "
            "write dates such as 2015-07-01 (year-month-day)"
        ) from None
    other = [c for c in table.columns if c not in (SITE_ID, TIME)]
    values = parse_numbers(
        table, other, path, "use numbers, and -9999 or an empty field for missing"
    )
    if table[SITE_ID].isna().any():
        raise InvalidTowerDataError(f"{path.name}: rows without {SITE_ID}; fill or remove them")
    values = values.mask(values == MISSING)
    values[SITE_ID] = table[SITE_ID].str.strip()
    values[TIME] = time.dt.to_period("M").dt.to_timestamp().astype(TIME_DTYPE)
    monthly = values.groupby([SITE_ID, TIME], sort=True).mean().reset_index()
    for target in TARGETS:
        if target not in monthly:
            monthly[target] = np.nan
    rest = [c for c in other if c not in TARGETS]
    return monthly[[SITE_ID, TIME, *TARGETS, *rest]]


def site_drivers_csv(table: pd.DataFrame) -> str:
    """Format drivers at the towers as the tidy CSV that `read_site_drivers` reads.

    Parameters
    ----------
    table
        ``site_id``, ``time`` (first of the month) and driver columns, in the order to write.

    Returns
    -------
    str
        CSV text: ``site_id, time, <DRIVER>...``, dates as ``YYYY-MM-DD``, missing values
        as empty fields (so that no reader takes a nodata number for a value).
    """
    out = table.copy()
    out[TIME] = pd.to_datetime(out[TIME]).dt.strftime("%Y-%m-%d")
    return out.to_csv(index=False, na_rep="", lineterminator="\n")
