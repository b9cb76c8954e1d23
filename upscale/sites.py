"""Tower data: FLUXNET2015/ONEFlux files and tidy tables, aggregated to monthly means.

A site folder holds ``sites.csv`` (``site_id, lat, lon, ecosystem``) and the towers' flux files:
FLUXNET2015/ONEFlux CSVs named ``FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv`` at any resolution
from half-hourly to monthly, and/or tidy CSVs (``site_id, time, GPP, RE, NEE`` and optional driver
columns). Everything is converted to the model step: monthly means stamped on the first of the
month, fluxes in gC m-2 d-1, drivers in the units of [`upscale.schema`][upscale.schema].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from upscale.errors import SiteDataError
from upscale.schema import DRIVERS, ECOSYSTEM_CODES, FLUXES, TARGETS, implausible_value

Partitioning = Literal["NT", "DT"]
"""Flux partitioning of FLUXNET: night-time (Reichstein et al.) or daytime (Lasslop et al.)."""

SITE_ID = "site_id"
TIME = "time"
SITES_TABLE = "sites.csv"
META_COLUMNS = ("lat", "lon", "ecosystem")

GPP = FLUXES["GPP"].name
RE = FLUXES["RE"].name
NEE = FLUXES["NEE"].name
QC = f"{NEE}_QC"
"""Monthly fraction of measured or good-quality gap-filled NEE (0..1)."""

UMOL_CO2_TO_GC_PER_DAY = 12.011e-6 * 86400.0
"""µmol CO2 m-2 s-1 to gC m-2 d-1: 12.011 µg C per µmol, 86400 s per day."""

MISSING = -9999.0
_TIME_DTYPE = "datetime64[ns]"  # one resolution for every reader, as xarray decodes times
RESOLUTIONS = ("HH", "HR", "DD", "WW", "MM")
FILE_PATTERN = "FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv with RES in HH, HR, DD, WW, MM"
_FILE_RE = re.compile(
    r"^FLX_(?P<site>[A-Za-z0-9]+-[A-Za-z0-9]+)_(?P<product>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)"
    r"_(?P<res>HH|HR|DD|WW|MM|YY)_(?P<y1>\d{4})-(?P<y2>\d{4})_(?P<version>[A-Za-z0-9.-]+)\.csv$"
)
# Products of a FLUXNET download that hold no tower fluxes; read_sites passes over them.
_AUXILIARY_PRODUCTS = ("ERAI", "AUXMETEO", "AUXNEE")
# When a site has files at several resolutions, read_sites uses the first one found here:
# the coarsest is the network's own monthly aggregate and the cheapest to read.
_PREFERENCE = ("MM", "WW", "DD", "HR", "HH")
_STEPS_PER_DAY = {"HH": 48, "HR": 24, "DD": 1, "WW": 1}
_TIMESTAMPS = {
    "HH": ("TIMESTAMP_START",),
    "HR": ("TIMESTAMP_START",),
    "DD": ("TIMESTAMP",),
    "WW": ("TIMESTAMP_START", "TIMESTAMP_END"),
    "MM": ("TIMESTAMP",),
}
_TIME_FORMATS = {
    "HH": "%Y%m%d%H%M",
    "HR": "%Y%m%d%H%M",
    "DD": "%Y%m%d",
    "WW": "%Y%m%d",
    "MM": "%Y%m",
}

_NEE_COLUMN = "NEE_VUT_REF"
_QC_COLUMN = "NEE_VUT_REF_QC"
_DRIVER_COLUMNS = {
    "TA_F": DRIVERS["TA"].name,
    "SW_IN_F": DRIVERS["SW_IN"].name,
    "VPD_F": DRIVERS["VPD"].name,
    "P_F": DRIVERS["PRECIP"].name,
}
_PRECIP = DRIVERS["PRECIP"].name
_PARTITIONINGS: tuple[str, ...] = ("NT", "DT")
# write_fluxnet_monthly takes daytime-partitioned GPP and RE as GPP_DT and RE_DT.
_DT_SUFFIX = "_DT"


def _flux_columns(partitioning: str) -> dict[str, str]:
    """FLUXNET column -> canonical flux name for one partitioning."""
    return {
        f"GPP_{partitioning}_VUT_REF": GPP,
        f"RECO_{partitioning}_VUT_REF": RE,
        _NEE_COLUMN: NEE,
    }


@dataclass(frozen=True)
class SiteData:
    """Tower metadata and monthly fluxes of a site folder.

    Attributes
    ----------
    meta
        One row per tower, index ``site_id`` (str); columns ``lat``, ``lon`` (float, degrees
        WGS84) and ``ecosystem`` (``mangrove`` | ``saltmarsh``).
    fluxes
        Long table, one row per tower and month: ``site_id``, ``time`` (datetime64, first of
        the month), ``GPP``, ``RE``, ``NEE`` (float, gC m-2 d-1; NaN where missing or
        filtered), plus the driver columns found (``TA`` degC, ``SW_IN`` W m-2, ``VPD`` hPa,
        ``PRECIP`` mm d-1, or others of a tidy table) and ``NEE_QC`` (fraction) where known.
    """

    meta: pd.DataFrame
    fluxes: pd.DataFrame


def parse_fluxnet_name(path: str | Path) -> dict[str, str]:
    """Split a FLUXNET file name into its parts.

    Parameters
    ----------
    path
        File path; only its name is used.

    Returns
    -------
    dict
        ``site``, ``product``, ``res``, ``y1``, ``y2`` and ``version``.

    Raises
    ------
    SiteDataError
        When the name does not follow ``FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv``.
    """
    name = Path(path).name
    match = _FILE_RE.match(name)
    if match is None:
        raise SiteDataError(
            f"{name}: not a FLUXNET file name; expected {FILE_PATTERN} "
            "(e.g. FLX_US-Skr_FLUXNET2015_FULLSET_DD_2004-2011_1-4.csv); rename it"
        )
    return match.groupdict()


def read_fluxnet(
    path: str | Path,
    *,
    partitioning: Partitioning = "NT",
    qc_min: float = 0.5,
    min_coverage: float = 0.5,
) -> pd.DataFrame:
    """Read one FLUXNET2015/ONEFlux CSV and aggregate it to monthly means.

    Parameters
    ----------
    path
        A file named ``FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv``, RES in HH, HR, DD, WW,
        MM; the resolution is taken from the name.
    partitioning
        ``"NT"`` reads ``GPP_NT_VUT_REF`` and ``RECO_NT_VUT_REF``, ``"DT"`` the daytime
        variants. NEE is ``NEE_VUT_REF`` either way.
    qc_min
        Months whose fraction of measured or good-quality gap-filled NEE (``NEE_QC``) is
        below this get NaN GPP, RE and NEE: the partitioned fluxes derive from NEE, so NEE's
        quality applies to all three.
    min_coverage
        A month with fewer than this fraction of its time steps valid for a variable is NaN
        for that variable, so a few days do not stand for a whole month.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``time`` (gapless month starts from the file's first to last month);
        columns ``GPP``, ``RE``, ``NEE`` (gC m-2 d-1), ``NEE_QC`` (fraction, NaN when the
        file has no ``NEE_VUT_REF_QC``), and the drivers present: ``TA`` (degC, from
        ``TA_F``), ``SW_IN`` (W m-2, ``SW_IN_F``), ``VPD`` (hPa, ``VPD_F``), ``PRECIP``
        (mm d-1, ``P_F``).

    Raises
    ------
    SiteDataError
        When the name does not parse, the resolution is annual, columns are missing or
        unreadable, or no month keeps a valid flux.

    See Also
    --------
    read_sites : a whole folder with its ``sites.csv``.
    write_fluxnet_monthly : the writer this reader round-trips with.

    Notes
    -----
    ``-9999`` is missing. Timestamps: HH/HR ``TIMESTAMP_START`` (YYYYMMDDHHMM), DD
    ``TIMESTAMP`` (YYYYMMDD), WW ``TIMESTAMP_START``/``TIMESTAMP_END`` (YYYYMMDD), MM
    ``TIMESTAMP`` (YYYYMM).

    Units follow FLUXNET2015: HH/HR fluxes are µmol CO2 m-2 s-1 and are multiplied by
    12.011e-6 * 86400; DD/WW/MM fluxes are already gC m-2 d-1. ``P_F`` is the precipitation
    of the step: mm per half-hour (HH) or hour (HR), scaled by 48 or 24 to mm d-1; the daily
    sum at DD (mm d-1); at WW and MM ONEFlux averages the daily sums, so it is already
    mm d-1 (only YY is a sum over the period, and YY files are refused).

    A weekly value is a daily mean over the days of its week, and ONEFlux weeks straddle
    months (the last of each year has 8 or 9 days). Each week is spread over its days, from
    ``TIMESTAMP_START`` to ``TIMESTAMP_END`` inclusive (or exclusive, when each end is the
    next week's start), before taking monthly means, so a month gets a day-weighted mean.

    Coverage counts the valid steps of a variable against the steps of the calendar month
    (48 per day at HH, 24 at HR, days at DD and WW, one at MM); it applies to drivers too.
    ``NEE_QC``: at HH/HR ``NEE_VUT_REF_QC`` is a flag (0 measured, 1 good, 2 medium, 3 poor
    gap-fill) and the month's fraction is the share of flags 0 or 1; at DD/WW/MM it is
    already a fraction and the month's is their (day-weighted) mean.
    """
    path = Path(path)
    _check_options(partitioning, qc_min, min_coverage)
    parts = parse_fluxnet_name(path)
    res = parts["res"]
    if res not in RESOLUTIONS:
        raise SiteDataError(
            f"{path.name}: annual ({res}) files cannot give monthly values; use the site's "
            "MM, WW, DD, HR or HH file"
        )
    header = _read_header(path)
    flux_columns = _flux_columns(partitioning)
    _check_flux_columns(path, header, partitioning)
    time_columns = list(_TIMESTAMPS[res])
    missing_time = [c for c in time_columns if c not in header]
    if missing_time:
        raise SiteDataError(
            f"{path.name}: missing timestamp column(s) {', '.join(missing_time)} required at "
            f"resolution {res}; is the resolution in the file name right?"
        )
    value_columns = [*flux_columns, *(c for c in (_QC_COLUMN, *_DRIVER_COLUMNS) if c in header)]
    table = _read_table(path, time_columns, value_columns)

    values = table[value_columns].rename(columns={**flux_columns, **_DRIVER_COLUMNS})
    qc = values.pop(_QC_COLUMN) if _QC_COLUMN in values else pd.Series(np.nan, values.index)
    if res in ("HH", "HR"):
        values[[GPP, RE, NEE]] *= UMOL_CO2_TO_GC_PER_DAY
        if _PRECIP in values:
            values[_PRECIP] *= _STEPS_PER_DAY[res]
        # Flags 0 and 1 are measured or good gap-fill; a missing flag stays unknown.
        qc = (qc <= 1).astype(float).where(qc.notna())
    values[QC] = qc

    values.index = _parse_time(path, table[time_columns[0]], _TIME_FORMATS[res])
    if res == "WW":
        end = _parse_time(path, table[time_columns[1]], _TIME_FORMATS[res])
        values = _spread_weeks(path, values, end)
    if values.index.has_duplicates:
        first = values.index[values.index.duplicated()][0]
        raise SiteDataError(f"{path.name}: duplicated timestamp {first}; remove the repeated rows")

    monthly = _monthly_means(values.sort_index(), res, min_coverage)
    # NaN QC (no flags) is unknown quality, not poor quality: those months are kept.
    poor = monthly[QC] < qc_min
    monthly.loc[poor, [GPP, RE, NEE]] = np.nan
    if monthly[[GPP, RE, NEE]].isna().all(axis=None):
        raise SiteDataError(
            f"{path.name}: no month keeps a valid flux ({int(poor.sum())} of {len(monthly)} "
            f"month(s) have {QC} < qc_min={qc_min:g}; the others have less than "
            f"min_coverage={min_coverage:g} of their steps valid); lower qc_min or "
            "min_coverage, or leave this tower out"
        )
    drivers = [c for c in _DRIVER_COLUMNS.values() if c in monthly]
    return monthly[[GPP, RE, NEE, QC, *drivers]]


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
    SiteDataError
        When a required column is missing, a time does not parse, or a value column is not
        numeric.

    Notes
    -----
    Times are floored to the month; rows finer than monthly (daily, half-hourly) are
    averaged over the valid values of each site and month. No coverage rule applies, since
    a tidy table does not say its time step.
    """
    path = Path(path)
    header = _read_header(path)
    missing = [c for c in (SITE_ID, TIME) if c not in header]
    if missing:
        raise SiteDataError(
            f"{path.name}: not a tidy site table (no {' or '.join(missing)} column); "
            f"tidy CSVs need {SITE_ID}, {TIME} and any of {', '.join(TARGETS)}"
        )
    if not any(t in header for t in TARGETS):
        raise SiteDataError(
            f"{path.name}: no flux column; a tidy site table needs at least one of "
            f"{', '.join(TARGETS)} (gC m-2 d-1)"
        )
    return _tidy_monthly(path)


def read_site_drivers(path: str | Path) -> pd.DataFrame:
    """Read drivers measured or extracted at the towers (e.g. MODIS subsets), monthly.

    Parameters
    ----------
    path
        CSV with ``site_id``, ``time`` and canonical driver columns (``NDVI``, ``LAI``,
        ``TA``...) in the units of [`upscale.schema`][upscale.schema]; ``-9999`` is missing.

    Returns
    -------
    pandas.DataFrame
        ``site_id``, ``time`` (first of the month) and the driver columns, monthly means.

    Raises
    ------
    SiteDataError
        When a column is not a canonical driver, or a value or time does not parse.
    """
    path = Path(path)
    if not path.exists():
        raise SiteDataError(f"{path}: no such file of site drivers")
    header = _read_header(path)
    unknown = [c for c in header if c not in (SITE_ID, TIME) and c not in DRIVERS]
    if SITE_ID not in header or TIME not in header or unknown:
        raise SiteDataError(
            f"{path.name}: a site-driver table has {SITE_ID}, {TIME} and canonical drivers "
            f"({', '.join(DRIVERS)}); unknown columns: {unknown or 'none'}"
        )
    monthly = _tidy_monthly(path)
    monthly = monthly.drop(columns=[t for t in TARGETS if t not in header])
    drivers = [c for c in monthly.columns if c in DRIVERS]
    problem = implausible_value(drivers, monthly[drivers].min(), monthly[drivers].max())
    if problem:
        raise SiteDataError(f"{path.name}: {problem}; check its units")
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
        raise SiteDataError(
            f"{path.name}: column {TIME} has values that are not ISO dates (e.g. {first!r}); "
            "write dates such as 2015-07-01 (year-month-day)"
        ) from None
    other = [c for c in table.columns if c not in (SITE_ID, TIME)]
    values = _parse_numbers(
        table, other, path, "use numbers, and -9999 or an empty field for missing"
    )
    if table[SITE_ID].isna().any():
        raise SiteDataError(f"{path.name}: rows without {SITE_ID}; fill or remove them")
    values = values.mask(values == MISSING)
    values[SITE_ID] = table[SITE_ID].str.strip()
    values[TIME] = time.dt.to_period("M").dt.to_timestamp().astype(_TIME_DTYPE)
    monthly = values.groupby([SITE_ID, TIME], sort=True).mean().reset_index()
    for target in TARGETS:
        if target not in monthly:
            monthly[target] = np.nan
    rest = [c for c in other if c not in TARGETS]
    return monthly[[SITE_ID, TIME, *TARGETS, *rest]]


def read_sites(
    folder: str | Path,
    *,
    partitioning: Partitioning = "NT",
    qc_min: float = 0.5,
    min_coverage: float = 0.5,
) -> SiteData:
    """Read a site folder: ``sites.csv`` plus FLUXNET and/or tidy CSVs.

    Parameters
    ----------
    folder
        Holds ``sites.csv`` (``site_id, lat, lon, ecosystem``; ecosystem ``mangrove`` or
        ``saltmarsh``), FLUXNET files ``FLX_<SITE>_*.csv`` and/or tidy CSVs.
    partitioning, qc_min, min_coverage
        Passed to [`read_fluxnet`][upscale.sites.read_fluxnet]; tidy tables are taken as they are.

    Returns
    -------
    SiteData
        Metadata indexed by ``site_id`` and the long monthly flux table, sorted by site and
        time.

    Raises
    ------
    SiteDataError
        When ``sites.csv`` is missing or malformed (a missing column, an unknown ecosystem,
        coordinates out of range, a duplicated site), a flux file is unreadable, a site has
        data but no row in ``sites.csv`` or a row but no data (or data in two files), or a
        site keeps no valid month.

    See Also
    --------
    read_fluxnet, read_tidy

    Notes
    -----
    Every ``*.csv`` other than ``sites.csv`` must be a FLUXNET file or a tidy table. The
    auxiliary products of a FLUXNET download (``ERAI``, ``AUXMETEO``, ``AUXNEE``) and annual
    (YY) files are passed over. When a site has FLUXNET files at several resolutions, the
    coarsest is read (MM, then WW, DD, HR, HH): all give the same monthly means.
    """
    folder = Path(folder)
    _check_options(partitioning, qc_min, min_coverage)
    if not folder.is_dir():
        raise SiteDataError(f"{folder}: no such folder; pass the folder holding {SITES_TABLE}")
    meta = _read_meta(folder / SITES_TABLE)

    fluxnet: dict[str, dict[str, list[Path]]] = {}
    tidy: list[Path] = []
    for path in sorted(folder.glob("*.csv")):
        if path.name == SITES_TABLE:
            continue
        if path.name.startswith("FLX_"):
            parts = parse_fluxnet_name(path)
            auxiliary = parts["product"].upper().endswith(_AUXILIARY_PRODUCTS)
            if auxiliary or parts["res"] not in RESOLUTIONS:
                continue
            fluxnet.setdefault(parts["site"], {}).setdefault(parts["res"], []).append(path)
        else:
            tidy.append(path)
    if not fluxnet and not tidy:
        raise SiteDataError(
            f"{folder}: no flux files; add FLUXNET files ({FILE_PATTERN}) or tidy CSVs "
            f"({SITE_ID}, {TIME}, {', '.join(TARGETS)})"
        )

    tables: list[pd.DataFrame] = []
    source: dict[str, Path] = {}
    for site, by_res in sorted(fluxnet.items()):
        res = next(r for r in _PREFERENCE if r in by_res)
        if len(by_res[res]) > 1:
            names = ", ".join(p.name for p in by_res[res])
            raise SiteDataError(f"site {site} has several {res} files ({names}); keep one per site")
        path = by_res[res][0]
        monthly = read_fluxnet(
            path, partitioning=partitioning, qc_min=qc_min, min_coverage=min_coverage
        )
        tables.append(monthly.reset_index().assign(**{SITE_ID: site}))
        source[site] = path
    for path in tidy:
        table = read_tidy(path)
        for site in table[SITE_ID].unique():
            if site in source:
                raise SiteDataError(
                    f"site {site} has data in both {source[site].name} and {path.name}; "
                    "keep it in one file"
                )
            source[site] = path
        tables.append(table)

    unknown = sorted(set(source) - set(meta.index))
    if unknown:
        listed = ", ".join(f"{s} ({source[s].name})" for s in unknown)
        raise SiteDataError(
            f"{folder / SITES_TABLE}: no row for site(s) {listed}; add their lat, lon and "
            "ecosystem, or remove their data"
        )
    without = sorted(set(meta.index) - set(source))
    if without:
        raise SiteDataError(
            f"{folder / SITES_TABLE}: no flux data for site(s) {', '.join(without)}; add "
            "their FLUXNET or tidy file, or remove their rows"
        )

    fluxes = pd.concat(tables, ignore_index=True)
    first = [SITE_ID, TIME, *TARGETS]
    fluxes = fluxes[first + [c for c in fluxes.columns if c not in first]]
    fluxes[SITE_ID] = fluxes[SITE_ID].astype(str)
    fluxes[TIME] = fluxes[TIME].astype(_TIME_DTYPE)
    fluxes = fluxes.sort_values([SITE_ID, TIME], ignore_index=True)
    for site, measured in fluxes.groupby(SITE_ID)[list(TARGETS)]:
        problem = implausible_value(TARGETS, measured.min(), measured.max())
        if problem:
            raise SiteDataError(
                f"site {site} ({source[site].name}): {problem}; check the units (monthly "
                "means in gC m-2 d-1) and the signs (GPP and RE positive, uptake negative NEE)"
            )
    valid = fluxes[list(TARGETS)].notna().any(axis=1).groupby(fluxes[SITE_ID]).any()
    empty = sorted(valid.index[~valid])
    if empty:
        raise SiteDataError(
            f"site(s) {', '.join(f'{s} ({source[s].name})' for s in empty)} have no month "
            "with a valid flux; check the file, or remove the site"
        )
    return SiteData(meta=meta.sort_index(), fluxes=fluxes)


def write_fluxnet_monthly(
    site_id: str,
    monthly: pd.DataFrame,
    folder: str | Path,
    *,
    product: str = "FLUXNET2015_SUBSET",
    version: str = "1-4",
) -> Path:
    """Write monthly tower data as a FLUXNET2015 MM file.

    Parameters
    ----------
    site_id
        FLUXNET site id, e.g. ``US-Skr``.
    monthly
        Indexed by month (DatetimeIndex, or a ``time`` column), with any of ``GPP``, ``RE``,
        ``NEE`` (gC m-2 d-1, GPP/RE from the NT partitioning), ``GPP_DT``, ``RE_DT``,
        ``NEE_QC`` (fraction), ``TA`` (degC), ``SW_IN`` (W m-2), ``VPD`` (hPa), ``PRECIP``
        (mm d-1).
    folder
        Destination folder (created if needed).
    product, version
        Parts of the file name.

    Returns
    -------
    pathlib.Path
        ``FLX_<SITE>_<PRODUCT>_MM_<Y1>-<Y2>_<version>.csv``, covering whole years (January
        of the first to December of the last); months without data are ``-9999``.

    Raises
    ------
    SiteDataError
        When the site id or product would not give a parseable file name, the table has no
        recognised column, or its times are not monthly.

    Notes
    -----
    Columns, when their input exists: ``TIMESTAMP`` (YYYYMM), ``NEE_VUT_REF``, ``NEE_VUT_REF_QC``,
    ``GPP_NT_VUT_REF``, ``RECO_NT_VUT_REF``, ``GPP_DT_VUT_REF``, ``RECO_DT_VUT_REF``, ``TA_F``,
    ``SW_IN_F``, ``VPD_F``, ``P_F``. MM units equal the canonical ones, so values are written
    unchanged and [`read_fluxnet`][upscale.sites.read_fluxnet] reads them back.
    """
    table = monthly.set_index(TIME) if TIME in monthly.columns else monthly
    try:
        times = pd.DatetimeIndex(table.index)
    except (TypeError, ValueError):
        raise SiteDataError(
            f"site {site_id}: the monthly table needs a DatetimeIndex or a {TIME} column"
        ) from None
    months = times.to_period("M")
    if months.has_duplicates:
        raise SiteDataError(f"site {site_id}: the monthly table has two rows for one month")
    columns = {
        _NEE_COLUMN: NEE,
        _QC_COLUMN: QC,
        **{c: name for c, name in _flux_columns("NT").items() if name != NEE},
        **{c: name + _DT_SUFFIX for c, name in _flux_columns("DT").items() if name != NEE},
        **{c: name for c, name in _DRIVER_COLUMNS.items()},
    }
    present = {c: name for c, name in columns.items() if name in table.columns}
    if not present:
        raise SiteDataError(
            f"site {site_id}: the monthly table has none of {', '.join(columns.values())}"
        )
    full = pd.period_range(f"{months.min().year}-01", f"{months.max().year}-12", freq="M")
    out = table[list(present.values())].set_axis(months).reindex(full)
    out.columns = list(present)
    out.insert(0, "TIMESTAMP", full.strftime("%Y%m"))
    name = f"FLX_{site_id}_{product}_MM_{full[0].year}-{full[-1].year}_{version}.csv"
    parse_fluxnet_name(name)
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, na_rep=f"{MISSING:g}")
    return path


def write_sites_table(meta: pd.DataFrame, folder: str | Path) -> Path:
    """Write ``sites.csv`` for a site folder.

    Parameters
    ----------
    meta
        Indexed by ``site_id`` (or with a ``site_id`` column), with ``lat``, ``lon``
        (degrees WGS84) and ``ecosystem``; other columns are not written.
    folder
        Destination folder (created if needed).

    Returns
    -------
    pathlib.Path
        The written ``sites.csv`` (columns ``site_id, lat, lon, ecosystem``).

    Raises
    ------
    SiteDataError
        When a column is missing.
    """
    table = meta.reset_index() if SITE_ID not in meta.columns else meta
    missing = [c for c in (SITE_ID, *META_COLUMNS) if c not in table.columns]
    if missing:
        raise SiteDataError(f"site table to write lacks column(s) {', '.join(missing)}")
    path = Path(folder) / SITES_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    table[[SITE_ID, *META_COLUMNS]].to_csv(path, index=False)
    return path


def read_sites_table(folder: str | Path) -> pd.DataFrame:
    """Read only the tower table of a site folder, for work that needs no fluxes.

    Parameters
    ----------
    folder
        Site folder holding ``sites.csv``, or that file itself.

    Returns
    -------
    pandas.DataFrame
        ``lat``, ``lon`` (degrees WGS84) and ``ecosystem``, indexed by ``site_id``, in the
        file's order.

    Raises
    ------
    SiteDataError
        When ``sites.csv`` is missing or malformed (see
        [`read_sites`][upscale.sites.read_sites]).
    """
    path = Path(folder)
    return _read_meta(path if path.suffix.lower() == ".csv" else path / SITES_TABLE)


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


def _check_options(partitioning: str, qc_min: float, min_coverage: float) -> None:
    if partitioning not in _PARTITIONINGS:
        raise ValueError(f"partitioning must be 'NT' or 'DT', got {partitioning!r}")
    for name, value in (("qc_min", qc_min), ("min_coverage", min_coverage)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")


def _read_header(path: Path) -> list[str]:
    """Column names of a CSV, with a SiteDataError when it cannot be read."""
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
    except FileNotFoundError:
        raise SiteDataError(f"{path}: no such file") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SiteDataError(f"{path.name}: not a readable CSV ({err})") from None


def _check_flux_columns(path: Path, header: list[str], partitioning: str) -> None:
    """Raise one error listing every missing flux column, with the likely fix."""
    missing = [c for c in _flux_columns(partitioning) if c not in header]
    if not missing:
        return
    other = next(p for p in _PARTITIONINGS if p != partitioning)
    if all(c in header for c in _flux_columns(other)):
        fix = f"the file has the {other} partitioning: use --partitioning {other}"
    else:
        fix = (
            "give a FLUXNET2015/ONEFlux FULLSET or SUBSET file (ERAI and AUX products hold "
            "no fluxes), or a tidy CSV"
        )
    raise SiteDataError(
        f"{path.name}: missing flux column(s) {', '.join(missing)} for partitioning "
        f"{partitioning}; {fix}"
    )


def _read_table(path: Path, time_columns: list[str], value_columns: list[str]) -> pd.DataFrame:
    """Timestamps as text and values as floats, ``-9999`` as NaN."""
    wanted = {*time_columns, *value_columns}
    try:
        table = pd.read_csv(
            path,
            usecols=lambda c: c.strip() in wanted,
            dtype={c: str for c in time_columns},
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise SiteDataError(f"{path.name}: cannot be read as a FLUXNET CSV ({err})") from None
    table.columns = [c.strip() for c in table.columns]
    values = _parse_numbers(table, value_columns, path, "FLUXNET files write -9999 for missing")
    table[value_columns] = values.mask(values == MISSING)
    return table


def _parse_numbers(table: pd.DataFrame, columns: list[str], path: Path, fix: str) -> pd.DataFrame:
    """Parse columns as numbers, refusing text and infinities (neither is a flux)."""
    values = table[columns].apply(pd.to_numeric, errors="coerce")
    bad = (values.isna() & table[columns].notna()) | values.isin([np.inf, -np.inf])
    if bad.any(axis=None):
        column = bad.any()[lambda s: s].index[0]
        raise SiteDataError(
            f"{path.name}: column {column} has non-numeric values (e.g. "
            f"{str(table.loc[bad[column], column].iloc[0])!r}); {fix}"
        )
    return values


def _parse_time(path: Path, column: pd.Series, fmt: str) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(column.str.strip(), format=fmt))
    except (ValueError, TypeError, AttributeError):
        raise SiteDataError(
            f"{path.name}: {column.name} has values not in the {fmt} format FLUXNET uses at "
            "this resolution; check the resolution in the file name"
        ) from None


def _spread_weeks(path: Path, weeks: pd.DataFrame, end: pd.DatetimeIndex) -> pd.DataFrame:
    """Repeat each week's daily means on every day of the week."""
    start = weeks.index
    if len(start) > 1 and np.any(end[:-1] == start[1:]):
        # TIMESTAMP_END is the next week's start: the period is half-open.
        end = end - pd.Timedelta(days=1)
    days = np.asarray((end - start).days) + 1
    if (days < 1).any():
        bad = start[days < 1][0]
        raise SiteDataError(
            f"{path.name}: a week ends before it starts (TIMESTAMP_START {bad:%Y%m%d}); "
            "fix TIMESTAMP_END"
        )
    first_row = np.repeat(np.cumsum(days) - days, days)
    offset = pd.to_timedelta(np.arange(days.sum()) - first_row, unit="D")
    daily = weeks.iloc[np.repeat(np.arange(len(weeks)), days)]
    return daily.set_axis(start.repeat(days) + offset)


def _monthly_means(values: pd.DataFrame, res: str, min_coverage: float) -> pd.DataFrame:
    """Monthly means of valid values; NaN where a variable covers too little of the month."""
    months = values.resample("MS")
    means = months.mean()
    if res == "MM":
        expected = np.ones(len(means))
    else:
        expected = np.asarray(means.index.days_in_month) * _STEPS_PER_DAY[res]
    coverage = months.count().div(expected, axis=0)
    thin = coverage.drop(columns=QC) < min_coverage
    means[thin.columns] = means[thin.columns].mask(thin)
    means.index = means.index.astype(_TIME_DTYPE).rename(TIME)
    means.index.freq = "MS"
    return means


def _read_meta(path: Path) -> pd.DataFrame:
    """Read and validate ``sites.csv``, indexed by ``site_id``."""
    if not path.exists():
        raise SiteDataError(
            f"{path}: missing; write a {SITES_TABLE} with columns {SITE_ID}, "
            f"{', '.join(META_COLUMNS)}"
        )
    header = _read_header(path)
    missing = [c for c in (SITE_ID, *META_COLUMNS) if c not in header]
    if missing:
        raise SiteDataError(
            f"{path}: missing column(s) {', '.join(missing)}; {SITES_TABLE} needs "
            f"{SITE_ID}, {', '.join(META_COLUMNS)} (lower case), and has {', '.join(header)}"
        )
    table = pd.read_csv(path, dtype={SITE_ID: str, "ecosystem": str}, skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    table[SITE_ID] = table[SITE_ID].str.strip()
    if table[SITE_ID].isna().any():
        raise SiteDataError(f"{path}: rows without {SITE_ID}; fill or remove them")
    duplicated = table[SITE_ID][table[SITE_ID].duplicated()].unique()
    if len(duplicated):
        raise SiteDataError(
            f"{path}: site(s) {', '.join(duplicated)} listed more than once; keep one row each"
        )
    ecosystem = table["ecosystem"].str.strip().str.lower()
    unknown = ~ecosystem.isin(list(ECOSYSTEM_CODES))
    if unknown.any():
        bad = ", ".join(
            f"{s} ({e!r})" for s, e in table.loc[unknown, [SITE_ID, "ecosystem"]].values
        )
        raise SiteDataError(
            f"{path}: unknown ecosystem for site(s) {bad}; use one of {', '.join(ECOSYSTEM_CODES)}"
        )
    coords = table[["lat", "lon"]].apply(pd.to_numeric, errors="coerce")
    bad_coords = (
        coords.isna().any(axis=1) | (coords["lat"].abs() > 90) | (coords["lon"].abs() > 180)
    )
    if bad_coords.any():
        raise SiteDataError(
            f"{path}: site(s) {', '.join(table.loc[bad_coords, SITE_ID])} have missing or "
            "out-of-range lat/lon; give decimal degrees (WGS84, lat -90..90, lon -180..180)"
        )
    return pd.DataFrame(
        {
            "lat": coords["lat"].astype(float),
            "lon": coords["lon"].astype(float),
            "ecosystem": ecosystem,
        },
    ).set_axis(pd.Index(table[SITE_ID], name=SITE_ID))
