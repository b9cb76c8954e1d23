"""Tower time steps to months: units, number parsing, and monthly means with a coverage rule.

The one home of what every tower-file reader shares
([`upscale.towers.fluxnet`][upscale.towers.fluxnet] for FLUXNET files,
[`upscale.towers.ameriflux`][upscale.towers.ameriflux] for AmeriFlux BASE files,
[`upscale.towers.tidy`][upscale.towers.tidy] for tidy tables, gathered by
[`upscale.towers.sites`][upscale.towers.sites]):
the names of the tower tables' key and quality columns, the µmol to gC factor, the number of
steps per day of each resolution, parsing ``-9999``-coded numbers and timestamps with one clear
error, and aggregating steps to monthly means and monthly uncertainties.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from upscale.errors import InvalidTowerDataError
from upscale.schema import FLUXES

SITE_ID = "site_id"
"""The tower column of long tower tables (str, as in ``sites.csv``)."""

TIME = "time"
"""The month column (or index) of tower tables: datetime64, first of the month."""

QC = f"{FLUXES['NEE'].name}_QC"
"""Monthly fraction of measured or good-quality gap-filled NEE (0..1; NaN unknown)."""

UMOL_CO2_TO_GC_PER_DAY = 12.011e-6 * 86400.0
"""µmol CO2 m-2 s-1 to gC m-2 d-1: 12.011 µg C per µmol, 86400 s per day."""

MISSING = -9999.0
"""The missing-value code of FLUXNET and AmeriFlux files."""

TIME_DTYPE = "datetime64[ns]"  # one resolution for every reader, as xarray decodes times
STEPS_PER_DAY = {"HH": 48, "HR": 24, "DD": 1, "WW": 1}
"""Time steps per day of each sub-monthly resolution (WW files are spread over days first)."""


def read_header(path: Path, *, comment: str | None = None) -> list[str]:
    """Column names of a CSV, with a InvalidTowerDataError when it cannot be read."""
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, comment=comment).columns]
    except FileNotFoundError:
        raise InvalidTowerDataError(f"{path}: no such file") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InvalidTowerDataError(f"{path.name}: not a readable CSV ({err})") from None


def parse_numbers(table: pd.DataFrame, columns: list[str], path: Path, fix: str) -> pd.DataFrame:
    """Parse columns as numbers, refusing text and infinities (neither is a flux)."""
    values = table[columns].apply(pd.to_numeric, errors="coerce")
    bad = (values.isna() & table[columns].notna()) | values.isin([np.inf, -np.inf])
    if bad.any(axis=None):
        column = bad.any()[lambda s: s].index[0]
        raise InvalidTowerDataError(
            f"{path.name}: column {column} has non-numeric values (e.g. "
            f"{str(table.loc[bad[column], column].iloc[0])!r}); {fix}"
        )
    return values


def parse_time(path: Path, column: pd.Series, fmt: str) -> pd.DatetimeIndex:
    """Parse a timestamp column written as text in ``fmt`` (e.g. ``%Y%m%d%H%M``)."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(column.str.strip(), format=fmt))
    except (ValueError, TypeError, AttributeError):
        raise InvalidTowerDataError(
            f"{path.name}: {column.name} has values not in the {fmt} format FLUXNET uses at "
            "this resolution; check the resolution in the file name"
        ) from None


def _expected_steps(index: pd.DatetimeIndex, res: str) -> np.ndarray:
    if res == "MM":
        return np.ones(len(index))
    return np.asarray(index.days_in_month) * STEPS_PER_DAY[res]


def _monthly_index(frame: pd.DataFrame) -> pd.DataFrame:
    frame.index = frame.index.astype(TIME_DTYPE).rename(TIME)
    frame.index.freq = "MS"
    return frame


def monthly_means(
    values: pd.DataFrame,
    res: str,
    min_coverage: float,
    *,
    no_coverage: Iterable[str] = (),
) -> pd.DataFrame:
    """Monthly means of valid values; NaN where a variable covers too little of the month.

    Parameters
    ----------
    values
        One row per time step (sorted DatetimeIndex), NaN where missing.
    res
        Resolution of the steps (``HH``, ``HR``, ``DD``, ``WW`` spread over days, ``MM``).
    min_coverage
        A month with fewer than this fraction of its steps valid for a column is NaN there.
    no_coverage
        Columns exempt from the coverage rule (e.g. quality fractions, which may be missing
        when the flux is not).

    Returns
    -------
    pandas.DataFrame
        Gapless month starts (``time``) from the first to the last month of ``values``.
    """
    months = values.resample("MS")
    means = months.mean()
    coverage = months.count().div(_expected_steps(means.index, res), axis=0)
    ruled = [c for c in means.columns if c not in set(no_coverage)]
    thin = coverage[ruled] < min_coverage
    means[ruled] = means[ruled].mask(thin)
    return _monthly_index(means)


def monthly_uncertainty(sigma: pd.DataFrame, res: str, min_coverage: float) -> pd.DataFrame:
    """Uncertainty of monthly means from per-step standard deviations, steps independent.

    Parameters
    ----------
    sigma
        One row per time step, one column per uncertainty (one standard deviation of the
        step's value, in the units the monthly means will have).
    res, min_coverage
        As in [`monthly_means`][upscale.towers.monthly.monthly_means].

    Returns
    -------
    pandas.DataFrame
        ``sqrt(sum of squares) / count`` over each month's valid steps: the standard
        deviation of a mean of independent errors; NaN where the month's coverage is thin.

    Notes
    -----
    Independence is the convention of FLUXNET's random uncertainty (Hollinger and
    Richardson 2005); it understates the joint (u*-threshold) part, which is correlated in
    time, so the monthly ``JOINTUNC`` is a lower bound.
    """
    months = sigma.pow(2).resample("MS")
    count = months.count()
    out = np.sqrt(months.sum(min_count=1)) / count.where(count > 0)
    coverage = count.div(_expected_steps(out.index, res), axis=0)
    return _monthly_index(out.mask(coverage < min_coverage))


def keep_good_months(
    monthly: pd.DataFrame,
    quality: str,
    *,
    qc_min: float,
    min_coverage: float,
    path: Path,
    what: str,
) -> pd.DataFrame:
    """Blank the fluxes of months whose NEE quality is poor; refuse a file with no month left.

    Parameters
    ----------
    monthly
        Monthly means with the fluxes and the ``quality`` column (a fraction, NaN unknown).
    quality
        The column of each month's share of good NEE steps.
    qc_min, min_coverage
        The thresholds applied, named in the error.
    path
        The file, named in the error.
    what
        What ``quality`` counts, for the error (e.g. ``"NEE_QC"``).

    Notes
    -----
    GPP and RE are partitioned from NEE, so NEE's quality applies to all three. A NaN quality
    (no flags) is unknown quality, not poor quality: those months are kept.
    """
    fluxes = list(FLUXES)
    poor = monthly[quality] < qc_min
    monthly.loc[poor, fluxes] = np.nan
    if monthly[fluxes].isna().all(axis=None):
        raise InvalidTowerDataError(
            f"{path.name}: no month keeps a valid flux ({int(poor.sum())} of {len(monthly)} "
            f"month(s) have {what} < qc_min={qc_min:g}; the others have less than "
            f"min_coverage={min_coverage:g} of their steps valid); lower qc_min or "
            "min_coverage, or leave this tower out"
        )
    return monthly
