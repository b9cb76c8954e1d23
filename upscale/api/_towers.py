"""Towers with their drivers, as train, sweep and explain read them, and the sample cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from upscale.api._common import input_stamp, print_status
from upscale.errors import InvalidTowerDataError
from upscale.io.durable import staged, write_text
from upscale.io.stores import open_cube, open_mask
from upscale.learn.samples import (
    SiteSeries,
    driver_agreement,
    extract_site_series,
    tower_drivers,
    tower_site_series,
    with_site_drivers,
)
from upscale.learn.training import MIN_TOWERS, TrainConfig, require_temporal_split
from upscale.progress import Status
from upscale.schema import DRIVERS, WETLAND_FRACTION, validate_cube
from upscale.towers.pixels import located, site_pixels
from upscale.towers.sites import SITE_ID, Partitioning, SiteData, read_sites
from upscale.towers.tidy import read_site_drivers


@dataclass(frozen=True)
class Towers:
    """Towers as read for training.

    The series, the data as read, the config with its features resolved, and the agreement
    of cube and tower drivers (empty without a cube).
    """

    series: SiteSeries
    data: SiteData
    config: TrainConfig
    agreement: pd.DataFrame

    def files(self, site_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each tower's file, format and flux methods, for model cards."""
        sources = self.data.sources
        return {
            site: {k: str(v) for k, v in sources.loc[site].items() if pd.notna(v)}
            for site in site_ids
            if site in sources.index
        }


def read_towers(
    sites: str | Path,
    drivers: xr.Dataset | None,
    config: TrainConfig,
    *,
    cube: str | Path | None = None,
    partitioning: Partitioning,
    site_drivers_table: str | Path | None,
    status: Status,
) -> Towers:
    """Read the towers and put them with their drivers, from the cube or their own data.

    Parameters
    ----------
    sites
        Tower folder.
    drivers
        The driver cube, opened once by the caller; None for a site-level study.
    config
        Its features and targets select what is extracted; its ``site_drivers`` are taken
        from the towers' own data instead of the cube.
    cube
        Where ``drivers`` came from, to name it in errors.
    partitioning, site_drivers_table, status
        As for [`tower_series`][upscale.api.tower_series].
    """
    site_data = read_sites(sites, partitioning=partitioning)
    extra = read_site_drivers(site_drivers_table) if site_drivers_table else None
    measured = tower_drivers(site_data, extra)
    if drivers is None:
        config = _tower_features(config, measured, status)
        series = tower_site_series(
            site_data,
            config.features,
            targets=config.targets,
            extra=extra,
            uncertainty=config.uncertainty,
        )
        return Towers(series, site_data, config, pd.DataFrame())
    validate_cube(drivers, config.features, source=str(cube))
    series = extract_site_series(
        drivers, site_data, config.features, targets=config.targets, uncertainty=config.uncertainty
    )
    agreement = driver_agreement(series, measured)
    if config.site_drivers:
        status(f"taking {', '.join(config.site_drivers)} from the towers, not the cube")
        series = with_site_drivers(series, measured, config.site_drivers)
    return Towers(series, site_data, config, agreement)


def _tower_features(config: TrainConfig, measured: pd.DataFrame, status: Status) -> TrainConfig:
    """Without a cube, features not chosen are the canonical drivers every tower measured."""
    config = config.model_copy(update={"site_drivers": ()})  # every feature is the towers'
    if "features" in config.model_fields_set:
        return config
    have = measured.notna().groupby(level=SITE_ID).any()
    every = [f for f in DRIVERS if f in have and bool(have[f].all())]
    if not every:
        raise InvalidTowerDataError(
            "no canonical driver is measured at every tower; choose the features with "
            f"--features (the tower tables have {', '.join(measured.columns) or 'none'})"
        )
    status(f"no cube: the features are the drivers every tower measured: {', '.join(every)}")
    return config.model_copy(update={"features": tuple(every)})


def tower_series(
    sites: str | Path,
    cube: str | Path | None,
    config: TrainConfig,
    *,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
    cache: str | Path | None = None,
    status: Status = print_status,
) -> SiteSeries:
    """Read the towers and their drivers, reusing a cache when inputs match.

    Parameters
    ----------
    sites, cube
        Tower folder and driver cube; without a cube the drivers are the towers' own (see
        [`tower_site_series`][upscale.learn.samples.tower_site_series]).
    config
        Its features and targets select what is extracted; its ``site_drivers`` are taken
        from the towers' own data instead of the cube.
    partitioning
        NT or DT partitioned GPP and RE.
    site_drivers_table
        More drivers measured or extracted at the towers (``site_id, time, <DRIVER>...``).
    cache
        ``.npz`` file of the extracted series; reused when the inputs' files, features,
        site drivers, targets, uncertainty and partitioning are unchanged, rewritten
        otherwise.
    status
        Receives progress lines.
    """
    inputs = [Path(sites)] + [Path(p) for p in (cube, site_drivers_table) if p is not None]
    settings = (config.features, config.site_drivers, config.targets, config.uncertainty)
    key = input_stamp(*inputs) + repr((cube is None, settings, partitioning))
    stamp = Path(f"{cache}.key") if cache else None
    if cache and Path(cache).exists() and stamp.exists() and stamp.read_text() == key:
        status(f"reusing the tower samples cached in {cache}")
        return SiteSeries.load(cache)
    series = read_towers(
        sites,
        open_cube(cube, ()) if cube is not None else None,
        config,
        cube=cube,
        partitioning=partitioning,
        site_drivers_table=site_drivers_table,
        status=status,
    ).series
    if cache:
        # The key goes last: a crash while writing leaves no key, so no stale reuse.
        stamp.unlink(missing_ok=True)
        with staged(cache, overwrite=True, suffix=".npz") as partial:
            series.save(partial)
        write_text(stamp, key)
    return series


def compare_drivers(
    sites: str | Path,
    cube: str | Path,
    *,
    features: Sequence[str] | None = None,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
) -> pd.DataFrame:
    """Agreement of the cube's drivers at each tower's pixel with the tower's own.

    See [`driver_agreement`][upscale.learn.samples.driver_agreement]; ``features`` default to the
    canonical drivers the cube has.
    """
    drivers = open_cube(cube, ())
    if features is None:
        features = [f for f in DRIVERS if f in drivers.data_vars]
    towers = read_towers(
        sites,
        drivers,
        TrainConfig(features=tuple(features)),
        cube=cube,
        partitioning=partitioning,
        site_drivers_table=site_drivers_table,
        status=lambda line: None,
    )
    return towers.agreement


def require_towers(
    series: SiteSeries, sites: str | Path, ecosystems: Sequence[str], config: TrainConfig
) -> None:
    """Check every ecosystem's towers can train every member, before any model is written.

    Raises
    ------
    InvalidTowerDataError
        When an ecosystem has too few tower pixels to cross-validate by tower, a temporal
        split leaves a tower no window to learn or score, or no tower has values of one of
        the targets.
    """
    for eco in ecosystems:
        towers = series.of_ecosystem(eco)
        groups = towers.pixel_groups()
        if config.cv == "temporal":
            require_temporal_split(towers, config)
        elif len(groups) < MIN_TOWERS:
            raise InvalidTowerDataError(
                f"{sites}: {eco} has {len(towers.site_ids)} tower(s) with {len(groups)} distinct "
                f"driver series (towers in one cube pixel share theirs); cross-validating by "
                f"tower needs at least {MIN_TOWERS}: add towers, or hold out each tower's last "
                "months (--cv temporal)"
            )
        for k, target in enumerate(towers.targets):
            if not np.isfinite(towers.fluxes[..., k]).any():
                raise InvalidTowerDataError(
                    f"{sites}: no {eco} tower has {target} values; add them to the tower "
                    f"files (NEE = RE - GPP where a tower reports those two), or train on "
                    "the targets the towers have (targets: in a --config file)"
                )


def require_wetland_at_towers(meta: pd.DataFrame, drivers: xr.Dataset, mask: str | Path) -> None:
    """Refuse towers whose pixel has no wetland in the mask the models will map."""
    cover = open_mask(mask, drivers)[WETLAND_FRACTION].values
    rows, cols = site_pixels(drivers, meta)
    dry = cover[rows, cols] <= 0
    if dry.any():
        raise InvalidTowerDataError(
            f"site(s) on pixels without wetland in {Path(mask).name}: {located(meta[dry])}; "
            "check their coordinates in sites.csv, or the mask"
        )
