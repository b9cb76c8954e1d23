import numpy as np
import pytest
import shap
import torch
from torch import nn

from upscale.learn.attribution import expected_gradients, explain_model, explain_windows

from .conftest import TINY_HYPERPARAMETERS, untrained_model

L, F = 6, 4


class OneFeatureOneLag(nn.Module):
    """Reads feature 3 at lag 2 only, linearly."""

    def forward(self, x):
        return 2.0 * x[:, -1 - 2, 3:4]


class RecentMean(nn.Module):
    """The mean of feature 0 over the last 3 months."""

    def forward(self, x):
        return x[:, -3:, 0].mean(dim=1, keepdim=True)


class SquaredNow(nn.Module):
    """A non-linear function of feature 1 in the month predicted."""

    def forward(self, x):
        return x[:, -1, 1:2] ** 2


def explain(function, n=32, samples=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randn(n, L, F, generator=generator)
    background = torch.randn(64, L, F, generator=generator)
    return explain_windows(
        function, windows, background, targets=["y"], features=list("abcd"), samples=samples
    )


def test_single_feature_single_lag():
    attribution = explain(OneFeatureOneLag())
    by_lag = attribution.by_lag[0]  # (L, F), lag 0 first
    assert by_lag[2, 3] > 0
    by_lag[2, 3] = 0
    assert np.abs(by_lag).max() == 0
    stats = attribution.lag_statistics().iloc[0]
    assert (stats["mean_lag"], stats["lag50"], stats["lag90"]) == (2.0, 2, 2)
    top = attribution.importance().iloc[0]
    assert (top["feature"], top["rank"]) == ("d", 1)


def test_mean_over_recent_months_spreads_evenly():
    attribution = explain(RecentMean(), n=256, samples=512)
    profile = attribution.memory_profile()[0]  # (L, F)
    np.testing.assert_allclose(profile[:3, 0], 1 / 3, atol=0.03)
    assert np.abs(attribution.by_lag[0][3:, :]).max() == 0
    assert np.abs(attribution.by_lag[0][:, 1:]).max() == 0
    stats = attribution.lag_statistics().iloc[0]
    assert stats["mean_lag"] == pytest.approx(1.0, abs=0.05)
    assert (stats["lag50"], stats["lag90"]) == (1, 2)


def test_non_linear_function_keeps_attribution_in_place():
    attribution = explain(SquaredNow())
    by_lag = attribution.by_lag[0]
    assert by_lag[0, 1] > 0
    by_lag[0, 1] = 0
    assert np.abs(by_lag).max() == 0


@pytest.mark.parametrize("architecture", sorted(TINY_HYPERPARAMETERS))
def test_completeness_on_sequence_models(architecture):
    """Attributions add up to f(x) - E f(b): within 5 % of the typical |f(x) - E f(b)|.

    For nets the gap is Monte Carlo error, shrinking as 1 / sqrt(samples): about 5 % at 1024
    samples and 2 % at 4096 on these models; tree SHAP is exact (test_trees.py).
    """
    model = untrained_model("mangrove", memory=L, architecture=architecture)
    generator = torch.Generator().manual_seed(1)
    windows = torch.randn(16, L, 10, generator=generator) * 2 + 5
    background = torch.randn(64, L, 10, generator=generator) * 2 + 5
    attribution = explain_model(model, windows, background, samples=4096)
    scale = np.abs(attribution.outputs - attribution.expected[:, None]).mean(axis=1)
    gap = np.abs(attribution.completeness_gap()).mean(axis=1)
    assert (gap < 0.05 * scale).all()


def test_agrees_with_shap_gradient_explainer():
    """The batched estimator and shap.GradientExplainer give the same attributions."""
    model = untrained_model("mangrove", memory=4)

    class Ensemble(nn.Module):
        def __init__(self):
            super().__init__()
            self.nets = nn.ModuleList(member.net for member in model.members)

        def forward(self, x):
            return model.ensemble_fluxes(x)

    generator = torch.Generator().manual_seed(2)
    background = torch.randn(40, 4, 10, generator=generator) * 2 + 5
    windows = torch.randn(2, 4, 10, generator=generator) * 2 + 5
    theirs = shap.GradientExplainer(Ensemble().eval(), background).shap_values(
        windows, nsamples=1500, rseed=0
    )
    theirs = np.moveaxis(np.asarray(theirs), -1, 0)  # (K, N, L, F)
    ours = expected_gradients(model.ensemble_fluxes, windows, background, samples=1500).numpy()
    for k in range(3):
        error = np.linalg.norm(ours[k] - theirs[k]) / np.linalg.norm(theirs[k])
        assert error < 0.1, f"target {k}: relative difference {error:.3f}"


def test_same_seed_same_attributions():
    a = explain(RecentMean(), seed=3)
    b = explain(RecentMean(), seed=3)
    np.testing.assert_array_equal(a.values, b.values)


def test_explain_towers_tables(small_region):
    import pandas as pd

    from upscale.learn.attribution import explain_towers
    from upscale.learn.samples import extract_site_series
    from upscale.schema import DEFAULT_FEATURES
    from upscale.towers.sites import SiteData

    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES).of_ecosystem(
        "mangrove"
    )
    model = untrained_model("mangrove", memory=4, members=3)
    explanation = explain_towers(model, series, windows=20, background=10, samples=8)
    assert explanation.attribution.values.shape == (3, 20, 4, 10)
    assert explanation.sampling == {
        "windows": 20,
        "background": 10,
        "samples": 8,
        "seed": 0,
        "tower_windows": series.n_windows(4),
        "overlap": 0,
    }
    summary = explanation.lag_summary()
    assert list(summary["target"]) == ["GPP", "RE", "NEE"]
    assert set(explanation.member_lags["member"]) == {0, 1, 2}
    assert (summary["members_sd_lag"] >= 0).all()
    profile = explanation.attribution.memory_profile()
    np.testing.assert_allclose(profile.sum(axis=1), 1.0, rtol=1e-6)


def test_memory_against_the_null(small_region):
    """A memory statistic comes with a null model trained on a memoryless target."""
    import pandas as pd

    from upscale.learn.attribution import explain_towers
    from upscale.learn.samples import extract_site_series
    from upscale.learn.training import TrainConfig, train_ensemble
    from upscale.schema import DEFAULT_FEATURES
    from upscale.towers.sites import SiteData

    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES).of_ecosystem(
        "saltmarsh"
    )
    config = TrainConfig(
        memory=3, epochs=8, patience=4, folds=3, hyperparameters={"hidden": 8, "layers": 1}
    )
    model = train_ensemble(series, config, name="s", ecosystem="saltmarsh").model
    explanation = explain_towers(model, series, windows=30, background=20, samples=8, null=True)
    summary = explanation.lag_summary()
    assert {"null_mean_lag", "null_sd_lag", "z_vs_null"} <= set(summary.columns)
    assert set(explanation.null_lags["member"]) == {0, 1, 2}
    expected = (summary["members_mean_lag"] - summary["null_mean_lag"]) / np.hypot(
        summary["members_sd_lag"], summary["null_sd_lag"]
    )
    np.testing.assert_allclose(summary["z_vs_null"], expected)


def test_attributions_in_threads_leave_cudnn_as_they_found_it():
    """Threads ending out of order keep cuDNN off until the last ends, then restore it."""
    import threading

    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    seen_by_b = []

    def total(points):
        return points.sum(dim=(1, 2))[:, None]

    def a(points):
        a_inside.set()
        b_inside.wait(10)
        return total(points)

    def b(points):
        b_inside.set()
        a_done.wait(10)  # a has left its attribution: b's must still run without cuDNN
        seen_by_b.append(torch.backends.cudnn.enabled)
        return total(points)

    windows, background = torch.ones(1, 3, 2), torch.zeros(4, 3, 2)

    def run_a():
        expected_gradients(a, windows, background, samples=4)
        a_done.set()

    assert torch.backends.cudnn.enabled
    first = threading.Thread(target=run_a)
    first.start()
    a_inside.wait(10)
    second = threading.Thread(target=lambda: expected_gradients(b, windows, background, samples=4))
    second.start()
    first.join(10)
    second.join(10)
    assert seen_by_b == [False]
    assert torch.backends.cudnn.enabled
