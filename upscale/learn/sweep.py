"""Memory-length experiments: architectures x memory lengths x ecosystems, scored by tower CV.

Every run of the grid is a full cross-validated ensemble
([`train_ensemble`][upscale.learn.training.train_ensemble]). All memory lengths are scored on the
same months (those the longest window can predict), so a longer memory is never judged on
fewer, later months. The memory chosen per flux is the shortest whose mean fold skill is within one
standard error of the best (the one-standard-error rule): a longer memory must earn its place
by more than fold noise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import pandas as pd

from upscale.learn.config import make_train_config
from upscale.learn.metrics import COMPONENTS, decomposed_skill
from upscale.learn.nets import NETS, available, is_tree_ensemble
from upscale.learn.samples import SiteSeries
from upscale.learn.tasks import Executor, carried
from upscale.learn.training import TrainConfig, held_out_skill, train_ensemble
from upscale.progress import Status

DEFAULT_MEMORIES = (1, 2, 3, 6, 9, 12, 18, 24)
"""Memory lengths (months) of a default sweep; 1 is the no-memory baseline."""


@dataclass(frozen=True)
class SweepResult:
    """Outcome of a sweep.

    Attributes
    ----------
    skill
        One row per ecosystem, architecture, NEE mode, memory, flux and fold (``all`` for
        the pooled held-out months): ``r2``, ``nse``, ``rmse``, ``bias``, ``n``,
        ``noise_share`` (the noise ceiling, [`skill`][upscale.learn.metrics.skill]), and for ``all``
        the across-site, seasonal and anomaly R² and the training time per ensemble member.
    towers
        The same scores per run, flux and tower (``site_id``), over its held-out months.
    study
        The study's table: one row per ecosystem, architecture, memory and flux of the memory
        grid, with R², NSE, the decomposed skill, the noise ceiling, and ``chosen`` marking
        the memory chosen for the flux.
    optimum
        One row per ecosystem, architecture and flux: the memory chosen by the
        one-standard-error rule, the memory of the best mean fold NSE, their scores and the
        no-memory baseline's.
    nee_modes
        NEE skill of each NEE mode, per ecosystem and architecture, at the base memory.
    """

    skill: pd.DataFrame
    towers: pd.DataFrame
    study: pd.DataFrame
    optimum: pd.DataFrame
    nee_modes: pd.DataFrame


@dataclass(frozen=True)
class _Job:
    ecosystem: str
    config: TrainConfig
    run: str  # "grid" for the memory grid, "nee_modes" for the NEE comparison


def _run(job: _Job, series: SiteSeries, scored: np.ndarray) -> tuple[list[dict], list[dict]]:
    """Train one cross-validated ensemble; score it pooled, fold by fold and tower by tower.

    ``scored`` ``(S, T)`` marks the months every memory of the grid is scored on.
    """
    start = time.perf_counter()
    fitted = train_ensemble(series, job.config, name="sweep", ecosystem=job.ecosystem)
    seconds_per_member = (time.perf_counter() - start) / len(fitted.model.members)
    keys = {
        "run": job.run,
        "ecosystem": job.ecosystem,
        "architecture": job.config.architecture,
        "nee_mode": job.config.nee_mode,
        "memory": job.config.memory,
    }
    observed = np.where(scored[..., None], fitted.observed, np.nan)
    predicted = fitted.predictions
    rows, towers = [], []
    for k, flux in enumerate(series.targets):
        obs, pred, unc = observed[..., k], predicted[..., k], series.uncertainty[..., k]
        pooled = decomposed_skill(obs, pred, series.times, unc)
        rows.append(
            keys
            | {"flux": flux, "fold": "all"}
            | pooled["all"]
            | {f"{part}_r2": pooled[part]["r2"] for part in COMPONENTS[1:]}
            | {"seconds_per_member": seconds_per_member}
        )
    by_fold, by_tower = held_out_skill(series, observed, predicted, fitted.folds)
    for flux in series.targets:
        rows += [keys | {"flux": flux, "fold": n} | score for n, score in by_fold[flux].items()]
        towers += [
            keys | {"flux": flux, "site_id": site} | score for site, score in by_tower[flux].items()
        ]
    return rows, towers


def choose_memory(skill_table: pd.DataFrame) -> pd.DataFrame:
    """Pick the memory per ecosystem, architecture and flux from fold NSE (1-SE rule).

    Parameters
    ----------
    skill_table
        The ``skill`` table of a sweep, direct-NEE rows.

    Returns
    -------
    pandas.DataFrame
        ``chosen_memory`` (shortest memory within one standard error of the best mean fold
        NSE), ``best_memory`` (highest mean fold NSE), the pooled NSE of both, and
        ``baseline_nse`` (pooled NSE at memory 1, NaN when 1 was not swept).
    """
    folds = skill_table[skill_table["fold"] != "all"]
    pooled = skill_table[skill_table["fold"] == "all"].set_index(
        ["ecosystem", "architecture", "flux", "memory"]
    )["nse"]
    by_memory = folds.groupby(["ecosystem", "architecture", "flux", "memory"])["nse"]
    summary = pd.DataFrame(
        {"mean": by_memory.mean(), "se": by_memory.std(ddof=1) / np.sqrt(by_memory.count())}
    ).reset_index()
    summary["se"] = summary["se"].fillna(0.0)  # a single scored fold has no spread to give
    rows = []
    for (eco, arch, flux), group in summary.groupby(["ecosystem", "architecture", "flux"]):
        group = group[np.isfinite(group["mean"])].sort_values("memory")
        if group.empty:
            continue
        best = group.loc[group["mean"].idxmax()]
        within = group[group["mean"] >= best["mean"] - best["se"]]
        chosen = int(within["memory"].min())
        key = (eco, arch, flux)
        rows.append(
            {
                "ecosystem": eco,
                "architecture": arch,
                "flux": flux,
                "chosen_memory": chosen,
                "chosen_nse": pooled[(*key, chosen)],
                "best_memory": int(best["memory"]),
                "best_nse": pooled[(*key, int(best["memory"]))],
                "baseline_nse": pooled.get((*key, 1), np.nan),
            }
        )
    return pd.DataFrame(rows)


def run_sweep(
    series: SiteSeries,
    base: TrainConfig,
    *,
    architectures: Sequence[str] | None = None,
    memories: Sequence[int] = DEFAULT_MEMORIES,
    nee_modes: Sequence[str] = ("direct", "derived", "penalty"),
    ecosystems: Sequence[str] | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    status: Status | None = None,
) -> SweepResult:
    """Cross-validate every architecture and memory length, per ecosystem.

    Parameters
    ----------
    series
        Tower series of every ecosystem (extracted once and reused by every run).
    base
        Settings shared by all runs; its ``memory`` is where NEE modes are compared.
    architectures, memories
        The grid; memory 1 (no memory) is always added as the baseline. By default every
        registered architecture ([`NETS`][upscale.learn.nets.NETS]) is swept, not only those with
        a preset: the sweep gives them all the same ``base`` settings, so an architecture
        needs no preset to be compared, and one just registered is in the grid. The boosted
        trees are in it when XGBoost is installed: the sequence models against lagged drivers
        in trees, at every memory.
    nee_modes
        NEE modes compared at the base memory (the grid itself predicts NEE directly); with
        ``direct`` alone, no comparison is run. Boosted trees have no ``penalty`` run.
    ecosystems
        Ecosystems to sweep; by default those of the towers.
    workers
        Processes training in parallel; by default the CPU count.
    executor
        Runs each run as a task instead of the ``workers`` processes: a ``distributed.Client``
        sweeps on a cluster. Either way every run has this process's registry and options, and
        the torch threads of the ``threads`` option (1 by default,
        [`set_options`][upscale.options.set_options]); see
        [`carried`][upscale.learn.tasks.carried].
    status
        Called with a line per finished run.

    Returns
    -------
    SweepResult
        Skill tables, the chosen memory per flux and the NEE-mode comparison.
    """
    if architectures is None:
        architectures = [name for name in NETS if available(name)]
        if status and len(architectures) < len(NETS):
            left_out = ", ".join(name for name in NETS if name not in architectures)
            status(f"{left_out}: not installed (pip install 'upscale[trees]'), left out")
    architectures = list(architectures)
    memories = sorted(set(memories) | {1})
    ecosystems = list(ecosystems or sorted(set(series.ecosystems)))
    grid = [
        ("grid", eco, {"architecture": arch, "memory": m, "nee_mode": "direct"})
        for eco in ecosystems
        for arch in architectures
        for m in memories
    ]
    if set(nee_modes) - {"direct"}:  # direct alone has nothing to be compared with
        grid += [
            ("nee_modes", eco, {"architecture": arch, "nee_mode": mode})
            for eco in ecosystems
            for arch in architectures
            for mode in nee_modes
            if (mode != "direct" or base.memory not in memories)
            # Trees are grown per flux: there is no loss to add a balance penalty to. (An
            # unknown name is refused below, by its config, with the sweep's error.)
            and not (mode == "penalty" and arch in NETS and is_tree_ensemble(arch))
        ]
    base_fields = base.model_dump()
    jobs = [
        _Job(eco, make_train_config(base_fields | update, source="sweep"), run)
        for run, eco, update in grid
    ]
    # Scored months: those the longest memory can predict (a full window of drivers).
    longest = max(memories + [base.memory])
    scored = np.zeros(series.fluxes.shape[:2], dtype=bool)
    scored[:, longest - 1 :] = series.trainable(longest)
    if executor is not None:
        return _tables(*_run_all(jobs, series, scored, executor, status), base)
    spawn = get_context("spawn")
    with ProcessPoolExecutor(workers or os.cpu_count() or 1, mp_context=spawn) as pool:
        try:
            runs = _run_all(jobs, series, scored, pool, status)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # report the failure now, not after the grid
            raise
    return _tables(*runs, base)


def _run_all(
    jobs: list[_Job],
    series: SiteSeries,
    scored: np.ndarray,
    executor: Executor,
    status: Status | None,
) -> tuple[list[dict], list[dict]]:
    """Submit every run with this process's registry and options; gather its rows in order."""
    run = carried(_run)
    futures = []
    for job in jobs:
        rows_of = [r for r, eco in enumerate(series.ecosystems) if eco == job.ecosystem]
        futures.append(
            executor.submit(run, job, series.of_ecosystem(job.ecosystem), scored[rows_of])
        )
    rows: list[dict] = []
    tower_rows: list[dict] = []
    for done, (job, future) in enumerate(zip(jobs, futures, strict=True), start=1):
        fold_part, tower_part = future.result()
        rows += fold_part
        tower_rows += tower_part
        if status:
            status(
                f"{done}/{len(jobs)}: {job.ecosystem} {job.config.architecture} "
                f"L={job.config.memory} NEE {job.config.nee_mode}"
            )
    return rows, tower_rows


def _tables(rows: list[dict], tower_rows: list[dict], base: TrainConfig) -> SweepResult:
    """Tabulate the runs' rows: skill, towers, the chosen memory and the NEE modes."""
    table = pd.DataFrame(rows)
    grid_rows = table[table["run"] == "grid"]
    optimum = choose_memory(grid_rows)
    nee = table[
        (table["flux"] == "NEE") & (table["fold"] == "all") & (table["memory"] == base.memory)
    ][["ecosystem", "architecture", "nee_mode", "r2", "nse", "rmse", "bias"]]
    return SweepResult(
        skill=table,
        towers=pd.DataFrame(tower_rows),
        study=study_table(grid_rows, optimum),
        optimum=optimum,
        nee_modes=nee.sort_values(["ecosystem", "architecture", "nse"], ascending=[1, 1, 0]),
    )


def study_table(grid: pd.DataFrame, optimum: pd.DataFrame) -> pd.DataFrame:
    """Tabulate the study: pooled skill per ecosystem, architecture, memory and flux.

    Parameters
    ----------
    grid
        The memory grid's rows of a sweep's ``skill`` table.
    optimum
        The memory chosen per ecosystem, architecture and flux
        ([`choose_memory`][upscale.learn.sweep.choose_memory]).

    Returns
    -------
    pandas.DataFrame
        ``ecosystem, architecture, flux, memory, r2, nse, rmse, bias, n, noise_share,
        across_sites_r2, seasonal_r2, anomalies_r2, chosen``, sorted by the first four.
    """
    keys = ["ecosystem", "architecture", "flux"]
    pooled = grid[grid["fold"] == "all"].reindex(columns=[*grid.columns, "noise_share"])
    pooled = pooled.loc[:, ~pooled.columns.duplicated()]
    columns = [*keys, "memory", "r2", "nse", "rmse", "bias", "n", "noise_share"]
    columns += [f"{part}_r2" for part in COMPONENTS[1:]]
    table = pooled[columns].merge(optimum[[*keys, "chosen_memory"]], on=keys, how="left")
    table["chosen"] = table["memory"] == table.pop("chosen_memory")
    return table.sort_values([*keys, "memory"], ignore_index=True)
