"""Site samples: the drivers at each tower's pixel and its monthly fluxes on one time axis.

Models are trained on windows of the last L months of drivers at the tower's cube pixel,
ending in a month where the tower measured a flux. The series are kept whole here; windows
are strided views made where they are used (training and prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import Transformer

from upscale.errors import SiteDataError
from upscale.schema import DRIVERS, IMPLAUSIBLE_FIX, TARGETS, implausible_value
from upscale.sites import SiteData


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
        ``(S, T, F)`` float32 drivers at each tower's pixel.
    fluxes
        ``(S, T, K)`` float32 tower fluxes, NaN where not measured or filtered.
    """

    site_ids: list[str]
    ecosystems: list[str]
    times: pd.DatetimeIndex
    features: list[str]
    targets: list[str]
    drivers: np.ndarray
    fluxes: np.ndarray

    def subset(self, sites: Sequence[str]) -> SiteSeries:
        """Rows of the given sites, in the given order."""
        rows = [self.site_ids.index(s) for s in sites]
        return SiteSeries(
            site_ids=list(sites),
            ecosystems=[self.ecosystems[r] for r in rows],
            times=self.times,
            features=self.features,
            targets=self.targets,
            drivers=self.drivers[rows],
            fluxes=self.fluxes[rows],
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
        )
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SiteSeries:
        """Read series written by [`save`][upscale.samples.SiteSeries.save]."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                site_ids=data["site_ids"].tolist(),
                ecosystems=data["ecosystems"].tolist(),
                times=pd.DatetimeIndex(data["times"]),
                features=data["features"].tolist(),
                targets=data["targets"].tolist(),
                drivers=data["drivers"],
                fluxes=data["fluxes"],
            )

    def n_windows(self, memory: int) -> int:
        """Count trainable windows: full windows ending on a measured month."""
        measured = np.isfinite(self.fluxes[:, memory - 1 :]).any(axis=-1)
        return int(measured.sum())


def site_pixels(cube: xr.Dataset, meta: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the cube pixel that contains each tower.

    Parameters
    ----------
    cube
        Cube with ``y``/``x`` pixel-centre coordinates and a CRS.
    meta
        ``lat``/``lon`` (WGS84) indexed by ``site_id``.

    Raises
    ------
    SiteDataError
        Naming the towers that fall outside the cube's extent.
    """
    to_cube = Transformer.from_crs("EPSG:4326", cube.rio.crs, always_xy=True)
    xs, ys = to_cube.transform(meta["lon"].to_numpy(), meta["lat"].to_numpy())
    x0, dx = float(cube["x"][0]), float(cube["x"][1] - cube["x"][0])
    y0, dy = float(cube["y"][0]), float(cube["y"][1] - cube["y"][0])
    cols = np.floor((xs - x0) / dx + 0.5).astype(int)
    rows = np.floor((ys - y0) / dy + 0.5).astype(int)
    outside = (cols < 0) | (cols >= cube.sizes["x"]) | (rows < 0) | (rows >= cube.sizes["y"])
    if outside.any():
        raise SiteDataError(
            f"site(s) outside the cube extent: {located(meta[outside])}; remove them from "
            "sites.csv or use a cube that covers them"
        )
    return rows, cols


def located(meta: pd.DataFrame) -> str:
    """Name towers with their coordinates, for messages: ``US-Skr (25.3629 N, -81.0776 E)``."""
    return ", ".join(
        f"{site} ({lat:.4f} N, {lon:.4f} E)" for site, lat, lon in meta[["lat", "lon"]].itertuples()
    )


def extract_site_series(
    cube: xr.Dataset,
    sites: SiteData,
    features: Sequence[str],
    *,
    targets: Sequence[str] = TARGETS,
) -> SiteSeries:
    """Put tower fluxes and the drivers at their pixels on the cube's monthly axis.

    Parameters
    ----------
    cube
        Validated driver cube.
    sites
        Tower metadata and monthly fluxes ([`read_sites`][upscale.sites.read_sites]).
    features
        Drivers in model order.
    targets
        Fluxes to learn.

    Returns
    -------
    SiteSeries
        One row per tower; months outside a tower's record are NaN fluxes.

    Raises
    ------
    SiteDataError
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
        raise SiteDataError(
            f"cube driver {features[f]} has {int(gaps[s, :, f].sum())} missing months at the "
            f"pixel of site {meta.index[s]}; fill the cube's gaps first"
        )
    for s, site in enumerate(meta.index):
        problem = implausible_value(features, drivers[s].min(axis=0), drivers[s].max(axis=0))
        if problem:
            raise SiteDataError(f"cube {problem} at the pixel of site {site}; {IMPLAUSIBLE_FIX}")
    times = pd.DatetimeIndex(cube["time"].values)
    table = sites.fluxes.set_index(["site_id", "time"])[list(targets)]
    full = pd.MultiIndex.from_product([meta.index, times], names=["site_id", "time"])
    fluxes = table.reindex(full).to_numpy(dtype="float32").reshape(len(meta), len(times), -1)
    if not np.isfinite(fluxes).any():
        raise SiteDataError(
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
    )


def tower_drivers(sites: SiteData, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Drivers measured at the towers: from their files, and from point extractions.

    Parameters
    ----------
    sites
        Tower data; FLUXNET files give ``TA``, ``SW_IN``, ``VPD``, ``PRECIP``.
    extra
        More drivers at the towers ([`read_site_drivers`][upscale.sites.read_site_drivers]), e.g.
        MODIS subsets; where both give a driver for a month, ``extra`` wins.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(site_id, time)``, one column per canonical driver found.
    """
    index = ["site_id", "time"]
    own = sites.fluxes.set_index(index)
    table = own[[c for c in own.columns if c in DRIVERS]]
    if extra is not None:
        table = extra.set_index(index).combine_first(table)
    return table.dropna(how="all", axis=1)


def driver_agreement(series: SiteSeries, measured: pd.DataFrame) -> pd.DataFrame:
    """How well the cube's drivers at each tower's pixel agree with the tower's own.

    Parameters
    ----------
    series
        Tower series with the cube's drivers
        ([`extract_site_series`][upscale.samples.extract_site_series]).
    measured
        Drivers at the towers ([`tower_drivers`][upscale.samples.tower_drivers]).

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
                    "units": DRIVERS[name].units,
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
    SiteDataError
        When a driver is not a feature of the series, or a tower never measured it.
    """
    drivers = series.drivers.copy()
    for name in names:
        if name not in series.features:
            raise SiteDataError(
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
                raise SiteDataError(
                    f"site {site} has no {name} of its own in the cube's period; give it in "
                    "the site files (or a --site-drivers table), or take it from the cube"
                )
            drivers[s, :, f] = np.where(np.isfinite(values), values, drivers[s, :, f])
    return replace(series, drivers=drivers)
