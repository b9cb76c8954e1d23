"""Site samples: each tower's monthly drivers and fluxes on one time axis.

The drivers come from the cube at the tower's pixel
([`extract_site_series`][upscale.learn.samples.extract_site_series]) or, for a site-level study with
no cube, from the towers' own tables
([`tower_site_series`][upscale.learn.samples.tower_site_series]). Models are trained on windows of
the last L months of drivers ending in a month where the tower measured a flux. The series are kept
whole here; [`window_views`][upscale.learn.samples.window_views] makes the strided views where they
are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from upscale.errors import InvalidTowerDataError
from upscale.schema import (
    DRIVERS,
    IMPLAUSIBLE_FIX,
    TARGETS,
    UNCERTAINTY_KINDS,
    implausible_value,
    uncertainty_name,
)
from upscale.towers.monthly import QC, SITE_ID, TIME
from upscale.towers.pixels import site_pixels
from upscale.towers.sites import SiteData

CUBE = "cube"
TOWER = "tower"
"""Where a feature's values come from, as model cards record it."""


def window_views(drivers: torch.Tensor, memory: int) -> torch.Tensor:
    """Every window of ``memory`` months of series ``(..., T, F)``, as a view ``(..., W, L, F)``.

    Window ``w`` ends at month ``w + memory - 1``; nothing is copied (``Tensor.unfold``), so
    only what a caller takes from the view is made contiguous.
    """
    return drivers.unfold(-2, memory, 1).transpose(-1, -2)


@dataclass(frozen=True)
class SiteSeries:
    """Monthly drivers and fluxes of towers on the cube's time axis.

    Attributes
    ----------
    site_ids
        Tower ids, one per row.
    ecosystems
        Ecosystem of each tower.
    times
        The cube's months.
    features, targets
        Names of the driver and flux axes.
    drivers
        ``(S, T, F)`` float32 drivers at each tower (its cube pixel, or its own); NaN where a
        tower did not measure a driver it takes from its own data.
    fluxes
        ``(S, T, K)`` float32 tower fluxes, NaN where not measured or filtered.
    uncertainty
        ``(S, T, K)`` float32 measurement uncertainty of the fluxes (one standard deviation,
        gC m-2 d-1), NaN where the tower files give none.
    feature_sources
        ``cube`` or ``tower`` for each feature.
    feature_units
        Units of each feature; those of a non-canonical tower column as its file gives them,
        or ``as given`` when no file says.
    """

    site_ids: list[str]
    ecosystems: list[str]
    times: pd.DatetimeIndex
    features: list[str]
    targets: list[str]
    drivers: np.ndarray
    fluxes: np.ndarray
    uncertainty: np.ndarray | None = None
    feature_sources: tuple[str, ...] = ()
    feature_units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.uncertainty is None:
            object.__setattr__(self, "uncertainty", np.full_like(self.fluxes, np.nan))
        # In C order always: float32 sums follow the memory order, and a copy sent to another
        # process (pickled into C order) must normalise, and so train, to the same members.
        for name in ("drivers", "fluxes", "uncertainty"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name)))
        if not self.feature_sources:
            object.__setattr__(self, "feature_sources", (CUBE,) * len(self.features))
        if not self.feature_units:
            units = tuple(_canonical_units(f) for f in self.features)
            object.__setattr__(self, "feature_units", units)

    def subset(self, sites: Sequence[str]) -> SiteSeries:
        """Rows of the given sites, in the given order."""
        rows = [self.site_ids.index(s) for s in sites]
        return replace(
            self,
            site_ids=list(sites),
            ecosystems=[self.ecosystems[r] for r in rows],
            drivers=self.drivers[rows],
            fluxes=self.fluxes[rows],
            uncertainty=self.uncertainty[rows],
        )

    def of_ecosystem(self, ecosystem: str) -> SiteSeries:
        """Rows of the towers of one ecosystem."""
        return self.subset(
            [s for s, e in zip(self.site_ids, self.ecosystems, strict=True) if e == ecosystem]
        )

    def pixel_groups(self) -> list[list[str]]:
        """Towers grouped by identical drivers, i.e. by cube pixel, in site order.

        Towers in one pixel see the same driver windows: folds and validation splits keep
        them together, or a held-out tower would be predicted from its twin.
        """
        groups: dict[bytes, list[str]] = {}
        for site, drivers in zip(self.site_ids, self.drivers, strict=True):
            groups.setdefault(drivers.tobytes(), []).append(site)
        return list(groups.values())

    def save(self, path: str | Path) -> Path:
        """Write the series to an ``.npz`` file (plain arrays, no pickles)."""
        np.savez(
            path,
            site_ids=np.array(self.site_ids),
            ecosystems=np.array(self.ecosystems),
            times=self.times.to_numpy().astype("datetime64[ns]"),
            features=np.array(self.features),
            targets=np.array(self.targets),
            drivers=self.drivers,
            fluxes=self.fluxes,
            uncertainty=self.uncertainty,
            feature_sources=np.array(self.feature_sources),
            feature_units=np.array(self.feature_units),
        )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SiteSeries:
        """Read series written by [`save`][upscale.learn.samples.SiteSeries.save]."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                site_ids=data["site_ids"].tolist(),
                ecosystems=data["ecosystems"].tolist(),
                times=pd.DatetimeIndex(data["times"]),
                features=data["features"].tolist(),
                targets=data["targets"].tolist(),
                drivers=data["drivers"],
                fluxes=data["fluxes"],
                uncertainty=data["uncertainty"],
                feature_sources=tuple(data["feature_sources"].tolist()),
                feature_units=tuple(data["feature_units"].tolist()),
            )

    def trainable(self, memory: int) -> np.ndarray:
        """Which windows ``(S, W)`` can be learned from or scored.

        A window ends on a month with a measured flux and has every driver of its months: a
        tower that did not measure a driver some month leaves the windows through that month
        out, rather than guessing it.
        """
        complete = np.isfinite(self.drivers).all(axis=-1)  # (S, T)
        complete = window_views(torch.from_numpy(complete[..., None]), memory).all(dim=(-1, -2))
        measured = np.isfinite(self.fluxes[:, memory - 1 :]).any(axis=-1)
        return measured & complete.numpy()

    def n_windows(self, memory: int) -> int:
        """Count trainable windows ([`trainable`][upscale.learn.samples.SiteSeries.trainable])."""
        return int(self.trainable(memory).sum())

    def trainable_windows(self, memory: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Trainable windows ``(N, L, F)``, their fluxes ``(N, K)`` and ``(N, K)`` uncertainty."""
        keep = self.trainable(memory)
        views = window_views(torch.from_numpy(self.drivers), memory)
        fluxes = torch.from_numpy(self.fluxes[:, memory - 1 :][keep])
        return views[torch.from_numpy(keep)], fluxes, self.uncertainty[:, memory - 1 :][keep]


def extract_site_series(
    cube: xr.Dataset,
    sites: SiteData,
    features: Sequence[str],
    *,
    targets: Sequence[str] = TARGETS,
    uncertainty: str = "RANDUNC",
) -> SiteSeries:
    """Put tower fluxes and the drivers at their pixels on the cube's monthly axis.

    Parameters
    ----------
    cube
        Validated driver cube.
    sites
        Tower metadata and monthly fluxes ([`read_sites`][upscale.towers.sites.read_sites]).
    features
        Drivers in model order.
    targets
        Fluxes to learn.
    uncertainty
        Which tower uncertainty the series carries: ``RANDUNC`` (random) or ``JOINTUNC``.

    Returns
    -------
    SiteSeries
        One row per tower; months outside a tower's record are NaN fluxes.

    Raises
    ------
    InvalidTowerDataError
        When a tower lies outside the cube, no tower record overlaps the cube's period, or
        the drivers at a tower's pixel have gaps.
    """
    meta = sites.meta.sort_index()
    rows, cols = site_pixels(cube, meta)
    at_sites = cube[list(features)].isel(
        y=xr.DataArray(rows, dims="site"), x=xr.DataArray(cols, dims="site")
    )
    drivers = np.stack([at_sites[f].transpose("site", "time").values for f in features], -1)
    gaps = ~np.isfinite(drivers)
    if gaps.any():
        s, _, f = np.argwhere(gaps)[0]
        raise InvalidTowerDataError(
            f"cube driver {features[f]} has {int(gaps[s, :, f].sum())} missing months at the "
            f"pixel of site {meta.index[s]}; fill the cube's gaps first"
        )
    for s, site in enumerate(meta.index):
        problem = implausible_value(features, drivers[s].min(axis=0), drivers[s].max(axis=0))
        if problem:
            raise InvalidTowerDataError(
                f"cube {problem} at the pixel of site {site}; {IMPLAUSIBLE_FIX}"
            )
    times = pd.DatetimeIndex(cube["time"].values)
    fluxes, sigma = _tower_fluxes(sites, meta.index, times, targets, uncertainty)
    if not np.isfinite(fluxes).any():
        raise InvalidTowerDataError(
            f"no tower month falls inside the cube's period {times[0]:%Y-%m}..{times[-1]:%Y-%m}"
        )
    return SiteSeries(
        site_ids=list(meta.index),
        ecosystems=list(meta["ecosystem"]),
        times=times,
        features=list(features),
        targets=list(targets),
        drivers=drivers.astype("float32"),
        fluxes=fluxes,
        uncertainty=sigma,
        feature_sources=(CUBE,) * len(features),
        feature_units=tuple(str(cube[f].attrs.get("units", _canonical_units(f))) for f in features),
    )


def tower_site_series(
    sites: SiteData,
    features: Sequence[str],
    *,
    targets: Sequence[str] = TARGETS,
    extra: pd.DataFrame | None = None,
    uncertainty: str = "RANDUNC",
) -> SiteSeries:
    """Put tower fluxes and the towers' own drivers on one monthly axis: a study with no cube.

    Parameters
    ----------
    sites
        Tower metadata and monthly tables ([`read_sites`][upscale.towers.sites.read_sites]): their
        driver columns (the meteorology of FLUXNET and AmeriFlux files, any numeric column of
        a tidy table) are the features on offer.
    features
        Columns in model order: canonical drivers or any other (``PAR``, ``WTD``,
        ``SALINITY``...), whose units are taken as given.
    targets
        Fluxes to learn.
    extra
        More drivers at the towers ([`read_site_drivers`][upscale.towers.tidy.read_site_drivers]),
        e.g. extracted from a cube or MODIS subsets; where both give a value, ``extra`` wins.
    uncertainty
        Which tower uncertainty the series carries: ``RANDUNC`` (random) or ``JOINTUNC``.

    Returns
    -------
    SiteSeries
        One row per tower on the months from the first to the last of any tower; a month a
        tower did not measure a driver is NaN, and the windows through it are not used.

    Raises
    ------
    InvalidTowerDataError
        When a feature is no column of the tower tables, or a tower has no value of one.
    """
    meta = sites.meta.sort_index()
    measured = tower_drivers(sites, extra)
    absent = [f for f in features if f not in measured]
    if absent:
        raise InvalidTowerDataError(
            f"feature(s) {', '.join(absent)} are not columns of the tower tables (they have "
            f"{', '.join(measured.columns) or 'no driver columns'}); add them to the tower "
            "files or a --site-drivers-table, choose others with --features, or pass a --cube"
        )
    stamps = measured.index.get_level_values(TIME).union(pd.DatetimeIndex(sites.fluxes[TIME]))
    times = pd.date_range(stamps.min(), stamps.max(), freq="MS")
    full = pd.MultiIndex.from_product([meta.index, times], names=[SITE_ID, TIME])
    table = measured.reindex(full)[list(features)]
    # A copy: pandas hands out read-only arrays, and torch takes views of these.
    drivers = table.to_numpy(dtype="float32", copy=True)
    drivers = drivers.reshape(len(meta), len(times), len(features))
    for s, site in enumerate(meta.index):
        empty = [f for k, f in enumerate(features) if not np.isfinite(drivers[s, :, k]).any()]
        if empty:
            raise InvalidTowerDataError(
                f"site {site}{_from_file(sites, site)} has no {', '.join(empty)}; give it in "
                "its file or a --site-drivers-table, or leave the feature out (--features)"
            )
        present = np.isfinite(drivers[s]).any(axis=0)
        names = [f for f, ok in zip(features, present, strict=True) if ok]
        problem = implausible_value(
            names, np.nanmin(drivers[s][:, present], 0), np.nanmax(drivers[s][:, present], 0)
        )
        if problem:
            raise InvalidTowerDataError(
                f"site {site}{_from_file(sites, site)}: {problem}; {IMPLAUSIBLE_FIX}"
            )
    fluxes, sigma = _tower_fluxes(sites, meta.index, times, targets, uncertainty)
    return SiteSeries(
        site_ids=list(meta.index),
        ecosystems=list(meta["ecosystem"]),
        times=times,
        features=list(features),
        targets=list(targets),
        drivers=drivers,
        fluxes=fluxes,
        uncertainty=sigma,
        feature_sources=(TOWER,) * len(features),
        feature_units=tuple(sites.units.get(f, _canonical_units(f)) for f in features),
    )


def _from_file(sites: SiteData, site: str) -> str:
    """`` (FILE)`` naming a tower's file for messages, when known."""
    if site in sites.sources.index:
        return f" ({sites.sources.loc[site, 'file']})"
    return ""


def _canonical_units(feature: str) -> str:
    """Units of a canonical driver; a column the schema does not know is taken as given."""
    return DRIVERS[feature].units if feature in DRIVERS else "as given"


def _tower_fluxes(
    sites: SiteData,
    site_ids: pd.Index,
    times: pd.DatetimeIndex,
    targets: Sequence[str],
    uncertainty: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Fluxes and their uncertainty ``(S, T, K)`` of the towers on ``times``."""
    table = sites.fluxes.set_index([SITE_ID, TIME])
    full = pd.MultiIndex.from_product([site_ids, times], names=[SITE_ID, TIME])
    shape = (len(site_ids), len(times), len(targets))
    fluxes = table[list(targets)].reindex(full).to_numpy(dtype="float32", copy=True)
    fluxes = fluxes.reshape(shape)
    columns = [uncertainty_name(t, uncertainty) for t in targets]
    sigma = table.reindex(full, columns=columns).to_numpy(dtype="float32", copy=True)
    sigma = sigma.reshape(shape)
    return fluxes, sigma


def driver_columns(table: pd.DataFrame) -> list[str]:
    """Name the columns of a tower table that are drivers: numbers other than fluxes and QC."""
    reserved = {SITE_ID, TIME, QC, *TARGETS}
    reserved |= {uncertainty_name(t, kind) for t in TARGETS for kind in UNCERTAINTY_KINDS}
    return [
        c for c in table.columns if c not in reserved and pd.api.types.is_numeric_dtype(table[c])
    ]


def tower_drivers(sites: SiteData, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Drivers measured at the towers: from their files, and from point extractions.

    Parameters
    ----------
    sites
        Tower data; FLUXNET and AmeriFlux files give ``TA``, ``SW_IN``, ``VPD``, ``PRECIP``
        (and more), tidy tables any numeric column besides the fluxes.
    extra
        More drivers at the towers ([`read_site_drivers`][upscale.towers.tidy.read_site_drivers]),
        e.g. MODIS subsets; where both give a driver for a month, ``extra`` wins.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(site_id, time)``, one column per driver found.
    """
    index = [SITE_ID, TIME]
    own = sites.fluxes.set_index(index)
    table = own[driver_columns(sites.fluxes)]
    if extra is not None:
        table = extra.set_index(index).combine_first(table)
    return table.dropna(how="all", axis=1)


def driver_agreement(series: SiteSeries, measured: pd.DataFrame) -> pd.DataFrame:
    """How well the cube's drivers at each tower's pixel agree with the tower's own.

    Parameters
    ----------
    series
        Tower series with the cube's drivers
        ([`extract_site_series`][upscale.learn.samples.extract_site_series]).
    measured
        Drivers at the towers ([`tower_drivers`][upscale.learn.samples.tower_drivers]).

    Returns
    -------
    pandas.DataFrame
        One row per tower and driver both have: ``n`` (months with both), ``tower_mean``,
        ``cube_mean``, ``bias`` (cube - tower), ``rmse`` and ``r``, in the driver's units.
    """
    rows = []
    for s, site in enumerate(series.site_ids):
        for f, name in enumerate(series.features):
            if name not in measured:
                continue
            tower = (
                measured[name]
                .reindex(
                    pd.MultiIndex.from_product([[site], series.times], names=["site_id", "time"])
                )
                .to_numpy(dtype="float64")
            )
            cube = series.drivers[s, :, f].astype("float64")
            both = np.isfinite(tower) & np.isfinite(cube)
            if not both.any():
                continue
            t, c = tower[both], cube[both]
            r = (
                np.corrcoef(t, c)[0, 1]
                if both.sum() > 2 and t.std() > 0 and c.std() > 0
                else np.nan
            )
            rows.append(
                {
                    "site_id": site,
                    "driver": name,
                    "units": series.feature_units[f],
                    "n": int(both.sum()),
                    "tower_mean": t.mean(),
                    "cube_mean": c.mean(),
                    "bias": (c - t).mean(),
                    "rmse": float(np.sqrt(((c - t) ** 2).mean())),
                    "r": r,
                }
            )
    return pd.DataFrame(rows)


def with_site_drivers(
    series: SiteSeries, measured: pd.DataFrame, names: Sequence[str]
) -> SiteSeries:
    """Return the series with some drivers taken from the towers instead of the cube.

    Months a tower did not measure keep the cube's value, so windows stay whole.

    Raises
    ------
    InvalidTowerDataError
        When a driver is not a feature of the series, or a tower never measured it.
    """
    drivers = series.drivers.copy()
    sources = list(series.feature_sources)
    for name in names:
        if name not in series.features:
            raise InvalidTowerDataError(
                f"site driver {name} is not among the features {series.features}; add it"
            )
        f = series.features.index(name)
        for s, site in enumerate(series.site_ids):
            values = (
                measured[name]
                .reindex(
                    pd.MultiIndex.from_product([[site], series.times], names=["site_id", "time"])
                )
                .to_numpy(dtype="float32")
                if name in measured
                else np.full(len(series.times), np.nan, "float32")
            )
            if not np.isfinite(values).any():
                raise InvalidTowerDataError(
                    f"site {site} has no {name} of its own in the cube's period; give it in "
                    "the site files (or a --site-drivers table), or take it from the cube"
                )
            drivers[s, :, f] = np.where(np.isfinite(values), values, drivers[s, :, f])
        sources[f] = TOWER
    return replace(series, drivers=drivers, feature_sources=tuple(sources))
