"""Site folders: the towers' table, the registry of tower file formats, and ``read_sites``.

A site folder holds ``sites.csv`` (``site_id, lat, lon, ecosystem``) and the towers' flux
files, in any mix of the registered tower formats (FLUXNET2015/ONEFlux/FLUXNET-CH4 files of
[`upscale.towers.fluxnet`][upscale.towers.fluxnet], AmeriFlux BASE files of
[`upscale.towers.ameriflux`][upscale.towers.ameriflux]) and tidy CSVs of
[`upscale.towers.tidy`][upscale.towers.tidy] (``site_id, time, GPP, RE, NEE`` and optional
driver columns). Everything is converted to the model step: monthly means stamped on the
first of the month, fluxes in gC m-2 d-1, drivers in the units of
[`upscale.schema`][upscale.schema].

A tower format is one module that parses its file names and reads a file to monthly means,
plus one [`register_tower_format`][upscale.towers.sites.register_tower_format] call (the built-in
ones are registered at the end of this module); `read_sites` knows formats only through
[`TOWER_FORMATS`][upscale.towers.sites.TOWER_FORMATS].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from upscale.errors import InvalidTowerDataError
from upscale.schema import ECOSYSTEM_CODES, TARGETS, TOWER_UNITS, implausible_value
from upscale.towers import ameriflux, fluxnet
from upscale.towers.fluxnet import Partitioning, check_options
from upscale.towers.monthly import SITE_ID, TIME, TIME_DTYPE, read_header
from upscale.towers.tidy import read_tidy

SITES_TABLE = "sites.csv"
META_COLUMNS = ("lat", "lon", "ecosystem")

SOURCE_COLUMNS = ("file", "format", "GPP_method", "RE_method", "NEE_method")
"""Columns of ``SiteData.sources``."""

# When a site has files at several resolutions, read_sites uses the first one found here:
# the coarsest is the network's own monthly aggregate and the cheapest to read.
_PREFERENCE = ("MM", "WW", "DD", "HR", "HH")


def _empty_sources() -> pd.DataFrame:
    return pd.DataFrame(columns=list(SOURCE_COLUMNS), index=pd.Index([], name=SITE_ID))


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
        ``PRECIP`` mm d-1, or others of a tidy table), ``NEE_QC`` (fraction) where known,
        the tower uncertainties where the file has them (``NEE_RANDUNC``, ``NEE_JOINTUNC``...,
        see [`uncertainty_name`][upscale.schema.uncertainty_name]; gC m-2 d-1) and other
        numeric columns the tower files define (units in ``units``).
    sources
        Indexed by ``site_id``: ``file`` (the file name read), ``format`` (``FLUXNET2015``,
        ``FLUXNET-CH4``, ``ONEFlux``, ``AmeriFlux BASE`` or ``tidy``) and ``GPP_method``,
        ``RE_method``, ``NEE_method`` (short text: the column or the method that made the
        values, e.g. ``GPP_NT_VUT_REF`` or ``FC measured``). Empty when not known.
    units
        Units of the non-canonical numeric columns of ``fluxes`` that tower files define
        (e.g. ``{"PPFD_IN": "umol m-2 s-1"}``); canonical drivers and fluxes are not listed,
        their units are in [`upscale.schema`][upscale.schema].
    """

    meta: pd.DataFrame
    fluxes: pd.DataFrame
    sources: pd.DataFrame = field(default_factory=_empty_sources)
    units: dict[str, str] = field(default_factory=dict)


class TowerReader(Protocol):
    """Read one tower file to monthly means and name where its fluxes come from.

    The options are those of [`read_sites`][upscale.towers.sites.read_sites]; a reader uses those
    that apply to its format. It returns the monthly table indexed by ``time`` (first of the
    month; ``GPP``, ``RE``, ``NEE`` in gC m-2 d-1, ``NEE_QC`` and driver columns as in
    ``SiteData.fluxes``) and the file's ``SiteData.sources`` row (``file``, ``format``,
    ``GPP_method``, ``RE_method``, ``NEE_method``).
    """

    def __call__(
        self, path: Path, *, partitioning: Partitioning, qc_min: float, min_coverage: float
    ) -> tuple[pd.DataFrame, dict[str, str]]:
        """Return the file's monthly table and its ``SiteData.sources`` row."""
        ...


@dataclass(frozen=True)
class TowerFormat:
    """A kind of one-tower flux file that `read_sites` finds by its name and reads.

    Attributes
    ----------
    name
        What messages call these files, e.g. ``FLUXNET``, ``AmeriFlux BASE``.
    pattern
        Their file names, for messages (e.g. ``AMF_<SITE>_BASE_<HH|HR>_<ver>.csv``).
    claims
        Whether a file name says it is of this format; a claimed name that then does not
        parse is an error, not a tidy table.
    parse_name
        The parts of a claimed file's name: at least ``site`` and ``res`` (one of ``MM``,
        ``WW``, ``DD``, ``HR``, ``HH``), or None for a file of the format that holds no
        monthly fluxes and is passed over. Raises ``InvalidTowerDataError`` for a malformed name.
    read
        The reader of one file (see [`TowerReader`][upscale.towers.sites.TowerReader]).
    """

    name: str
    pattern: str
    claims: Callable[[str], bool]
    parse_name: Callable[[Path], dict[str, str] | None]
    read: TowerReader


TOWER_FORMATS: dict[str, TowerFormat] = {}
"""The registered tower formats by name, in the order they are asked to claim a file name."""


def register_tower_format(tower_format: TowerFormat) -> TowerFormat:
    """Add a tower format that `read_sites` recognises and reads.

    Parameters
    ----------
    tower_format
        The format; it is asked about a file name after every format registered before it,
        so that a name two formats could claim goes to the first (AmeriFlux BASE names also
        match the network-prefixed FLUXNET pattern).

    Returns
    -------
    TowerFormat
        ``tower_format``, registered.

    Raises
    ------
    ValueError
        When a format of that name is registered already.
    """
    if tower_format.name in TOWER_FORMATS:
        raise ValueError(f"a tower format named {tower_format.name!r} is registered already")
    TOWER_FORMATS[tower_format.name] = tower_format
    return tower_format


def read_sites(
    folder: str | Path,
    *,
    partitioning: Partitioning = "NT",
    qc_min: float = 0.5,
    min_coverage: float = 0.5,
) -> SiteData:
    """Read a site folder: ``sites.csv`` plus the towers' FLUXNET, AmeriFlux or tidy CSVs.

    Parameters
    ----------
    folder
        Holds ``sites.csv`` (``site_id, lat, lon, ecosystem``; ecosystem ``mangrove`` or
        ``saltmarsh``) and the towers' files: FLUXNET2015 and FLUXNET-CH4 files
        ``FLX_<SITE>_*.csv``, network-prefixed ONEFlux files (``AMF_<SITE>_FLUXNET_*.csv``,
        ``ICOSETC_<SITE>_FLUXNET_*.csv``), AmeriFlux BASE files
        (``AMF_<SITE>_BASE_<HH|HR>_<ver>.csv``), files of other registered formats
        ([`TOWER_FORMATS`][upscale.towers.sites.TOWER_FORMATS]) and/or tidy CSVs.
    partitioning, qc_min, min_coverage
        Passed to the reader of each tower file:
        [`read_fluxnet`][upscale.towers.fluxnet.read_fluxnet] takes all three,
        [`read_ameriflux`][upscale.towers.ameriflux.read_ameriflux] ``qc_min`` and
        ``min_coverage``; tidy tables are taken as they are.

    Returns
    -------
    SiteData
        Metadata indexed by ``site_id``, the long monthly flux table sorted by site and
        time, the file, format and flux methods of each site (``sources``), and the units of
        the non-canonical columns (``units``).

    Raises
    ------
    InvalidTowerDataError
        When ``sites.csv`` is missing or malformed (a missing column, an unknown ecosystem,
        coordinates out of range, a duplicated site), a flux file is unreadable, a site has
        data but no row in ``sites.csv`` or a row but no data (or data in two files), or a
        site keeps no valid month.

    See Also
    --------
    upscale.towers.fluxnet.read_fluxnet, upscale.towers.tidy.read_tidy,
    upscale.towers.ameriflux.read_ameriflux register_tower_format : make another kind of tower file
    known.

    Notes
    -----
    Every ``*.csv`` other than ``sites.csv`` must be a tower file or a tidy table: a name
    that a registered format claims is read by that format (the first registered that
    claims it), any other is a tidy table. The auxiliary products of a FLUXNET download
    (``ERAI``, ``ERA5``, ``AUXMETEO``, ``AUXNEE``) and annual (YY) files are passed over.
    When a site has files at several resolutions, the coarsest is read (MM, then WW, DD,
    HR, HH): all give the same monthly means; two files at the resolution read (e.g. a
    FLUXNET HH and a BASE HH file) are refused.
    """
    folder = Path(folder)
    check_options(partitioning, qc_min, min_coverage)
    if not folder.is_dir():
        raise InvalidTowerDataError(
            f"{folder}: no such folder; pass the folder holding {SITES_TABLE}"
        )
    meta = _read_meta(folder / SITES_TABLE)
    towers, tidy = _find_tower_files(folder)
    if not towers and not tidy:
        accepted = ", ".join(f"{f.name} files ({f.pattern})" for f in TOWER_FORMATS.values())
        raise InvalidTowerDataError(
            f"{folder}: no flux files; add {accepted} or tidy CSVs ({SITE_ID}, {TIME}, "
            f"{', '.join(TARGETS)})"
        )

    tables: list[pd.DataFrame] = []
    source: dict[str, Path] = {}
    rows: dict[str, dict[str, str]] = {}
    options = {"partitioning": partitioning, "qc_min": qc_min, "min_coverage": min_coverage}
    for site, by_res in sorted(towers.items()):
        path, tower_format = _preferred_file(site, by_res)
        monthly, rows[site] = tower_format.read(path, **options)
        tables.append(monthly.reset_index().assign(**{SITE_ID: site}))
        source[site] = path
    for path in tidy:
        table = read_tidy(path)
        for site in table[SITE_ID].unique():
            if site in source:
                raise InvalidTowerDataError(
                    f"site {site} has data in both {source[site].name} and {path.name}; "
                    "keep it in one file"
                )
            source[site] = path
            rows[site] = {"file": path.name, "format": "tidy"}
            rows[site].update({f"{flux}_method": f"{flux} (tidy table)" for flux in TARGETS})
        tables.append(table)

    _check_site_rows(folder, meta, source)
    fluxes = _long_table(tables, source)
    sources = pd.DataFrame.from_dict(rows, orient="index", columns=list(SOURCE_COLUMNS))
    sources.index.name = SITE_ID
    units = {c: u for c, u in TOWER_UNITS.items() if c in fluxes.columns}
    return SiteData(
        meta=meta.sort_index(), fluxes=fluxes, sources=sources.sort_index(), units=units
    )


_TowerFiles = dict[str, dict[str, list[tuple[Path, TowerFormat]]]]
"""Site -> resolution -> the tower files found, each with the format that claimed it."""


def _find_tower_files(folder: Path) -> tuple[_TowerFiles, list[Path]]:
    """Tower files by site and resolution, and the CSVs no format claims (tidy tables)."""
    towers: _TowerFiles = {}
    tidy: list[Path] = []
    for path in sorted(folder.glob("*.csv")):
        if path.name == SITES_TABLE:
            continue
        tower_format = next((f for f in TOWER_FORMATS.values() if f.claims(path.name)), None)
        if tower_format is None:
            tidy.append(path)
            continue
        parts = tower_format.parse_name(path)
        if parts is None:
            continue
        by_res = towers.setdefault(parts["site"], {})
        by_res.setdefault(parts["res"], []).append((path, tower_format))
    return towers, tidy


def _preferred_file(
    site: str, by_res: dict[str, list[tuple[Path, TowerFormat]]]
) -> tuple[Path, TowerFormat]:
    """Pick a site's one file at its coarsest resolution; refuse two files there."""
    res = next(r for r in _PREFERENCE if r in by_res)
    if len(by_res[res]) > 1:
        names = ", ".join(path.name for path, _ in by_res[res])
        raise InvalidTowerDataError(
            f"site {site} has several {res} files ({names}); keep one per site"
        )
    return by_res[res][0]


def _check_site_rows(folder: Path, meta: pd.DataFrame, source: dict[str, Path]) -> None:
    """Every site with data has a row in sites.csv, and every row has data."""
    unknown = sorted(set(source) - set(meta.index))
    if unknown:
        listed = ", ".join(f"{s} ({source[s].name})" for s in unknown)
        raise InvalidTowerDataError(
            f"{folder / SITES_TABLE}: no row for site(s) {listed}; add their lat, lon and "
            "ecosystem, or remove their data"
        )
    without = sorted(set(meta.index) - set(source))
    if without:
        raise InvalidTowerDataError(
            f"{folder / SITES_TABLE}: no flux data for site(s) {', '.join(without)}; add "
            f"their {', '.join(TOWER_FORMATS)} or tidy file, or remove their rows"
        )


def _long_table(tables: list[pd.DataFrame], source: dict[str, Path]) -> pd.DataFrame:
    """One long monthly table of every site, checked for plausible fluxes and valid months."""
    fluxes = pd.concat(tables, ignore_index=True)
    first = [SITE_ID, TIME, *TARGETS]
    fluxes = fluxes[first + [c for c in fluxes.columns if c not in first]]
    fluxes[SITE_ID] = fluxes[SITE_ID].astype(str)
    fluxes[TIME] = fluxes[TIME].astype(TIME_DTYPE)
    fluxes = fluxes.sort_values([SITE_ID, TIME], ignore_index=True)
    for site, measured in fluxes.groupby(SITE_ID)[list(TARGETS)]:
        problem = implausible_value(TARGETS, measured.min(), measured.max())
        if problem:
            raise InvalidTowerDataError(
                f"site {site} ({source[site].name}): {problem}; check the units (monthly "
                "means in gC m-2 d-1) and the signs (GPP and RE positive, uptake negative NEE)"
            )
    valid = fluxes[list(TARGETS)].notna().any(axis=1).groupby(fluxes[SITE_ID]).any()
    empty = sorted(valid.index[~valid])
    if empty:
        raise InvalidTowerDataError(
            f"site(s) {', '.join(f'{s} ({source[s].name})' for s in empty)} have no month "
            "with a valid flux; check the file, or remove the site"
        )
    return fluxes


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
    InvalidTowerDataError
        When a column is missing.
    """
    table = meta.reset_index() if SITE_ID not in meta.columns else meta
    missing = [c for c in (SITE_ID, *META_COLUMNS) if c not in table.columns]
    if missing:
        raise InvalidTowerDataError(f"site table to write lacks column(s) {', '.join(missing)}")
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
    InvalidTowerDataError
        When ``sites.csv`` is missing or malformed (see
        [`read_sites`][upscale.towers.sites.read_sites]).
    """
    path = Path(folder)
    return _read_meta(path if path.suffix.lower() == ".csv" else path / SITES_TABLE)


def _read_meta(path: Path) -> pd.DataFrame:
    """Read and validate ``sites.csv``, indexed by ``site_id``."""
    if not path.exists():
        raise InvalidTowerDataError(
            f"{path}: missing; write a {SITES_TABLE} with columns {SITE_ID}, "
            f"{', '.join(META_COLUMNS)}"
        )
    header = read_header(path)
    missing = [c for c in (SITE_ID, *META_COLUMNS) if c not in header]
    if missing:
        raise InvalidTowerDataError(
            f"{path}: missing column(s) {', '.join(missing)}; {SITES_TABLE} needs "
            f"{SITE_ID}, {', '.join(META_COLUMNS)} (lower case), and has {', '.join(header)}"
        )
    table = pd.read_csv(path, dtype={SITE_ID: str, "ecosystem": str}, skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    table[SITE_ID] = table[SITE_ID].str.strip()
    if table[SITE_ID].isna().any():
        raise InvalidTowerDataError(f"{path}: rows without {SITE_ID}; fill or remove them")
    duplicated = table[SITE_ID][table[SITE_ID].duplicated()].unique()
    if len(duplicated):
        raise InvalidTowerDataError(
            f"{path}: site(s) {', '.join(duplicated)} listed more than once; keep one row each"
        )
    ecosystem = table["ecosystem"].str.strip().str.lower()
    unknown = ~ecosystem.isin(list(ECOSYSTEM_CODES))
    if unknown.any():
        bad = ", ".join(
            f"{s} ({e!r})" for s, e in table.loc[unknown, [SITE_ID, "ecosystem"]].values
        )
        raise InvalidTowerDataError(
            f"{path}: unknown ecosystem for site(s) {bad}; use one of {', '.join(ECOSYSTEM_CODES)}"
        )
    coords = table[["lat", "lon"]].apply(pd.to_numeric, errors="coerce")
    bad_coords = (
        coords.isna().any(axis=1) | (coords["lat"].abs() > 90) | (coords["lon"].abs() > 180)
    )
    if bad_coords.any():
        raise InvalidTowerDataError(
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


def _read_fluxnet_tower(
    path: Path, *, partitioning: Partitioning, qc_min: float, min_coverage: float
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a FLUXNET-family file with the columns it was read from."""
    monthly = fluxnet.read_fluxnet(
        path, partitioning=partitioning, qc_min=qc_min, min_coverage=min_coverage
    )
    return monthly, fluxnet.fluxnet_methods(path, partitioning=partitioning)


def _read_ameriflux_tower(
    path: Path, *, partitioning: Partitioning, qc_min: float, min_coverage: float
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read an AmeriFlux BASE file; ``partitioning`` is FLUXNET's, a BASE file has its own."""
    return ameriflux.read_ameriflux(path, qc_min=qc_min, min_coverage=min_coverage)


# AmeriFlux BASE first: its names (AMF_<SITE>_BASE_HH_<ver>.csv) also match FLUXNET's
# network-prefixed pattern.
register_tower_format(
    TowerFormat(
        name=ameriflux.FORMAT,
        pattern=ameriflux.BASE_PATTERN,
        claims=ameriflux.is_base_name,
        parse_name=ameriflux.parse_base_name,
        read=_read_ameriflux_tower,
    )
)
register_tower_format(
    TowerFormat(
        name="FLUXNET",
        pattern=fluxnet.FILE_PATTERN,
        claims=fluxnet.is_fluxnet_name,
        parse_name=fluxnet.flux_file_parts,
        read=_read_fluxnet_tower,
    )
)
