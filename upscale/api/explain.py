"""Explain: which drivers and how much memory trained models use, at towers and on maps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import xarray as xr

from upscale.api._common import print_status
from upscale.api._towers import read_towers
from upscale.engine.shap_maps import export_shap_cogs, shap_maps
from upscale.errors import InvalidConfigError, InvalidTowerDataError
from upscale.io.durable import output_lock, resumable
from upscale.io.stores import open_cube, open_mask, open_store, write_store
from upscale.learn.artifact import ModelCard, load_model
from upscale.learn.attribution import TowerExplanation, explain_towers
from upscale.learn.samples import TOWER, SiteSeries
from upscale.learn.training import TrainConfig
from upscale.progress import Status, dask_progress
from upscale.report.plots import importance_figure, memory_figure, save_png
from upscale.schema import validate_cube
from upscale.towers.sites import Partitioning


@dataclass(frozen=True)
class ExplainReport:
    """What [`explain`][upscale.api.explain.explain] wrote, and the explanations per ecosystem."""

    outputs: dict[str, Path]
    explanations: list[TowerExplanation]


EXPLAIN_FILES = {
    "importance": "importance.csv",
    "memory": "memory.csv",
    "profile": "memory_profile.csv",
    "importance_png": "importance.png",
    "profile_png": "memory_profile.png",
}
"""What [`explain`][upscale.api.explain.explain] writes at the towers: key -> file name."""

EXPLAIN_PLAN = ".upscale-explain.json"
"""File in the explain folder recording a run under way (see `upscale.io.durable.resumable`)."""


def _write_tower_explanations(
    explanations: Sequence[TowerExplanation],
    outputs: dict[str, Path],
    features: Sequence[str] | None = None,
) -> None:
    """Write the towers' importance, memory and memory-profile tables and their figures.

    With ``features``, the importance table and figure and the memory-profile table show
    those drivers only; the memory statistics stay over every feature.
    """
    shown = [
        replace(e, attribution=e.attribution.select(features)) if features else e
        for e in explanations
    ]
    importance = pd.concat(
        [e.attribution.importance().assign(ecosystem=e.ecosystem) for e in shown]
    )
    importance.to_csv(outputs["importance"], index=False, float_format="%.5g")
    memory = pd.concat(
        [e.lag_summary().assign(**e.sampling) for e in explanations], ignore_index=True
    )
    memory.to_csv(outputs["memory"], index=False, float_format="%.4g")
    profile = pd.concat(
        [
            xr.DataArray(
                e.attribution.memory_profile(),
                dims=("target", "lag", "feature"),
                coords={"target": e.attribution.targets, "feature": e.attribution.features},
                name="share",
            )
            .to_dataframe()
            .reset_index()
            .assign(ecosystem=e.ecosystem)
            for e in shown
        ]
    )
    profile.to_csv(outputs["profile"], index=False, float_format="%.4g")
    save_png(importance_figure(shown), outputs["importance_png"])
    save_png(memory_figure(explanations), outputs["profile_png"])


def explain(
    sites: str | Path,
    cube: str | Path | None,
    models: Sequence[str | Path],
    out: str | Path,
    *,
    features: Sequence[str] | None = None,
    site_drivers_table: str | Path | None = None,
    windows: int = 300,
    background: int = 200,
    samples: int = 64,
    seed: int = 0,
    null: bool = True,
    mask: str | Path | None = None,
    months: int = 4,
    period: tuple[str, str] | None = None,
    raster_samples: int = 16,
    partitioning: Partitioning = "NT",
    overwrite: bool = False,
    status: Status = print_status,
) -> ExplainReport:
    """Explain trained models at their towers: drivers, lags and memory per flux.

    Writes ``importance.csv`` (mean |SHAP| per ecosystem, flux and driver, ranked),
    ``memory.csv`` (attribution-weighted mean lag, 50 % and 90 % cumulative lags, with the
    spread over ensemble members, the null model's and the distance to it, and the sampling),
    ``memory_profile.csv`` (share of mean
    |SHAP| per lag and driver), ``importance.png`` and ``memory_profile.png`` into ``out``.
    See [`explain_towers`][upscale.learn.attribution.explain_towers].

    Each feature is read where the model's card says it came from: the cube, or the
    towers' own data (their files or ``site_drivers_table``); a model of tower features
    alone needs no ``cube``. ``features`` restricts the importance table and figure and
    ``memory_profile.csv`` to some of the models' drivers; the memory statistics stay over
    all of them.

    With a wetland ``mask``, also maps the explanation over the region: ``shap.zarr``
    (mean |SHAP| per target and driver, dominant driver, weighted mean lag per pixel, from
    ``months`` sampled months with ``raster_samples`` samples each; see
    [`shap_maps`][upscale.engine.shap_maps.shap_maps]) and its COGs in ``shap_cogs/``.
    """
    out = Path(out)
    outputs = {key: out / name for key, name in EXPLAIN_FILES.items()}
    if mask is not None:
        if cube is None:
            raise InvalidConfigError("explain --mask maps the explanation over a cube: pass --cube")
        outputs |= {"shap": out / "shap.zarr", "shap_cogs": out / "shap_cogs"}
    loaded = {Path(folder): load_model(folder) for folder in models}
    if features:
        cards = [model.card for model in loaded.values()]
        unknown = sorted({f for f in features if not all(f in c.features for c in cards)})
        if unknown:
            raise InvalidConfigError(
                f"--features {', '.join(unknown)}: not features of every model explained "
                f"(they have {', '.join(cards[0].features)})"
            )
    plan = {
        "sites": Path(sites).resolve(),
        "cube": cube and Path(cube).resolve(),
        "site_drivers_table": site_drivers_table and Path(site_drivers_table).resolve(),
        "models": [Path(folder).resolve() for folder in models],
        "mask": mask and Path(mask).resolve(),
        "towers": [windows, background, samples, seed, null, partitioning],
        "rasters": [months, period, raster_samples],
    }
    with (
        output_lock(out),
        resumable(out / EXPLAIN_PLAN, plan, outputs.values(), overwrite=overwrite) as finished,
    ):
        configs = {folder: _explained_config(m.card, folder, cube) for folder, m in loaded.items()}
        from_cube = any(c.site_drivers != c.features for c in configs.values())
        drivers = open_cube(cube, ()) if mask is not None or from_cube else None
        series = _tower_series(
            sites, drivers, cube, configs, partitioning, site_drivers_table, status
        )
        explanations = []
        for folder, model in loaded.items():
            towers = [s for s in model.card.sites if s in series[folder].site_ids]
            if not towers:
                raise InvalidTowerDataError(
                    f"{sites}: none of the towers of {folder} ({', '.join(model.card.sites)}); "
                    "explain a model with the towers it was trained on"
                )
            status(
                f"explaining {folder} at {len(towers)} towers"
                + (" (and training its memoryless null)" if null else "")
            )
            explanations.append(
                explain_towers(
                    model,
                    series[folder].subset(towers),
                    windows=windows,
                    background=background,
                    samples=samples,
                    seed=seed,
                    null=null,
                )
            )
        # Quick to make again: a resumed run rewrites them, so that they agree with each other.
        _write_tower_explanations(explanations, outputs, features)
        if mask is not None:
            if outputs["shap"] not in finished:  # the slow part: a killed run resumes its rows
                mapped = dict.fromkeys(f for c in configs.values() for f in c.features)
                validate_cube(drivers, mapped, source=str(cube))
                rasters = shap_maps(
                    drivers,
                    open_mask(mask, drivers),
                    {e.ecosystem: folder for e, folder in zip(explanations, loaded, strict=True)},
                    months=months,
                    period=period,
                    samples=raster_samples,
                    seed=seed,
                )
                # In the rows' plan: rows left by a run on other inputs are not taken.
                rasters.attrs["inputs"] = json.dumps(plan, sort_keys=True, default=str)
                with dask_progress(f"explaining every wetland pixel ({months} months each)"):
                    write_store(rasters, outputs["shap"], overwrite=True, resume=True)
            export_shap_cogs(
                open_store(outputs["shap"], kind="maps"), outputs["shap_cogs"], overwrite=True
            )
    return ExplainReport(outputs=outputs, explanations=explanations)


def _tower_series(
    sites: str | Path,
    drivers: xr.Dataset | None,
    cube: str | Path | None,
    configs: dict[Path, TrainConfig],
    partitioning: Partitioning,
    site_drivers_table: str | Path | None,
    status: Status,
) -> dict[Path, SiteSeries]:
    """Each model's towers with its drivers, read once per set of features the models share."""
    read: dict[tuple, SiteSeries] = {}
    series = {}
    for folder, config in configs.items():
        key = (config.features, config.site_drivers, config.targets, config.uncertainty)
        if key not in read:
            read[key] = read_towers(
                sites,
                drivers if config.site_drivers != config.features else None,
                config,
                cube=cube,
                partitioning=partitioning,
                site_drivers_table=site_drivers_table,
                status=status,
            ).series
        series[folder] = read[key]
    return series


def _explained_config(card: ModelCard, folder: str | Path, cube: str | Path | None) -> TrainConfig:
    """Rebuild the features, their sources and the targets a model was trained with.

    Raises
    ------
    InvalidConfigError
        When the model reads features from a cube and none is given.
    """
    if card.feature_sources:
        from_towers = tuple(f for f in card.features if card.feature_sources.get(f) == TOWER)
    else:  # a card from before sources were recorded: its site drivers were the towers'
        from_towers = tuple(card.train_config.get("site_drivers", ()))
    from_cube = [f for f in card.features if f not in from_towers]
    if from_cube and cube is None:
        raise InvalidConfigError(
            f"{folder}: the model reads {', '.join(from_cube)} from a driver cube; pass --cube"
        )
    return TrainConfig(
        features=tuple(card.features),
        site_drivers=from_towers,
        targets=tuple(card.targets),
        uncertainty=card.train_config.get("uncertainty", "RANDUNC"),
    )
