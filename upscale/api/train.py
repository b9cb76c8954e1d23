"""Train: one model per ecosystem from a folder of towers and a driver cube."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from upscale.api._common import cluster, print_status
from upscale.api._towers import Towers, read_towers, require_towers, require_wetland_at_towers
from upscale.drivers.gaps import FILLED
from upscale.errors import InvalidConfigError
from upscale.io.durable import output_lock, resumable
from upscale.io.stores import open_cube
from upscale.learn.artifact import read_card, save_model
from upscale.learn.config import save_train_config
from upscale.learn.metrics import skill_rows
from upscale.learn.tasks import Executor
from upscale.learn.training import TrainConfig, train_ensemble
from upscale.progress import Status
from upscale.towers.sites import SITE_ID, Partitioning

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class TrainResult:
    """Models written by [`train`][upscale.api.train.train], with their held-out predictions.

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
        ([`driver_agreement`][upscale.learn.samples.driver_agreement]), also written as
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
        return skill_rows(self.metrics)


def cv_tables(models: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """Held-out skill per fold and per tower of trained models, read from their cards.

    Returns
    -------
    dict
        ``folds``: ``ecosystem, flux, fold, towers`` (the fold's towers) and the scores;
        ``towers``: ``ecosystem, flux, site_id`` and the scores (see
        [`skill`][upscale.learn.metrics.skill]).
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
    scheduler: str | None = None,
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
    scheduler
        Address of a dask.distributed scheduler (``tcp://host:8786``) whose workers fit the
        ensemble members, each as a task, to the same weights as here
        ([`train_ensemble`][upscale.learn.training.train_ensemble]). By default the members
        are fitted here, one after the other.
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
    drivers = _check_inputs(cube, out, name=name, mask=mask)
    config = config or TrainConfig()
    if drivers is not None and FILLED in drivers.data_vars and FILLED not in config.features:
        status(f"the cube is gap-filled: the models also read the {FILLED} flag")
        config = config.model_copy(update={"features": (*config.features, FILLED)})
    towers = read_towers(
        sites,
        drivers,
        config,
        cube=cube,
        partitioning=partitioning,
        site_drivers_table=site_drivers_table,
        status=status,
    )
    series, config = towers.series, towers.config
    if mask is not None:
        require_wetland_at_towers(towers.data.meta, drivers, mask)
    ecosystems = list(ecosystems or sorted(set(series.ecosystems)))
    folders = {eco: Path(out) / f"{name}-{eco}" for eco in ecosystems}
    tables = {"folds": Path(out) / f"{name}-folds.csv", "towers": Path(out) / f"{name}-towers.csv"}
    agreement_path = Path(out) / f"{name}-drivers.csv"
    require_towers(series, sites, ecosystems, config)
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
        cluster(scheduler) as executor,  # an unreachable scheduler is refused before training
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
            _train_ecosystem(
                towers,
                eco,
                folders[eco],
                result,
                name=name,
                inputs=inputs,
                overwrite=overwrite,
                executor=executor,
                status=status,
            )
        for key, table in cv_tables(result.models).items():
            table.to_csv(tables[key], index=False, float_format="%.4g")
    return result


def _check_inputs(
    cube: str | Path | None, out: str | Path, *, name: str, mask: str | Path | None
) -> xr.Dataset | None:
    """Refuse a model name that is not a plain file name, or a mask without a cube.

    Returns
    -------
    xarray.Dataset or None
        The driver cube, opened once for the whole run; None without one.
    """
    if not _SAFE_NAME.fullmatch(name):  # it names files in `out`: never a path elsewhere
        raise InvalidConfigError(
            f"model name {name!r} is not a plain file name; use letters, digits, '.', '_' "
            f"and '-' (it names the models in {out})"
        )
    if mask is not None and cube is None:
        raise InvalidConfigError("--mask checks the towers against a cube's grid: pass --cube too")
    return open_cube(cube, ()) if cube is not None else None


def _train_ecosystem(
    towers: Towers,
    eco: str,
    folder: Path,
    result: TrainResult,
    *,
    name: str,
    inputs: dict[str, str],
    overwrite: bool,
    executor: Executor | None,
    status: Status,
) -> None:
    """Cross-validate and train the model of one ecosystem, save it, and add it to ``result``.

    ``executor`` fits the members as tasks; None fits them here.
    """
    config = towers.config
    eco_series = towers.series.of_ecosystem(eco)
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
        executor=executor,
        status=lambda line: status(f"  {eco}: {line}"),
    )
    fitted.model.card = fitted.model.card.model_copy(
        update={"towers": towers.files(eco_series.site_ids)}
    )
    result.models[eco] = save_model(fitted.model, folder, overwrite=overwrite)
    result.metrics[eco] = fitted.model.card.cv_metrics
    result.held_out[eco] = (fitted.observed, fitted.predictions)
