import numpy as np
import pandas as pd
import pytest

from upscale.errors import InvalidConfigError
from upscale.learn.samples import extract_site_series
from upscale.learn.sweep import choose_memory, run_sweep
from upscale.learn.training import TrainConfig
from upscale.schema import DEFAULT_FEATURES
from upscale.towers.sites import SiteData


def fold_rows(memory, nse_by_fold, pooled):
    keys = {"ecosystem": "mangrove", "architecture": "lstm", "nee_mode": "direct", "flux": "RE"}
    rows = [keys | {"memory": memory, "fold": "all", "nse": pooled}]
    rows += [keys | {"memory": memory, "fold": str(i), "nse": v} for i, v in enumerate(nse_by_fold)]
    return rows


def test_one_standard_error_rule():
    table = pd.DataFrame(
        fold_rows(1, [0.50, 0.60, 0.55, 0.45], 0.52)
        + fold_rows(3, [0.79, 0.87, 0.81, 0.85], 0.82)  # mean 0.83
        + fold_rows(6, [0.80, 0.90, 0.83, 0.87], 0.85)  # best mean 0.85, SE ~0.022
        + fold_rows(12, [0.70, 0.80, 0.75, 0.79], 0.76)
    )
    optimum = choose_memory(table).iloc[0]
    assert optimum["best_memory"] == 6
    assert optimum["chosen_memory"] == 3  # 0.83 >= 0.85 - 0.022: the shorter memory suffices
    assert optimum["chosen_nse"] == 0.82 and optimum["baseline_nse"] == 0.52


def test_a_longer_memory_must_beat_fold_noise():
    table = pd.DataFrame(
        fold_rows(1, [0.50, 0.52, 0.51, 0.49], 0.5) + fold_rows(6, [0.80, 0.81, 0.80, 0.79], 0.8)
    )
    assert choose_memory(table).iloc[0]["chosen_memory"] == 6


@pytest.fixture(scope="module")
def small_sweep(small_region):
    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES)
    base = TrainConfig(
        epochs=5, patience=3, folds=3, memory=2, hyperparameters={"hidden": 8, "layers": 1}
    )
    return run_sweep(
        series,
        base,
        architectures=["lstm"],
        memories=[2, 4],
        nee_modes=["direct", "derived"],
        workers=1,
    )


def test_sweep_tables(small_sweep):
    skill = small_sweep.skill
    pooled = skill[(skill["fold"] == "all") & (skill["nee_mode"] == "direct")]
    assert sorted(pooled["memory"].unique()) == [1, 2, 4]  # the no-memory baseline is added
    assert set(pooled["flux"]) == {"GPP", "RE", "NEE"}
    assert set(skill["fold"]) == {"all", "1", "2", "3"}
    # Every memory is scored on the same months.
    assert pooled.groupby(["ecosystem", "flux"])["n"].nunique().eq(1).all()
    optimum = small_sweep.optimum
    assert len(optimum) == 2 * 3  # ecosystems x fluxes
    assert optimum["chosen_memory"].isin([1, 2, 4]).all()
    nee = small_sweep.nee_modes
    assert set(nee["nee_mode"]) == {"direct", "derived"}
    assert np.isfinite(nee["nse"]).all()


def test_unknown_architecture_in_a_sweep(small_region):
    with pytest.raises(InvalidConfigError, match="sweep: architecture"):
        run_sweep(None, TrainConfig(), architectures=["gru"], memories=[1], ecosystems=["m"])


def test_choose_memory_survives_unscored_folds():
    table = pd.DataFrame(
        fold_rows(1, [0.5, np.nan, np.nan, np.nan], 0.5)
        + fold_rows(6, [np.nan, np.nan, np.nan, np.nan], np.nan)
    )
    optimum = choose_memory(table).iloc[0]
    assert optimum["chosen_memory"] == 1


def test_the_nee_comparison_never_enters_the_memory_choice(small_region):
    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES)
    base = TrainConfig(
        epochs=3, patience=2, folds=3, memory=3, hyperparameters={"hidden": 8, "layers": 1}
    )
    result = run_sweep(
        series,
        base,
        architectures=["lstm"],
        memories=[2],
        nee_modes=["direct", "derived"],
        ecosystems=["saltmarsh"],
        workers=1,
    )
    assert set(result.skill.loc[result.skill["run"] == "grid", "memory"]) == {1, 2}
    assert set(result.skill.loc[result.skill["run"] == "nee_modes", "memory"]) == {3}
    assert result.optimum["chosen_memory"].isin([1, 2]).all()
    assert set(result.nee_modes["nee_mode"]) == {"direct", "derived"}


def test_direct_nee_alone_runs_no_nee_comparison(small_region):
    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES)
    base = TrainConfig(epochs=2, patience=2, folds=2, memory=3, hyperparameters={"hidden": 4})
    result = run_sweep(
        series,
        base,
        architectures=["lstm"],
        memories=[2],
        nee_modes=["direct"],
        workers=1,
        ecosystems=["saltmarsh"],
    )
    assert set(result.skill["run"]) == {"grid"} and result.nee_modes.empty
