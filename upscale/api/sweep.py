"""Sweep: cross-validate architectures x memory lengths and choose the memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from upscale.api._common import cluster, print_status
from upscale.api._towers import require_towers, tower_series
from upscale.errors import InvalidConfigError
from upscale.io.durable import refuse_overwrite
from upscale.learn.balance import NEE_MODES
from upscale.learn.sweep import DEFAULT_MEMORIES, SweepResult, run_sweep
from upscale.learn.training import TrainConfig
from upscale.progress import Status
from upscale.report.plots import save_png, sweep_figure
from upscale.towers.sites import Partitioning

SWEEP_FILES = {
    "study": "study.csv",
    "skill": "skill.csv",
    "towers": "towers.csv",
    "optimum": "optimum.csv",
    "nee_modes": "nee_modes.csv",
    "figure": "skill_vs_memory.png",
}
"""What [`sweep`][upscale.api.sweep.sweep] writes into its folder: key -> file name."""


@dataclass(frozen=True)
class SweepReport:
    """What [`sweep`][upscale.api.sweep.sweep] wrote, and the tables."""

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
    scheduler: str | None = None,
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
    Each run is trained by one of ``workers`` local processes or, given the ``scheduler``
    address of a dask.distributed cluster (``tcp://host:8786``), as a task on its workers,
    with the same tables. See [`run_sweep`][upscale.learn.sweep.run_sweep].
    """
    if workers is not None and scheduler is not None:
        raise InvalidConfigError(
            "workers are local processes; with a scheduler the cluster's workers train the "
            "runs: give one or the other"
        )
    out = Path(out)
    outputs = {key: out / name for key, name in SWEEP_FILES.items()}
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
        require_towers(series, sites, ecosystems, config.model_copy(update={"memory": memory}))
    with cluster(scheduler) as executor:
        result = run_sweep(
            series,
            config,
            architectures=architectures,
            memories=memories,
            nee_modes=nee_modes,
            workers=workers,
            executor=executor,
            status=status,
        )
    result.study.to_csv(outputs["study"], index=False, float_format="%.4f")
    result.skill.to_csv(outputs["skill"], index=False, float_format="%.4f")
    result.towers.to_csv(outputs["towers"], index=False, float_format="%.4f")
    result.optimum.to_csv(outputs["optimum"], index=False, float_format="%.4f")
    result.nee_modes.to_csv(outputs["nee_modes"], index=False, float_format="%.4f")
    save_png(sweep_figure(result.skill, result.optimum), outputs["figure"])
    return SweepReport(outputs=outputs | {"samples": out / "samples.npz"}, result=result)
