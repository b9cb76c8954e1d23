"""Train, sweep and explain: models from towers and a driver cube."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from upscale.api._common import Status, input_stamp, print_status
from upscale.artifact import load_model, read_card, save_model
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
    SiteSeries,
    driver_agreement,
    extract_site_series,
    located,
    site_pixels,
    tower_drivers,
    with_site_drivers,
)
from upscale.schema import DRIVERS, WETLAND_FRACTION
from upscale.shap_maps import export_shap_cogs, shap_maps
from upscale.sites import Partitioning, read_site_drivers, read_sites
from upscale.sweep import DEFAULT_MEMORIES, SweepResult, run_sweep
from upscale.training import MIN_TOWERS, TrainConfig, site_folds, train_ensemble


def _require_towers(
    series: SiteSeries, sites: str | Path, ecosystems: Sequence[str], config: TrainConfig
) -> None:
    """Check every ecosystem's towers can train every member, before any model is written.

    Raises
    ------
    SiteDataError
        When an ecosystem has too few tower pixels to cross-validate, a fold would leave
        fewer than 2 pixels to train on, or no tower has values of one of the targets.
    """
    for eco in ecosystems:
        towers = series.of_ecosystem(eco)
        groups = towers.pixel_groups()
        if len(groups) < MIN_TOWERS:
            raise SiteDataError(
                f"{sites}: {eco} has {len(towers.site_ids)} tower(s) in {len(groups)} cube "
                f"pixel(s); at least {MIN_TOWERS} pixels with towers are needed to cross-validate"
            )
        for held_out in site_folds(groups, config):
            left = sum(1 for group in groups if not set(group) & set(held_out))
            if left < 2:  # one pixel to train on, one to stop early on
                raise SiteDataError(
                    f"{sites}: holding out the {eco} tower(s) {', '.join(held_out)} leaves "
                    f"{left} pixel(s) with towers to train on, and 2 are needed; use "
                    f"{len(groups)} folds or leave-one-site-out (train --folds {len(groups)} "
                    f"or --cv loso; folds: {len(groups)} or cv: loso in a --config file)"
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
        Ecosystem -> (tower fluxes, held-out predictions), both ``(S, T, K)``; not for
        ecosystems whose models an interrupted run had finished.
    config
        The resolved training config written beside the models (``<name>.yaml``).
    drivers
        Agreement of the cube's drivers with the towers' own at their pixels
        ([`driver_agreement`][upscale.samples.driver_agreement]), also written as
        ``<name>-drivers.csv``.
    """

    models: dict[str, Path]
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]]
    held_out: dict[str, tuple[np.ndarray, np.ndarray]]
    config: Path
    drivers: pd.DataFrame

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


def train(
    sites: str | Path,
    cube: str | Path,
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
        Folder with ``sites.csv`` and FLUXNET-format (or tidy) CSVs.
    cube
        Driver cube (Zarr v3 or NetCDF).
    out
        Folder that receives one model folder per ecosystem, ``<name>-<ecosystem>``.
    config
        Architecture, memory and training settings.
    name
        Prefix of the model names.
    partitioning
        Night-time (``NT``) or day-time (``DT``) partitioned GPP and RE.
    ecosystems
        Ecosystems to train; by default all those of the towers.
    site_drivers_table
        Drivers measured or extracted at the towers (``site_id, time, <DRIVER>...``), for
        ``config.site_drivers`` and the agreement table.
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
        Model folders, cross-validated metrics and held-out predictions per ecosystem.

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
    config = config or TrainConfig()
    if FILLED in open_cube(cube, ()).data_vars and FILLED not in config.features:
        status(f"the cube is gap-filled: the models also read the {FILLED} flag")
        config = config.model_copy(update={"features": (*config.features, FILLED)})
    series, measured = _cube_and_tower_drivers(
        sites, cube, config, partitioning, site_drivers_table
    )
    if mask is not None:
        _require_wetland_at_towers(sites, cube, mask, partitioning)
    agreement = driver_agreement(series, measured)
    if config.site_drivers:
        status(f"taking {', '.join(config.site_drivers)} from the towers, not the cube")
        series = with_site_drivers(series, measured, config.site_drivers)
    ecosystems = list(ecosystems or sorted(set(series.ecosystems)))
    folders = {eco: Path(out) / f"{name}-{eco}" for eco in ecosystems}
    agreement_path = Path(out) / f"{name}-drivers.csv"
    _require_towers(series, sites, ecosystems, config)
    plan = {
        "sites": Path(sites).resolve(),
        "cube": Path(cube).resolve(),
        "config": config.model_dump(mode="json"),
        "ecosystems": ecosystems,
        "partitioning": partitioning,
        "site_drivers_table": site_drivers_table and Path(site_drivers_table).resolve(),
    }
    with (
        output_lock(Path(out) / name),
        resumable(
            Path(out) / f".{name}.training.json",
            plan,
            [*folders.values(), agreement_path],
            overwrite=overwrite,
        ) as finished,
    ):
        result = TrainResult(
            models={},
            metrics={},
            held_out={},
            config=save_train_config(config, Path(out) / f"{name}.yaml"),
            drivers=agreement,
        )
        if not agreement.empty:
            agreement.to_csv(agreement_path, index=False, float_format="%.4g")
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
                "windows"
            )
            fitted = train_ensemble(
                eco_series,
                config,
                name=f"{name}-{eco}",
                ecosystem=eco,
                data={"sites": str(Path(sites).resolve()), "cube": str(Path(cube).resolve())},
                progress=lambda line, eco=eco: status(f"  {eco}: {line}"),
            )
            result.models[eco] = save_model(fitted.model, folders[eco], overwrite=overwrite)
            result.metrics[eco] = fitted.model.card.cv_metrics
            result.held_out[eco] = (eco_series.fluxes, fitted.predictions)
    return result


def tower_series(
    sites: str | Path,
    cube: str | Path,
    config: TrainConfig,
    *,
    partitioning: Partitioning = "NT",
    site_drivers_table: str | Path | None = None,
    cache: str | Path | None = None,
    status: Status = print_status,
) -> SiteSeries:
    """Read the towers and the drivers at their pixels, reusing a cache when inputs match.

    Parameters
    ----------
    sites, cube
        Tower folder and driver cube.
    config
        Its features and targets select what is extracted; its ``site_drivers`` are taken
        from the towers' own data instead of the cube.
    partitioning
        NT or DT partitioned GPP and RE.
    site_drivers_table
        More drivers measured or extracted at the towers (``site_id, time, <DRIVER>...``).
    cache
        ``.npz`` file of the extracted series; reused when the inputs' files, features,
        site drivers, targets and partitioning are unchanged, rewritten otherwise.
    status
        Receives progress lines.
    """
    inputs = [Path(sites), Path(cube)] + ([Path(site_drivers_table)] if site_drivers_table else [])
    key = input_stamp(*inputs) + repr(
        (config.features, config.site_drivers, config.targets, partitioning)
    )
    stamp = Path(f"{cache}.key") if cache else None
    if cache and Path(cache).exists() and stamp.exists() and stamp.read_text() == key:
        status(f"reusing the tower samples cached in {cache}")
        return SiteSeries.load(cache)
    series, measured = _cube_and_tower_drivers(
        sites, cube, config, partitioning, site_drivers_table
    )
    if config.site_drivers:
        series = with_site_drivers(series, measured, config.site_drivers)
    if cache:
        # The key goes last: a crash while writing leaves no key, so no stale reuse.
        stamp.unlink(missing_ok=True)
        partial = Path(f"{cache}.partial.npz")
        series.save(partial)
        partial.replace(cache)
        stamp.write_text(key)
    return series


def _require_wetland_at_towers(
    sites: str | Path, cube: str | Path, mask: str | Path, partitioning: Partitioning
) -> None:
    """Refuse towers whose pixel has no wetland in the mask the models will map."""
    drivers = open_cube(cube, ())
    cover = open_mask(mask, drivers)[WETLAND_FRACTION].values
    meta = read_sites(sites, partitioning=partitioning).meta
    rows, cols = site_pixels(drivers, meta)
    dry = cover[rows, cols] <= 0
    if dry.any():
        raise SiteDataError(
            f"site(s) on pixels without wetland in {Path(mask).name}: {located(meta[dry])}; "
            "check their coordinates in sites.csv, or the mask"
        )


def _cube_and_tower_drivers(
    sites: str | Path,
    cube: str | Path,
    config: TrainConfig,
    partitioning: Partitioning,
    site_drivers_table: str | Path | None,
) -> tuple[SiteSeries, pd.DataFrame]:
    """Tower series with the cube's drivers, and the drivers the towers measured."""
    site_data = read_sites(sites, partitioning=partitioning)
    drivers = open_cube(cube, config.features)
    series = extract_site_series(drivers, site_data, config.features, targets=config.targets)
    extra = read_site_drivers(site_drivers_table) if site_drivers_table else None
    return series, tower_drivers(site_data, extra)


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
    series, measured = _cube_and_tower_drivers(
        sites, cube, config, partitioning, site_drivers_table
    )
    return driver_agreement(series, measured)


@dataclass(frozen=True)
class SweepReport:
    """What [`sweep`][upscale.api.models.sweep] wrote, and the tables."""

    outputs: dict[str, Path]
    result: SweepResult


def sweep(
    sites: str | Path,
    cube: str | Path,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    architectures: Sequence[str] = ("lstm", "transformer"),
    memories: Sequence[int] = DEFAULT_MEMORIES,
    nee_modes: Sequence[str] = NEE_MODES,
    partitioning: Partitioning = "NT",
    workers: int | None = None,
    overwrite: bool = False,
    status: Status = print_status,
) -> SweepReport:
    """Cross-validate architectures x memory lengths x ecosystems and choose the memory.

    Writes ``skill.csv`` (every run, fold by fold), ``optimum.csv`` (the memory chosen per
    ecosystem, architecture and flux), ``nee_modes.csv`` (NEE skill of each NEE mode) and
    ``skill_vs_memory.png`` into ``out``; the tower samples are cached in ``samples.npz``
    and reused by later sweeps on the same inputs. See [`run_sweep`][upscale.sweep.run_sweep].
    """
    out = Path(out)
    outputs = {
        "skill": out / "skill.csv",
        "optimum": out / "optimum.csv",
        "nee_modes": out / "nee_modes.csv",
        "figure": out / "skill_vs_memory.png",
    }
    refuse_overwrite(outputs.values(), overwrite=overwrite)
    config = config or TrainConfig()
    out.mkdir(parents=True, exist_ok=True)
    series = tower_series(
        sites, cube, config, partitioning=partitioning, cache=out / "samples.npz", status=status
    )
    _require_towers(series, sites, sorted(set(series.ecosystems)), config)
    result = run_sweep(
        series,
        config,
        architectures=architectures,
        memories=memories,
        nee_modes=nee_modes,
        workers=workers,
        progress=status,
    )
    result.skill.to_csv(outputs["skill"], index=False, float_format="%.4f")
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
    explanations: Sequence[TowerExplanation], outputs: dict[str, Path]
) -> None:
    """Write the towers' importance, memory and memory-profile tables and their figures."""
    importance = pd.concat(
        [e.attribution.importance().assign(ecosystem=e.ecosystem) for e in explanations]
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
            for e in explanations
        ]
    )
    profile.to_csv(outputs["profile"], index=False, float_format="%.4g")
    save_png(importance_figure(explanations), outputs["importance_png"])
    save_png(memory_figure(explanations), outputs["profile_png"])


def explain(
    sites: str | Path,
    cube: str | Path,
    models: Sequence[str | Path],
    out: str | Path,
    *,
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
        outputs |= {"shap": out / "shap.zarr", "shap_cogs": out / "shap_cogs"}
    plan = {
        "sites": Path(sites).resolve(),
        "cube": Path(cube).resolve(),
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
            key = (tuple(model.card.features), tuple(model.card.targets))
            if key not in extracted:
                config = TrainConfig(features=key[0], targets=key[1])
                extracted[key] = tower_series(
                    sites, cube, config, partitioning=partitioning, status=status
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
        _write_tower_explanations(explanations, outputs)
        if mask is not None:
            if outputs["shap"] not in finished:  # the slow part: a killed run resumes its rows
                folders = {
                    e.ecosystem: Path(folder)
                    for e, folder in zip(explanations, models, strict=True)
                }
                features = list(dict.fromkeys(f for key in extracted for f in key[0]))
                drivers = open_cube(cube, features)
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
