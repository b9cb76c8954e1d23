"""Train, sweep and explain: models from towers and a driver cube."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from upscale.api._common import Status, input_stamp, print_status
from upscale.artifact import ModelCard, load_model, read_card, save_model
from upscale.attribution import TowerExplanation, explain_towers
from upscale.balance import NEE_MODES
from upscale.config import save_train_config
from upscale.cube import open_cube, open_mask, open_store, write_store
from upscale.errors import (
    ConfigError,
    SiteDataError,
    refuse_overwrite,
)
from upscale.gaps import FILLED
from upscale.locking import output_lock
from upscale.metrics import COMPONENTS
from upscale.plots import (
    importance_figure,
    memory_figure,
    save_png,
    sweep_figure,
)
from upscale.progress import dask_progress
from upscale.resume import resumable
from upscale.samples import (
    TOWER,
    SiteSeries,
    driver_agreement,
    extract_site_series,
    located,
    site_pixels,
    tower_drivers,
    tower_site_series,
    with_site_drivers,
)
from upscale.schema import DRIVERS, WETLAND_FRACTION
from upscale.shap_maps import export_shap_cogs, shap_maps
from upscale.sites import SITE_ID, Partitioning, SiteData, read_site_drivers, read_sites
from upscale.sweep import DEFAULT_MEMORIES, SweepResult, run_sweep
from upscale.training import MIN_TOWERS, TrainConfig, require_temporal_split, train_ensemble


def _require_towers(
    series: SiteSeries, sites: str | Path, ecosystems: Sequence[str], config: TrainConfig
) -> None:
    """Check every ecosystem's towers can train every member, before any model is written.

    Raises
    ------
    SiteDataError
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
            raise SiteDataError(
                f"{sites}: {eco} has {len(towers.site_ids)} tower(s) with {len(groups)} distinct "
                f"driver series (towers in one cube pixel share theirs); cross-validating by "
                f"tower needs at least {MIN_TOWERS}: add towers, or hold out each tower's last "
                "months (--cv temporal)"
            )
        for k, target in enumerate(towers.targets):
            if not np.isfinite(towers.fluxes[..., k]).any():
                raise SiteDataError(
                    f"{sites}: no {eco} tower has {target} values; add them to the tower "
                    f"files (NEE = RE - GPP where a tower reports those two), or train on "
                    "the targets the towers have (targets: in a --config file)"
                )


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class TrainResult:
    """Models written by [`train`][upscale.api.models.train], with their held-out predictions.

    Attributes
    ----------
    models
        Ecosystem -> model folder.
    metrics
        Ecosystem -> target -> component -> cross-validated scores (as in the cards).
    held_out
        Ecosystem -> (tower fluxes scored against, held-out predictions), both ``(S, T, K)``;
        not for ecosystems whose models an interrupted run had finished.
    config
        The resolved training config written beside the models (``<name>.yaml``).
    drivers
        Agreement of the cube's drivers with the towers' own at their pixels
        ([`driver_agreement`][upscale.samples.driver_agreement]), also written as
        ``<name>-drivers.csv``; empty without a cube.
    tables
        The per-fold and per-tower skill tables written (``folds``, ``towers``).
    """

    models: dict[str, Path]
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]]
    held_out: dict[str, tuple[np.ndarray, np.ndarray]]
    config: Path
    drivers: pd.DataFrame
    tables: dict[str, Path]

    def skill_table(self) -> pd.DataFrame:
        """One row per ecosystem and flux: scores over all months, R² of each component."""
        return pd.DataFrame(
            [
                {"ecosystem": eco, "flux": flux, **parts["all"]}
                | {f"{part}_r2": parts[part]["r2"] for part in COMPONENTS[1:]}
                for eco, by_flux in self.metrics.items()
                for flux, parts in by_flux.items()
            ]
        )


def cv_tables(models: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """Held-out skill per fold and per tower of trained models, read from their cards.

    Returns
    -------
    dict
        ``folds``: ``ecosystem, flux, fold, towers`` (the fold's towers) and the scores;
        ``towers``: ``ecosystem, flux, site_id`` and the scores (see
        [`skill`][upscale.metrics.skill]).
    """
    folds, towers = [], []
    for eco, folder in models.items():
        card = read_card(folder)
        temporal = card.train_config.get("cv") == "temporal"
        held = {
            str(n): ("last months of " if temporal else "") + ", ".join(sites)
            for n, sites in enumerate(card.cv_fold_sites, start=1)
        }
        for flux, by_fold in card.cv_folds.items():
            folds += [
                {"ecosystem": eco, "flux": flux, "fold": number, "towers": held[number]} | score
                for number, score in by_fold.items()
            ]
        for flux, by_tower in card.cv_towers.items():
            towers += [
                {"ecosystem": eco, "flux": flux, SITE_ID: site} | score
                for site, score in by_tower.items()
            ]
    return {"folds": pd.DataFrame(folds), "towers": pd.DataFrame(towers)}


def train(
    sites: str | Path,
    cube: str | Path | None,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    name: str = "model",
    partitioning: Partitioning = "NT",
    ecosystems: Sequence[str] | None = None,
    site_drivers_table: str | Path | None = None,
    mask: str | Path | None = None,
    overwrite: bool = False,
    status: Status = print_status,
) -> TrainResult:
    """Cross-validate and train one model per ecosystem from a folder of towers.

    Parameters
    ----------
    sites
        Folder with ``sites.csv`` and the towers' files (FLUXNET, AmeriFlux BASE, tidy).
    cube
        Driver cube (Zarr v3 or NetCDF); None for a site-level study, where every feature
        is a column of the tower tables or of ``site_drivers_table``.
    out
        Folder that receives one model folder per ecosystem, ``<name>-<ecosystem>``.
    config
        Architecture, memory, features, cross-validation and training settings. Without a
        cube and without features chosen, the features are the canonical drivers every
        tower measured.
    name
        Prefix of the model names.
    partitioning
        Night-time (``NT``) or day-time (``DT``) partitioned GPP and RE.
    ecosystems
        Ecosystems to train; by default all those of the towers.
    site_drivers_table
        Drivers measured or extracted at the towers (``site_id, time, <DRIVER>...``), for
        ``config.site_drivers``, the agreement table, or the features of a study with no cube.
    mask
        The wetland mask the models will be applied to; towers on pixels without wetland
        in it are refused (wrong coordinates, or a mask that misses their wetland).
    overwrite
        Replace existing model folders.
    status
        Receives progress lines.

    Returns
    -------
    TrainResult
        Model folders, cross-validated metrics and held-out predictions per ecosystem; the
        per-fold and per-tower skill is written as ``<name>-folds.csv`` and
        ``<name>-towers.csv``.

    Notes
    -----
    A run killed part-way and started again with the same inputs and config keeps the
    models it had finished and trains the others; the plan is recorded in
    ``.<name>.training.json`` until every model is written.
    """
    if not _SAFE_NAME.fullmatch(name):  # it names files in `out`: never a path elsewhere
        raise ConfigError(
            f"model name {name!r} is not a plain file name; use letters, digits, '.', '_' "
            f"and '-' (it names the models in {out})"
        )
    if mask is not None and cube is None:
        raise ConfigError("--mask checks the towers against a cube's grid: pass --cube too")
    config = config or TrainConfig()
    if cube is not None and FILLED in open_cube(cube, ()).data_vars:
        if FILLED not in config.features:
            status(f"the cube is gap-filled: the models also read the {FILLED} flag")
            config = config.model_copy(update={"features": (*config.features, FILLED)})
    towers = _site_series(sites, cube, config, partitioning, site_drivers_table, status)
    series, config = towers.series, towers.config
    if mask is not None:
        _require_wetland_at_towers(towers.data.meta, cube, mask)
    ecosystems = list(ecosystems or sorted(set(series.ecosystems)))
    folders = {eco: Path(out) / f"{name}-{eco}" for eco in ecosystems}
    tables = {"folds": Path(out) / f"{name}-folds.csv", "towers": Path(out) / f"{name}-towers.csv"}
    agreement_path = Path(out) / f"{name}-drivers.csv"
    _require_towers(series, sites, ecosystems, config)
    plan = {
        "sites": Path(sites).resolve(),
        "cube": cube and Path(cube).resolve(),
        "config": config.model_dump(mode="json"),
        "ecosystems": ecosystems,
        "partitioning": partitioning,
        "site_drivers_table": site_drivers_table and Path(site_drivers_table).resolve(),
    }
    inputs = {"sites": str(Path(sites).resolve())}
    if cube is not None:
        inputs["cube"] = str(Path(cube).resolve())
    if site_drivers_table is not None:
        inputs["site_drivers_table"] = str(Path(site_drivers_table).resolve())
    with (
        output_lock(Path(out) / name),
        resumable(
            Path(out) / f".{name}.training.json",
            plan,
            [*folders.values(), agreement_path, *tables.values()],
            overwrite=overwrite,
        ) as finished,
    ):
        result = TrainResult(
            models={},
            metrics={},
            held_out={},
            config=save_train_config(config, Path(out) / f"{name}.yaml"),
            drivers=towers.agreement,
            tables=tables,
        )
        if not towers.agreement.empty:
            towers.agreement.to_csv(agreement_path, index=False, float_format="%.4g")
        for eco in ecosystems:
            if folders[eco] in finished:
                status(f"{eco}: keeping {folders[eco]}, finished by an interrupted run")
                result.models[eco] = folders[eco]
                result.metrics[eco] = read_card(folders[eco]).cv_metrics
                continue
            eco_series = series.of_ecosystem(eco)
            status(
                f"training {config.architecture} L={config.memory} for {eco}: "
                f"{len(eco_series.site_ids)} towers, {eco_series.n_windows(config.memory)} "
                f"windows, cross-validation {config.cv}"
            )
            fitted = train_ensemble(
                eco_series,
                config,
                name=f"{name}-{eco}",
                ecosystem=eco,
                data=inputs,
                progress=lambda line, eco=eco: status(f"  {eco}: {line}"),
            )
            fitted.model.card = fitted.model.card.model_copy(
                update={"towers": towers.files(eco_series.site_ids)}
            )
            result.models[eco] = save_model(fitted.model, folders[eco], overwrite=overwrite)
            result.metrics[eco] = fitted.model.card.cv_metrics
            result.held_out[eco] = (fitted.observed, fitted.predictions)
        for key, table in cv_tables(result.models).items():
            table.to_csv(tables[key], index=False, float_format="%.4g")
    return result


@dataclass(frozen=True)
class _Towers:
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


def _tower_features(config: TrainConfig, measured: pd.DataFrame, status: Status) -> TrainConfig:
    """Without a cube, features not chosen are the canonical drivers every tower measured."""
    config = config.model_copy(update={"site_drivers": ()})  # every feature is the towers'
    if "features" in config.model_fields_set:
        return config
    have = measured.notna().groupby(level=SITE_ID).any()
    every = [f for f in DRIVERS if f in have and bool(have[f].all())]
    if not every:
        raise SiteDataError(
            "no canonical driver is measured at every tower; choose the features with "
            f"--features (the tower tables have {', '.join(measured.columns) or 'none'})"
        )
    status(f"no cube: the features are the drivers every tower measured: {', '.join(every)}")
    return config.model_copy(update={"features": tuple(every)})


def _site_series(
    sites: str | Path,
    cube: str | Path | None,
    config: TrainConfig,
    partitioning: Partitioning,
    site_drivers_table: str | Path | None,
    status: Status,
) -> _Towers:
    """Read the towers and put them with their drivers, from the cube or their own data."""
    site_data = read_sites(sites, partitioning=partitioning)
    extra = read_site_drivers(site_drivers_table) if site_drivers_table else None
    measured = tower_drivers(site_data, extra)
    if cube is None:
        config = _tower_features(config, measured, status)
        series = tower_site_series(
            site_data,
            config.features,
            targets=config.targets,
            extra=extra,
            uncertainty=config.uncertainty,
        )
        return _Towers(series, site_data, config, pd.DataFrame())
    drivers = open_cube(cube, config.features)
    series = extract_site_series(
        drivers, site_data, config.features, targets=config.targets, uncertainty=config.uncertainty
    )
    agreement = driver_agreement(series, measured)
    if config.site_drivers:
        status(f"taking {', '.join(config.site_drivers)} from the towers, not the cube")
        series = with_site_drivers(series, measured, config.site_drivers)
    return _Towers(series, site_data, config, agreement)


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
        [`tower_site_series`][upscale.samples.tower_site_series]).
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
    series = _site_series(sites, cube, config, partitioning, site_drivers_table, status).series
    if cache:
        # The key goes last: a crash while writing leaves no key, so no stale reuse.
        stamp.unlink(missing_ok=True)
        partial = Path(f"{cache}.partial.npz")
        series.save(partial)
        partial.replace(cache)
        stamp.write_text(key)
    return series


def _require_wetland_at_towers(meta: pd.DataFrame, cube: str | Path, mask: str | Path) -> None:
    """Refuse towers whose pixel has no wetland in the mask the models will map."""
    drivers = open_cube(cube, ())
    cover = open_mask(mask, drivers)[WETLAND_FRACTION].values
    rows, cols = site_pixels(drivers, meta)
    dry = cover[rows, cols] <= 0
    if dry.any():
        raise SiteDataError(
            f"site(s) on pixels without wetland in {Path(mask).name}: {located(meta[dry])}; "
            "check their coordinates in sites.csv, or the mask"
        )


def compare_drivers(
    sites: str | Path,
    cube: str | Path,
    *,
    features: Sequence[str] | None = None,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
) -> pd.DataFrame:
    """Agreement of the cube's drivers at each tower's pixel with the tower's own.

    See [`driver_agreement`][upscale.samples.driver_agreement]; ``features`` default to the
    canonical drivers the cube has.
    """
    if features is None:
        features = [f for f in DRIVERS if f in open_cube(cube, ()).data_vars]
    config = TrainConfig(features=tuple(features))
    towers = _site_series(
        sites, cube, config, partitioning, site_drivers_table, status=lambda line: None
    )
    return towers.agreement


@dataclass(frozen=True)
class SweepReport:
    """What [`sweep`][upscale.api.models.sweep] wrote, and the tables."""

    outputs: dict[str, Path]
    result: SweepResult


def sweep(
    sites: str | Path,
    cube: str | Path | None,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    architectures: Sequence[str] | None = None,
    memories: Sequence[int] = DEFAULT_MEMORIES,
    nee_modes: Sequence[str] = NEE_MODES,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    status: Status = print_status,
) -> SweepReport:
    """Cross-validate architectures x memory lengths x ecosystems and choose the memory.

    Writes into ``out``: ``study.csv`` (the study's table: R², NSE, decomposed skill and
    noise ceiling per ecosystem, architecture, memory and flux, with the chosen memory
    marked), ``skill.csv`` (every run, fold by fold), ``towers.csv`` (every run, tower by
    tower), ``optimum.csv`` (the memory chosen per ecosystem, architecture and flux),
    ``nee_modes.csv`` (NEE skill of each NEE mode) and ``skill_vs_memory.png``; the tower
    samples are cached in ``samples.npz`` and reused by later sweeps on the same inputs.
    Without a ``cube`` the features are columns of the tower tables (a site-level study).
    See [`run_sweep`][upscale.sweep.run_sweep].
    """
    out = Path(out)
    outputs = {
        "study": out / "study.csv",
        "skill": out / "skill.csv",
        "towers": out / "towers.csv",
        "optimum": out / "optimum.csv",
        "nee_modes": out / "nee_modes.csv",
        "figure": out / "skill_vs_memory.png",
    }
    refuse_overwrite(outputs.values(), overwrite=overwrite)
    config = config or TrainConfig()
    out.mkdir(parents=True, exist_ok=True)
    series = tower_series(
        sites,
        cube,
        config,
        partitioning=partitioning,
        site_drivers_table=site_drivers_table,
        cache=out / "samples.npz",
        status=status,
    )
    if tuple(series.features) != config.features:  # resolved from the towers' columns
        config = config.model_copy(update={"features": tuple(series.features), "site_drivers": ()})
    ecosystems = sorted(set(series.ecosystems))
    compared = {config.memory} if set(nee_modes) - {"direct"} else set()  # NEE modes' L
    for memory in sorted(set(memories) | {1} | compared):  # a temporal split at every L
        _require_towers(series, sites, ecosystems, config.model_copy(update={"memory": memory}))
    result = run_sweep(
        series,
        config,
        architectures=architectures,
        memories=memories,
        nee_modes=nee_modes,
        workers=workers,
        progress=status,
    )
    result.study.to_csv(outputs["study"], index=False, float_format="%.4f")
    result.skill.to_csv(outputs["skill"], index=False, float_format="%.4f")
    result.towers.to_csv(outputs["towers"], index=False, float_format="%.4f")
    result.optimum.to_csv(outputs["optimum"], index=False, float_format="%.4f")
    result.nee_modes.to_csv(outputs["nee_modes"], index=False, float_format="%.4f")
    save_png(sweep_figure(result.skill, result.optimum), outputs["figure"])
    return SweepReport(outputs=outputs | {"samples": out / "samples.npz"}, result=result)


@dataclass(frozen=True)
class ExplainReport:
    """What [`explain`][upscale.api.models.explain] wrote, and the explanations per ecosystem."""

    outputs: dict[str, Path]
    explanations: list[TowerExplanation]


EXPLAIN_PLAN = ".upscale-explain.json"
"""File in the explain folder recording a run under way (see `upscale.resume`)."""


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
    See [`explain_towers`][upscale.attribution.explain_towers].

    Each feature is read where the model's card says it came from: the cube, or the
    towers' own data (their files or ``site_drivers_table``); a model of tower features
    alone needs no ``cube``. ``features`` restricts the importance table and figure and
    ``memory_profile.csv`` to some of the models' drivers; the memory statistics stay over
    all of them.

    With a wetland ``mask``, also maps the explanation over the region: ``shap.zarr``
    (mean |SHAP| per target and driver, dominant driver, weighted mean lag per pixel, from
    ``months`` sampled months with ``raster_samples`` samples each; see
    [`shap_maps`][upscale.shap_maps.shap_maps]) and its COGs in ``shap_cogs/``.
    """
    out = Path(out)
    outputs = {
        "importance": out / "importance.csv",
        "memory": out / "memory.csv",
        "profile": out / "memory_profile.csv",
        "importance_png": out / "importance.png",
        "profile_png": out / "memory_profile.png",
    }
    if mask is not None:
        if cube is None:
            raise ConfigError("explain --mask maps the explanation over a cube: pass --cube")
        outputs |= {"shap": out / "shap.zarr", "shap_cogs": out / "shap_cogs"}
    cards = [read_card(folder) for folder in models]
    if features:
        unknown = sorted({f for f in features if not all(f in c.features for c in cards)})
        if unknown:
            raise ConfigError(
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
        explanations = []
        extracted: dict[tuple, SiteSeries] = {}  # the models of one run share their features
        for folder in models:
            model = load_model(folder)
            config = _explained_config(model.card, folder, cube)
            key = (config.features, config.site_drivers, config.targets, config.uncertainty)
            if key not in extracted:
                extracted[key] = tower_series(
                    sites,
                    cube if config.site_drivers != config.features else None,
                    config,
                    partitioning=partitioning,
                    site_drivers_table=site_drivers_table,
                    status=status,
                )
            series = extracted[key]
            towers = [s for s in model.card.sites if s in series.site_ids]
            if not towers:
                raise SiteDataError(
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
                    series.subset(towers),
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
                folders = {
                    e.ecosystem: Path(folder)
                    for e, folder in zip(explanations, models, strict=True)
                }
                mapped = list(dict.fromkeys(f for key in extracted for f in key[0]))
                drivers = open_cube(cube, mapped)
                rasters = shap_maps(
                    drivers,
                    open_mask(mask, drivers),
                    folders,
                    months=months,
                    period=period,
                    samples=raster_samples,
                    seed=seed,
                )
                # In the rows' plan: rows left by a run on other inputs are not taken.
                rasters.attrs["inputs"] = json.dumps(plan, sort_keys=True, default=str)
                with dask_progress(f"explaining every wetland pixel ({months} months each)"):
                    write_store(rasters, outputs["shap"], overwrite=True, resume=True)
            export_shap_cogs(open_store(outputs["shap"]), outputs["shap_cogs"], overwrite=True)
    return ExplainReport(outputs=outputs, explanations=explanations)


def _explained_config(card: ModelCard, folder: str | Path, cube: str | Path | None) -> TrainConfig:
    """Rebuild the features, their sources and the targets a model was trained with.

    Raises
    ------
    ConfigError
        When the model reads features from a cube and none is given.
    """
    if card.feature_sources:
        from_towers = tuple(f for f in card.features if card.feature_sources.get(f) == TOWER)
    else:  # a card from before sources were recorded: its site drivers were the towers'
        from_towers = tuple(card.train_config.get("site_drivers", ()))
    from_cube = [f for f in card.features if f not in from_towers]
    if from_cube and cube is None:
        raise ConfigError(
            f"{folder}: the model reads {', '.join(from_cube)} from a driver cube; pass --cube"
        )
    return TrainConfig(
        features=tuple(card.features),
        site_drivers=from_towers,
        targets=tuple(card.targets),
        uncertainty=card.train_config.get("uncertainty", "RANDUNC"),
    )
