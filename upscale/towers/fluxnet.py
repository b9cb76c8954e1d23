"""FLUXNET-family tower files (FLUXNET2015, ONEFlux, FLUXNET-CH4) read to monthly means.

A file is named ``FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv`` at any resolution from
half-hourly to monthly (FLUXNET-CH4 files and the network-prefixed ONEFlux files of the
FLUXNET download system too). [`read_fluxnet`][upscale.towers.fluxnet.read_fluxnet] turns one into
the monthly table of [`upscale.towers.sites`][upscale.towers.sites]: means stamped on the first of
the month, fluxes in gC m-2 d-1, drivers in the units of [`upscale.schema`][upscale.schema];
[`write_fluxnet_monthly`][upscale.towers.fluxnet.write_fluxnet_monthly] writes one back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from upscale.errors import InvalidTowerDataError
from upscale.schema import DRIVERS, FLUXES, TARGETS, uncertainty_name
from upscale.towers.monthly import (
    MISSING,
    QC,
    STEPS_PER_DAY,
    TIME,
    UMOL_CO2_TO_GC_PER_DAY,
    keep_good_months,
    monthly_means,
    monthly_uncertainty,
    parse_numbers,
    parse_time,
    read_header,
)

Partitioning = Literal["NT", "DT"]
"""Flux partitioning of FLUXNET: night-time (Reichstein et al.) or daytime (Lasslop et al.)."""

GPP = FLUXES["GPP"].name
RE = FLUXES["RE"].name
NEE = FLUXES["NEE"].name

RESOLUTIONS = ("HH", "HR", "DD", "WW", "MM")
FILE_PATTERN = (
    "FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv (or a network prefix such as AMF_ or "
    "ICOSETC_ for the ONEFlux products of the FLUXNET download system) with RES in HH, HR, DD, "
    "WW, MM"
)
# FLX_ is FLUXNET's own prefix; the download system names files after their publishing network
# (AMF_US-Ha1_FLUXNET_FULLSET_HH_1992-2020_3-5.csv, ICOSETC_BE-Bra_FLUXNET_HH_L2.csv), and the
# ICOS ETC L2 files carry no years. Products may hold hyphens (FLUXNET-CH4).
_FILE_RE = re.compile(
    r"^(?P<network>[A-Z]+)_(?P<site>[A-Za-z0-9]+-[A-Za-z0-9]+)"
    r"_(?P<product>[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*?)_(?P<res>HH|HR|DD|WW|MM|YY)"
    r"(?:_(?P<y1>\d{4})-(?P<y2>\d{4}))?_(?P<version>[A-Za-z0-9.-]+)\.csv$"
)
# Products of a FLUXNET download that hold no tower fluxes; flux_file_parts skips them.
_AUXILIARY_PRODUCTS = ("ERAI", "ERA5", "AUXMETEO", "AUXNEE")
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
# Digits of a timestamp at each resolution; a longer one has a time of day.
_TIME_DIGITS = {"DD": 8, "WW": 8, "MM": 6}

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


@dataclass(frozen=True)
class _Product:
    """The columns of one FLUXNET-family product; ``{p}`` stands for the partitioning.

    ``uncertainty`` maps a file column to the flux it describes and its kind (``RANDUNC`` or
    ``JOINTUNC``).
    """

    fluxes: dict[str, str]
    qc: str | None
    uncertainty: dict[str, tuple[str, str]]


_ONEFLUX = _Product(
    fluxes={"GPP_{p}_VUT_REF": GPP, "RECO_{p}_VUT_REF": RE, "NEE_VUT_REF": NEE},
    qc="NEE_VUT_REF_QC",
    uncertainty={
        "NEE_VUT_REF_RANDUNC": (NEE, "RANDUNC"),
        "NEE_VUT_REF_JOINTUNC": (NEE, "JOINTUNC"),
    },
)
# FLUXNET-CH4 (Delwiche et al. 2021) gap-fills NEE by MDS as NEE_F and partitions it as
# GPP_NT/RECO_NT and GPP_DT/RECO_DT; its QC and uncertainty columns (FCH4_F_ANNOPTLM_QC,
# FCH4_F_RANDUNC, FCH4_F_ANNOPTLM_UNC) are the methane flux's, so CO2 months get no QC fraction.
_PRODUCTS: dict[str, _Product] = {
    "FLUXNET2015": _ONEFLUX,
    "ONEFlux": _ONEFLUX,
    "FLUXNET-CH4": _Product(
        fluxes={"GPP_{p}": GPP, "RECO_{p}": RE, "NEE_F": NEE}, qc=None, uncertainty={}
    ),
}


def _flux_columns(partitioning: str, fmt: str = "FLUXNET2015") -> dict[str, str]:
    """File column -> canonical flux name for one product and partitioning."""
    return {c.format(p=partitioning): name for c, name in _PRODUCTS[fmt].fluxes.items()}


_NEE_COLUMN, _QC_COLUMN = "NEE_VUT_REF", "NEE_VUT_REF_QC"  # what write_fluxnet_monthly writes


def parse_fluxnet_name(path: str | Path) -> dict[str, str]:
    """Split a FLUXNET file name into its parts.

    Parameters
    ----------
    path
        File path; only its name is used.

    Returns
    -------
    dict
        ``network`` (``FLX``, ``AMF``, ``ICOSETC``...), ``site``, ``product``, ``res``,
        ``y1``, ``y2`` (None when the name has no years) and ``version``, and ``format``:
        ``FLUXNET-CH4`` for that product, ``FLUXNET2015`` for other ``FLX_`` files,
        ``ONEFlux`` for the network-prefixed files of the FLUXNET download system.

    Raises
    ------
    InvalidTowerDataError
        When the name does not follow ``FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv`` or
        its network-prefixed variants.
    """
    name = Path(path).name
    match = _FILE_RE.match(name)
    if match is None:
        raise InvalidTowerDataError(
            f"{name}: not a FLUXNET file name; expected {FILE_PATTERN} "
            "(e.g. FLX_US-Skr_FLUXNET2015_FULLSET_DD_2004-2011_1-4.csv); rename it"
        )
    parts = match.groupdict()
    if parts["product"].upper().startswith("FLUXNET-CH4"):
        parts["format"] = "FLUXNET-CH4"
    elif parts["network"] == "FLX":
        parts["format"] = "FLUXNET2015"
    else:
        parts["format"] = "ONEFlux"
    return parts


def is_fluxnet_name(name: str) -> bool:
    """Whether a file name claims to be a FLUXNET-family file (``FLX_...`` or network-prefixed)."""
    return name.startswith("FLX_") or _FILE_RE.match(name) is not None


def flux_file_parts(path: str | Path) -> dict[str, str] | None:
    """Split a FLUXNET file name, or None for a file of a download that holds no monthly fluxes.

    Parameters
    ----------
    path
        File path; only its name is used.

    Returns
    -------
    dict or None
        As [`parse_fluxnet_name`][upscale.towers.fluxnet.parse_fluxnet_name]; None for the auxiliary
        products (``ERAI``, ``ERA5``, ``AUXMETEO``, ``AUXNEE``) and annual (``YY``) files,
        which [`read_sites`][upscale.towers.sites.read_sites] passes over.

    Raises
    ------
    InvalidTowerDataError
        When the name does not parse.
    """
    parts = parse_fluxnet_name(path)
    auxiliary = parts["product"].upper().endswith(_AUXILIARY_PRODUCTS)
    if auxiliary or parts["res"] not in RESOLUTIONS:
        return None
    return parts


def fluxnet_methods(path: str | Path, *, partitioning: Partitioning = "NT") -> dict[str, str]:
    """Name the product and the columns a FLUXNET-family file's fluxes are read from.

    Parameters
    ----------
    path
        A file [`read_fluxnet`][upscale.towers.fluxnet.read_fluxnet] reads.
    partitioning
        As in [`read_fluxnet`][upscale.towers.fluxnet.read_fluxnet].

    Returns
    -------
    dict
        ``file``, ``format``, ``GPP_method``, ``RE_method``, ``NEE_method`` (a row of
        ``SiteData.sources``).
    """
    parts = parse_fluxnet_name(path)
    columns = {name: c for c, name in _flux_columns(partitioning, parts["format"]).items()}
    return {
        "file": Path(path).name,
        "format": parts["format"],
        **{f"{flux}_method": columns[flux] for flux in TARGETS},
    }


def read_fluxnet(
    path: str | Path,
    *,
    partitioning: Partitioning = "NT",
    qc_min: float = 0.5,
    min_coverage: float = 0.5,
) -> pd.DataFrame:
    """Read one FLUXNET2015, ONEFlux or FLUXNET-CH4 CSV and aggregate it to monthly means.

    Parameters
    ----------
    path
        A file named ``FLX_<SITE>_<PRODUCT>_<RES>_<Y1>-<Y2>_<v>.csv``, RES in HH, HR, DD, WW,
        MM, or a network-prefixed ONEFlux file of the FLUXNET download system
        (``AMF_<SITE>_FLUXNET_FULLSET_<RES>_<Y1>-<Y2>_<v>.csv``,
        ``ICOSETC_<SITE>_FLUXNET_<RES>_L2.csv``); the resolution is taken from the name, the
        product (and so the columns) too: ``FLUXNET-CH4`` files have their own.
    partitioning
        ``"NT"`` reads ``GPP_NT_VUT_REF`` and ``RECO_NT_VUT_REF`` (FLUXNET-CH4: ``GPP_NT``,
        ``RECO_NT``), ``"DT"`` the daytime variants. NEE is ``NEE_VUT_REF`` (FLUXNET-CH4:
        ``NEE_F``) either way.
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
        file has no ``NEE_VUT_REF_QC``), the drivers present: ``TA`` (degC, from
        ``TA_F``), ``SW_IN`` (W m-2, ``SW_IN_F``), ``VPD`` (hPa, ``VPD_F``), ``PRECIP``
        (mm d-1, ``P_F``), and the uncertainties present: ``NEE_RANDUNC`` (from
        ``NEE_VUT_REF_RANDUNC``), ``NEE_JOINTUNC`` (``NEE_VUT_REF_JOINTUNC``), gC m-2 d-1.

    Raises
    ------
    InvalidTowerDataError
        When the name does not parse, the resolution is annual, columns are missing or
        unreadable, a file named DD, WW or MM holds sub-daily rows, or no month keeps a
        valid flux.

    See Also
    --------
    upscale.towers.sites.read_sites : a whole folder with its ``sites.csv``.
    write_fluxnet_monthly : the writer this reader round-trips with.
    upscale.towers.ameriflux.read_ameriflux : AmeriFlux BASE files.

    Notes
    -----
    ``-9999`` is missing. Timestamps: HH/HR ``TIMESTAMP_START`` (YYYYMMDDHHMM), DD
    ``TIMESTAMP`` (YYYYMMDD), WW ``TIMESTAMP_START``/``TIMESTAMP_END`` (YYYYMMDD), MM
    ``TIMESTAMP`` (YYYYMM).

    Units follow FLUXNET2015: HH/HR fluxes are µmol CO2 m-2 s-1 and are multiplied by
    12.011e-6 * 86400; DD/WW/MM fluxes are already gC m-2 d-1. The two differ by a factor
    of 1.0378 only, so magnitudes cannot tell them apart; what can be told is half-hourly
    rows in a file named DD, WW or MM (a time of day, or several rows per day), and such a
    file is refused. ``P_F`` is the precipitation of the step: mm per half-hour (HH) or
    hour (HR), scaled by 48 or 24 to mm d-1; the daily sum at DD (mm d-1); at WW and MM
    ONEFlux averages the daily sums, so it is already mm d-1 (only YY is a sum over the
    period, and YY files are refused).

    A weekly value is a daily mean over the days of its week, and ONEFlux weeks straddle
    months (the last of each year has 8 or 9 days). Each week is spread over its days, from
    ``TIMESTAMP_START`` to ``TIMESTAMP_END`` inclusive (or exclusive, when each end is the
    next week's start), before taking monthly means, so a month gets a day-weighted mean.

    Coverage counts the valid steps of a variable against the steps of the calendar month
    (48 per day at HH, 24 at HR, days at DD and WW, one at MM); it applies to drivers too.
    ``NEE_QC``: at HH/HR ``NEE_VUT_REF_QC`` is a flag (0 measured, 1 good, 2 medium, 3 poor
    gap-fill) and the month's fraction is the share of flags 0 or 1; at DD/WW/MM it is
    already a fraction and the month's is their (day-weighted) mean. FLUXNET-CH4 has no
    quality flag for NEE, so its ``NEE_QC`` is NaN (unknown, kept).

    The random and joint uncertainties of a step are one standard deviation; a month's is
    that of the mean of its valid steps taken as independent, ``sqrt(sum of squares) /
    count`` (see [`monthly_uncertainty`][upscale.towers.monthly.monthly_uncertainty]), NaN where
    the month's flux is.
    """
    path = Path(path)
    check_options(partitioning, qc_min, min_coverage)
    parts = parse_fluxnet_name(path)
    res = parts["res"]
    if res not in RESOLUTIONS:
        raise InvalidTowerDataError(
            f"{path.name}: annual ({res}) files cannot give monthly values; use the site's "
            "MM, WW, DD, HR or HH file"
        )
    values, described = _read_steps(path, parts, partitioning)
    sigma = list(described)
    monthly = monthly_means(values.drop(columns=sigma), res, min_coverage, no_coverage=[QC])
    monthly = keep_good_months(
        monthly, QC, qc_min=qc_min, min_coverage=min_coverage, path=path, what=QC
    )
    spread = monthly_uncertainty(values[sigma], res, min_coverage)
    for name, flux in described.items():
        # An uncertainty without its flux describes nothing the models see.
        monthly[name] = spread[name].where(monthly[flux].notna())
    present = [c for c in _DRIVER_COLUMNS.values() if c in monthly]
    return monthly[[GPP, RE, NEE, QC, *present, *sigma]]


def _read_steps(
    path: Path, parts: dict[str, str], partitioning: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a file's fluxes, quality, uncertainties and drivers at its own time step.

    Returns the values in canonical names and units (one row per step, or per day for WW
    files, sorted by time; ``NEE_QC`` a 0..1 fraction, NaN unknown) and the uncertainty
    columns read, each mapped to the flux it describes.
    """
    res, product = parts["res"], _PRODUCTS[parts["format"]]
    header = read_header(path)
    flux_columns = _flux_columns(partitioning, parts["format"])
    _refuse_subdaily_header(path, header, res)
    _check_flux_columns(path, header, partitioning, parts["format"])
    time_columns = list(_TIMESTAMPS[res])
    missing_time = [c for c in time_columns if c not in header]
    if missing_time:
        raise InvalidTowerDataError(
            f"{path.name}: missing timestamp column(s) {', '.join(missing_time)} required at "
            f"resolution {res}; is the resolution in the file name right?"
        )
    qc_column = product.qc if product.qc in header else None
    uncertainty = {
        c: uncertainty_name(*kind) for c, kind in product.uncertainty.items() if c in header
    }
    drivers = [c for c in _DRIVER_COLUMNS if c in header]
    value_columns = [*flux_columns, *([qc_column] if qc_column else []), *uncertainty, *drivers]
    table = _read_table(path, time_columns, value_columns)
    _refuse_subdaily_rows(path, table[time_columns[0]], res)

    renames = {**flux_columns, **_DRIVER_COLUMNS, **uncertainty}
    values = table[value_columns].rename(columns=renames)
    qc = values.pop(qc_column) if qc_column else pd.Series(np.nan, values.index)
    fluxes = [GPP, RE, NEE, *uncertainty.values()]
    if res in ("HH", "HR"):
        values[fluxes] *= UMOL_CO2_TO_GC_PER_DAY
        if _PRECIP in values:
            values[_PRECIP] *= STEPS_PER_DAY[res]
        # Flags 0 and 1 are measured or good gap-fill; a missing flag stays unknown.
        qc = (qc <= 1).astype(float).where(qc.notna())
    values[QC] = qc

    values.index = parse_time(path, table[time_columns[0]], _TIME_FORMATS[res])
    if res == "WW":
        end = parse_time(path, table[time_columns[1]], _TIME_FORMATS[res])
        values = _spread_weeks(path, values, end, errors=list(uncertainty.values()))
    if values.index.has_duplicates:
        first = values.index[values.index.duplicated()][0]
        raise InvalidTowerDataError(
            f"{path.name}: duplicated timestamp {first}; remove the repeated rows"
        )
    described = {name: product.uncertainty[c][0] for c, name in uncertainty.items()}
    return values.sort_index(), described


def _refuse_subdaily_header(path: Path, header: list[str], res: str) -> None:
    """Refuse a file named DD or MM whose timestamp column is the half-hourly one."""
    if res in ("DD", "MM") and _TIMESTAMPS[res][0] not in header and "TIMESTAMP_START" in header:
        raise _subdaily_error(path, res, "it has TIMESTAMP_START instead of TIMESTAMP")


def _refuse_subdaily_rows(path: Path, stamps: pd.Series, res: str) -> None:
    """Refuse a file named DD, WW or MM whose rows are finer than a day.

    µmol CO2 m-2 s-1 and gC m-2 d-1 differ by 1.0378, too little for magnitudes to tell
    which a file holds; sub-daily rows are what gives half-hourly µmol values away.
    """
    if res not in _TIME_DIGITS:
        return
    # Most rows, not one: a single stray or repeated row is a duplicated or misformatted
    # timestamp, reported as such by the checks that follow.
    text = stamps.astype(str).str.strip()
    timed = text.str.len() > _TIME_DIGITS[res]
    if timed.mean() > 0.5:
        raise _subdaily_error(path, res, f"timestamps with a time of day ({text[timed].iloc[0]})")
    if res == "DD":
        per_day = text.value_counts()
        if len(per_day) and (per_day > 1).mean() > 0.5:
            raise _subdaily_error(
                path, res, f"{per_day.iloc[0]} rows on {per_day.index[0]}, several per day"
            )


def _subdaily_error(path: Path, res: str, evidence: str) -> InvalidTowerDataError:
    return InvalidTowerDataError(
        f"{path.name}: the rows look half-hourly in µmol m-2 s-1 ({evidence}), not {res} "
        "values in gC m-2 d-1; name the file HH (or HR for hourly rows) so that its units "
        "are converted"
    )


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
    InvalidTowerDataError
        When the site id or product would not give a parseable file name, the table has no
        recognised column, or its times are not monthly.

    Notes
    -----
    Columns, when their input exists: ``TIMESTAMP`` (YYYYMM), ``NEE_VUT_REF``, ``NEE_VUT_REF_QC``,
    ``GPP_NT_VUT_REF``, ``RECO_NT_VUT_REF``, ``GPP_DT_VUT_REF``, ``RECO_DT_VUT_REF``, ``TA_F``,
    ``SW_IN_F``, ``VPD_F``, ``P_F``. MM units equal the canonical ones, so values are written
    unchanged and [`read_fluxnet`][upscale.towers.fluxnet.read_fluxnet] reads them back.
    """
    table = monthly.set_index(TIME) if TIME in monthly.columns else monthly
    try:
        times = pd.DatetimeIndex(table.index)
    except (TypeError, ValueError):
        raise InvalidTowerDataError(
            f"site {site_id}: the monthly table needs a DatetimeIndex or a {TIME} column"
        ) from None
    months = times.to_period("M")
    if months.has_duplicates:
        raise InvalidTowerDataError(f"site {site_id}: the monthly table has two rows for one month")
    columns = {
        _NEE_COLUMN: NEE,
        _QC_COLUMN: QC,
        **{c: name for c, name in _flux_columns("NT").items() if name != NEE},
        **{c: name + _DT_SUFFIX for c, name in _flux_columns("DT").items() if name != NEE},
        **{c: name for c, name in _DRIVER_COLUMNS.items()},
    }
    present = {c: name for c, name in columns.items() if name in table.columns}
    if not present:
        raise InvalidTowerDataError(
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


def check_options(partitioning: str, qc_min: float, min_coverage: float) -> None:
    """Refuse an unknown partitioning and thresholds that are not fractions.

    Raises
    ------
    ValueError
        When ``partitioning`` is not ``"NT"`` or ``"DT"``, or ``qc_min`` or ``min_coverage``
        is outside [0, 1].
    """
    if partitioning not in _PARTITIONINGS:
        raise ValueError(f"partitioning must be 'NT' or 'DT', got {partitioning!r}")
    for name, value in (("qc_min", qc_min), ("min_coverage", min_coverage)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")


def _check_flux_columns(
    path: Path, header: list[str], partitioning: str, fmt: str = "FLUXNET2015"
) -> None:
    """Raise one error listing every missing flux column, with the likely fix."""
    missing = [c for c in _flux_columns(partitioning, fmt) if c not in header]
    if not missing:
        return
    other = next(p for p in _PARTITIONINGS if p != partitioning)
    if all(c in header for c in _flux_columns(other, fmt)):
        fix = f"the file has the {other} partitioning: use --partitioning {other}"
    else:
        fix = (
            "give a FLUXNET2015/ONEFlux FULLSET or SUBSET file (ERAI and AUX products hold "
            "no fluxes), or a tidy CSV"
        )
    raise InvalidTowerDataError(
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
        raise InvalidTowerDataError(
            f"{path.name}: cannot be read as a FLUXNET CSV ({err})"
        ) from None
    table.columns = [c.strip() for c in table.columns]
    values = parse_numbers(table, value_columns, path, "FLUXNET files write -9999 for missing")
    table[value_columns] = values.mask(values == MISSING)
    return table


def _spread_weeks(
    path: Path, weeks: pd.DataFrame, end: pd.DatetimeIndex, *, errors: list[str] = ()
) -> pd.DataFrame:
    """Repeat each week's daily means on every day of the week.

    ``errors`` are the uncertainty columns: a week's value is the error of its whole mean,
    shared by its days, not independent day to day. Each day carries it times the square
    root of the week's days, so that aggregating days as independent
    ([`monthly_uncertainty`][upscale.towers.monthly.monthly_uncertainty]) gives the error of a
    month of independent weeks (slightly more for a week split between two months).
    """
    start = weeks.index
    if len(start) > 1 and np.any(end[:-1] == start[1:]):
        # TIMESTAMP_END is the next week's start: the period is half-open.
        end = end - pd.Timedelta(days=1)
    days = np.asarray((end - start).days) + 1
    if (days < 1).any():
        bad = start[days < 1][0]
        raise InvalidTowerDataError(
            f"{path.name}: a week ends before it starts (TIMESTAMP_START {bad:%Y%m%d}); "
            "fix TIMESTAMP_END"
        )
    first_row = np.repeat(np.cumsum(days) - days, days)
    offset = pd.to_timedelta(np.arange(days.sum()) - first_row, unit="D")
    daily = weeks.iloc[np.repeat(np.arange(len(weeks)), days)].copy()
    daily[errors] = daily[errors].mul(np.sqrt(np.repeat(days, days)), axis=0)
    return daily.set_axis(start.repeat(days) + offset)
