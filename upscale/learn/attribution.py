"""Temporal attribution: expected-gradients SHAP over the features and lags of a window.

Expected gradients (Erion et al. 2021) is the estimator behind ``shap.GradientExplainer``:
for a window x and background windows b,

    phi(x) = E_{b, a ~ U(0, 1)} [ (x - b) * grad f(b + a (x - b)) ],

whose terms add up to f(x) - E_b f(b) in expectation. shap evaluates it one window at a
time in Python (about 40 windows/s on 2 CPU cores with 200 samples); here every window's
samples go through the model in one batched forward and backward pass, which is what makes
attribution rasters affordable. Tests check it against ``shap.GradientExplainer`` on the
same windows and background.

Boosted-trees models are explained exactly instead, with tree SHAP
([`upscale.learn.tree_shap`][upscale.learn.tree_shap]), against the same background:
[`attribute`][upscale.learn.attribution.attribute] picks the method of a model, so that every
family gives the same tables, figures and rasters.

Lags count back from the window's last month: lag 0 is the month predicted, lag L - 1 the
oldest month the model sees.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from upscale.learn.artifact import Model
from upscale.learn.nets import is_tree_ensemble
from upscale.learn.samples import SiteSeries, window_views
from upscale.learn.training import TrainConfig, memoryless_series, train_ensemble
from upscale.learn.tree_shap import tree_shap

Function = Callable[[torch.Tensor], torch.Tensor]
"""Differentiable map from windows ``(N, L, F)`` to outputs ``(N, K)``."""


class _CudnnOff:
    """Keep cuDNN disabled while any thread attributes, and restore it after the last one.

    ``torch.backends.cudnn.flags`` sets a switch of the whole process and restores the old
    value on exit: threads of a tile engine leaving it out of order would turn cuDNN back
    on under one another (whose RNN backward then fails), or leave it off for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._before = True

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._before = torch.backends.cudnn.enabled
                torch.backends.cudnn.enabled = False
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.backends.cudnn.enabled = self._before


cudnn_off = _CudnnOff()
"""Context manager disabling cuDNN for the gradients of eval-mode RNNs, safe across threads."""


def expected_gradients(
    function: Function,
    windows: torch.Tensor,
    background: torch.Tensor,
    *,
    samples: int = 64,
    seed: int = 0,
    batch_size: int = 8192,
) -> torch.Tensor:
    """Expected-gradients attributions of every output to every input of every window.

    Parameters
    ----------
    function
        Differentiable model, windows ``(N, L, F)`` to outputs ``(N, K)``.
    windows
        ``(N, L, F)`` windows to explain.
    background
        ``(M, L, F)`` reference windows (e.g. drawn from the training windows).
    samples
        Background draws and interpolation points per window; the Monte Carlo error
        shrinks as ``1 / sqrt(samples)``.
    seed
        Seed of the draws: the same seed gives the same attributions.
    batch_size
        Interpolation points per forward and backward pass.

    Returns
    -------
    torch.Tensor
        ``(K, N, L, F)`` attributions, in the units of the outputs.

    Notes
    -----
    On a GPU, cuDNN's RNN backward refuses eval mode (which attribution needs), so cuDNN is
    disabled for the gradients; the nets run in eval mode either way.
    """
    generator = torch.Generator().manual_seed(seed)
    n_windows = len(windows)
    per_pass = max(1, batch_size // samples)
    parts = []
    with cudnn_off(), torch.enable_grad():
        for start in range(0, n_windows, per_pass):
            x = windows[start : start + per_pass]
            picks = torch.randint(len(background), (len(x), samples), generator=generator)
            alpha = torch.rand(len(x), samples, 1, 1, generator=generator).to(x.device)
            base = background[picks.to(background.device)]  # (n, S, L, F)
            step = x[:, None] - base
            points = (base + alpha * step).reshape(-1, *x.shape[1:]).requires_grad_(True)
            outputs = function(points)  # (n * S, K)
            attributions = []
            for k in range(outputs.shape[1]):
                (grad,) = torch.autograd.grad(
                    outputs[:, k].sum(), points, retain_graph=k < outputs.shape[1] - 1
                )
                attributions.append((grad.reshape(step.shape) * step).mean(dim=1))
            parts.append(torch.stack(attributions).detach())
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class Attribution:
    """Attributions of windows, with the names and reference values to read them.

    Attributes
    ----------
    values
        ``(K, N, L, F)`` attributions; the window axis runs from the oldest month
        (lag L - 1) to the month predicted (lag 0).
    targets, features
        Names of the K outputs and F features.
    outputs
        ``(K, N)`` model outputs f(x) of the windows.
    expected
        ``(K,)`` mean output over the background, E f(b).
    """

    values: np.ndarray
    targets: list[str]
    features: list[str]
    outputs: np.ndarray
    expected: np.ndarray

    def select(self, features: Sequence[str]) -> Attribution:
        """Return the attributions of some features only (shares are then among themselves)."""
        picks = [self.features.index(f) for f in features]
        return replace(self, values=self.values[..., picks], features=list(features))

    @property
    def by_lag(self) -> np.ndarray:
        """Mean absolute attribution ``(K, L, F)`` with lag 0 (the month predicted) first."""
        return np.abs(self.values).mean(axis=1)[:, ::-1]

    def importance(self) -> pd.DataFrame:
        """Mean |attribution| summed over lags, per target and feature, ranked per target."""
        total = self.by_lag.sum(axis=1)  # (K, F)
        table = pd.DataFrame(total, index=self.targets, columns=self.features)
        long = table.rename_axis(index="target", columns="feature").stack().rename("mean_abs")
        long = long.reset_index().sort_values(["target", "mean_abs"], ascending=[True, False])
        long["rank"] = long.groupby("target").cumcount() + 1
        return long.reset_index(drop=True)

    def memory_profile(self) -> np.ndarray:
        """Share of each feature's mean |attribution| held by each lag, ``(K, L, F)``."""
        by_lag = self.by_lag
        return by_lag / np.maximum(by_lag.sum(axis=1, keepdims=True), 1e-30)

    def lag_statistics(self) -> pd.DataFrame:
        """Attribution-weighted mean lag and the 50 % and 90 % cumulative lags per target.

        The lag weights are each lag's share of the mean |attribution| summed over
        features. The cumulative lag is the smallest lag whose cumulative share reaches
        the fraction: the months back that hold half (or 90 %) of the attribution.
        """
        weights = self.by_lag.sum(axis=2)
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
        lags = np.arange(weights.shape[1])
        cumulative = np.cumsum(weights, axis=1)
        return pd.DataFrame(
            {
                "target": self.targets,
                "mean_lag": weights @ lags,
                "lag50": (cumulative < 0.5).sum(axis=1),
                "lag90": (cumulative < 0.9).sum(axis=1),
            }
        )

    def completeness_gap(self) -> np.ndarray:
        """``(K, N)`` sum of attributions minus (f(x) - E f(b)): zero for exact attributions."""
        return self.values.sum(axis=(2, 3)) - (self.outputs - self.expected[:, None])


def explain_windows(
    function: Function,
    windows: torch.Tensor,
    background: torch.Tensor,
    *,
    targets: Sequence[str],
    features: Sequence[str],
    samples: int = 64,
    seed: int = 0,
) -> Attribution:
    """Attribute a model's outputs on windows to their features and lags.

    Parameters
    ----------
    function
        Differentiable model, e.g.
        [`ensemble_fluxes`][upscale.learn.artifact.Model.ensemble_fluxes].
    windows, background
        ``(N, L, F)`` windows to explain and ``(M, L, F)`` reference windows, raw drivers.
    targets, features
        Names of the outputs and features.
    samples, seed
        See [`expected_gradients`][upscale.learn.attribution.expected_gradients].
    """
    values = expected_gradients(function, windows, background, samples=samples, seed=seed)
    return _attribution(function, values, windows, background, targets, features)


def _attribution(
    function: Function,
    values: torch.Tensor,
    windows: torch.Tensor,
    background: torch.Tensor,
    targets: Sequence[str],
    features: Sequence[str],
) -> Attribution:
    """Bundle attributions with the outputs and the background's mean output."""
    with torch.no_grad():
        outputs = function(windows).T
        expected = function(background).mean(dim=0)
    return Attribution(
        values=values.cpu().numpy(),
        targets=list(targets),
        features=list(features),
        outputs=outputs.cpu().numpy(),
        expected=expected.cpu().numpy(),
    )


def attribute(
    model: Model,
    windows: torch.Tensor,
    background: torch.Tensor,
    *,
    member: int | None = None,
    samples: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """SHAP values of a model's fluxes, by the method of its family.

    Parameters
    ----------
    model
        A trained ensemble.
    windows, background
        ``(N, L, F)`` windows to explain and ``(M, L, F)`` reference windows, raw drivers.
    member
        Explain this member's own fluxes; by default the ensemble mean
        ([`ensemble_fluxes`][upscale.learn.artifact.Model.ensemble_fluxes]).
    samples, seed
        Of the expected-gradients estimate of a net
        ([`expected_gradients`][upscale.learn.attribution.expected_gradients]); boosted trees
        are explained exactly ([`tree_shap`][upscale.learn.tree_shap.tree_shap]) and use
        neither.

    Returns
    -------
    torch.Tensor
        ``(K, N, L, F)`` attributions in gC m-2 d-1; for each window they add up to its
        fluxes minus their mean over the background (exactly for trees, in expectation for
        nets).
    """
    if is_tree_ensemble(model.card.architecture):
        return tree_shap(model, windows, background, member=member)
    function = model.ensemble_fluxes if member is None else model.members[member].fluxes
    return expected_gradients(function, windows, background, samples=samples, seed=seed)


def explain_model(
    model: Model,
    windows: torch.Tensor,
    background: torch.Tensor,
    *,
    member: int | None = None,
    samples: int = 64,
    seed: int = 0,
) -> Attribution:
    """Attribute a model's fluxes on windows to their features and lags, named.

    As [`attribute`][upscale.learn.attribution.attribute], with the outputs, the background's
    mean output and the card's names.
    """
    values = attribute(model, windows, background, member=member, samples=samples, seed=seed)
    function = model.ensemble_fluxes if member is None else model.members[member].fluxes
    return _attribution(
        function, values, windows, background, model.card.targets, model.card.features
    )


@dataclass(frozen=True)
class TowerExplanation:
    """What a model learned at its towers.

    Attributes
    ----------
    ecosystem
        The model's ecosystem.
    attribution
        Attributions of the ensemble mean on a sample of tower windows.
    member_lags
        Lag statistics of each member explained alone (``member`` column), for the spread
        of the memory statistics over the ensemble.
    sampling
        How many windows were explained, against how many background windows (and how many
        windows are in both), with how many samples each, and the seed.
    null_lags
        Lag statistics of each member of the null model (trained on a memoryless target,
        [`memoryless_series`][upscale.learn.training.memoryless_series]) on the same windows;
        None when the null was not computed.
    """

    ecosystem: str
    attribution: Attribution
    member_lags: pd.DataFrame
    sampling: dict[str, int]
    null_lags: pd.DataFrame | None = None

    def lag_summary(self) -> pd.DataFrame:
        """Ensemble lag statistics, their spread over members, and the null when computed.

        ``z_vs_null`` is the members' mean lag minus the null members' mean lag, over the
        root sum of squares of both standard deviations: how far above the null the memory
        is, in units of the ensemble noise.
        """
        ensemble = self.attribution.lag_statistics()
        table = ensemble.merge(
            _spread(self.member_lags, "members"), left_on="target", right_index=True
        )
        if self.null_lags is not None:
            table = table.merge(_spread(self.null_lags, "null"), left_on="target", right_index=True)
            noise = np.hypot(table["members_sd_lag"], table["null_sd_lag"])
            table["z_vs_null"] = (table["members_mean_lag"] - table["null_mean_lag"]) / noise
        return table.assign(ecosystem=self.ecosystem)


def _spread(lags: pd.DataFrame, prefix: str) -> pd.DataFrame:
    spread = lags.groupby("target", sort=False)["mean_lag"].agg(["mean", "std"])
    spread.columns = [f"{prefix}_mean_lag", f"{prefix}_sd_lag"]
    return spread


def _member_lags(model: Model, explained, reference, **options) -> pd.DataFrame:
    """Lag statistics of each member of a model explained alone on the same windows."""
    return pd.concat(
        [
            explain_model(model, explained, reference, member=number, **options)
            .lag_statistics()
            .assign(member=number)
            for number in range(len(model.members))
        ],
        ignore_index=True,
    )


def explain_towers(
    model: Model,
    series: SiteSeries,
    *,
    windows: int = 300,
    background: int = 200,
    samples: int = 64,
    seed: int = 0,
    null: bool = False,
) -> TowerExplanation:
    """Explain a model on windows of its towers, against a background of tower windows.

    Parameters
    ----------
    model
        A trained ensemble.
    series
        Its towers' drivers and fluxes
        ([`extract_site_series`][upscale.learn.samples.extract_site_series]).
    windows, background
        Tower windows (ending on measured months) drawn, with the seed, to explain and to
        serve as the background: disjoint sets while the towers have windows enough.
    samples, seed
        See [`expected_gradients`][upscale.learn.attribution.expected_gradients].
    null
        Also train and explain the null model of the same settings on a memoryless target
        ([`memoryless_series`][upscale.learn.training.memoryless_series]), to state the memory
        statistics against it.
    """
    views = window_views(torch.from_numpy(series.drivers), model.memory)
    pool = views[torch.from_numpy(series.trainable(model.memory))]
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    explained, rest = order[:windows], order[windows:]
    # Disjoint draws where the towers have windows enough; otherwise the background reuses
    # explained windows, and the sampling record says how many.
    backdrop = rest[:background] if len(rest) else order[-background:]
    overlap = len(set(backdrop.tolist()) & set(explained.tolist()))
    explained, reference = pool[explained], pool[backdrop]
    attribution = explain_model(model, explained, reference, samples=samples, seed=seed)
    member_lags = _member_lags(model, explained, reference, samples=samples, seed=seed)
    null_lags = None
    if null:
        config = TrainConfig(**model.card.train_config)
        memoryless = memoryless_series(series, config, ecosystem=model.card.ecosystem)
        null_model = train_ensemble(
            memoryless, config, name="null", ecosystem=model.card.ecosystem
        ).model
        null_lags = _member_lags(null_model, explained, reference, samples=samples, seed=seed)
    sampling = {
        "windows": len(explained),
        "background": len(reference),
        "samples": samples,
        "seed": seed,
        "tower_windows": len(pool),
        "overlap": overlap,
    }
    return TowerExplanation(model.card.ecosystem, attribution, member_lags, sampling, null_lags)
