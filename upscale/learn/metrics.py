"""Skill scores of predicted against measured fluxes, and their decomposition.

Scores follow the flux-upscaling literature (Jung et al. 2011, Tramontana et al. 2016,
Besnard et al. 2019): besides all tower months together, a model is scored on the mean
level of each tower (across sites), on each tower's mean seasonal cycle, and on the
anomalies from that cycle, since a model can get the seasons right and the years wrong.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

SCORES = ("r2", "nse", "rmse", "bias", "n")
"""Keys of every score dictionary; ``noise_share`` joins them where towers give uncertainty."""

COMPONENTS = ("all", "across_sites", "seasonal", "anomalies")
"""The parts of the signal that [`decomposed_skill`][upscale.learn.metrics.decomposed_skill]
scores."""


def skill(
    observed: np.ndarray, predicted: np.ndarray, uncertainty: np.ndarray | None = None
) -> dict[str, float]:
    """Score predictions over the entries where both values are finite.

    Parameters
    ----------
    observed, predicted
        Arrays of the same shape, in the same units.
    uncertainty
        The same shape: the measurement uncertainty (one standard deviation) of
        ``observed``, NaN where unknown; None when there is none.

    Returns
    -------
    dict
        ``r2``: squared Pearson correlation; ``nse``: Nash-Sutcliffe efficiency
        (1 - SSE/SST, the modelling efficiency); ``rmse``; ``bias``: mean of predicted -
        observed; ``n``: number of pairs. Scores are NaN below two pairs or without
        variance, and ``r2`` below three pairs (two points always lie on a line). Where at
        least two pairs have an uncertainty, also ``noise_share``: the noise ceiling, the
        share of the squared error that measurement noise alone explains (sum of
        uncertainty^2 over the sum of squared errors of those pairs; near 1, the model is as
        good as the towers can tell).
    """
    observed = np.asarray(observed, dtype="float64").ravel()
    predicted = np.asarray(predicted, dtype="float64").ravel()
    valid = np.isfinite(observed) & np.isfinite(predicted)
    obs, pred = observed[valid], predicted[valid]
    nan = float("nan")
    if len(obs) < 2:
        return {"r2": nan, "nse": nan, "rmse": nan, "bias": nan, "n": len(obs)}
    error = pred - obs
    noise = {}
    if uncertainty is not None:
        sigma = np.asarray(uncertainty, dtype="float64").ravel()[valid]
        known = np.isfinite(sigma)
        squared = np.sum(error[known] ** 2)
        if known.sum() >= 2 and squared > 0:
            noise["noise_share"] = float(np.sum(sigma[known] ** 2) / squared)
    total = np.sum((obs - obs.mean()) ** 2)
    spread = np.sqrt(total * np.sum((pred - pred.mean()) ** 2))
    return {
        "r2": float((np.sum((obs - obs.mean()) * (pred - pred.mean())) / spread) ** 2)
        if spread > 0 and len(obs) > 2
        else nan,
        "nse": float(1 - np.sum(error**2) / total) if total > 0 else nan,
        "rmse": float(np.sqrt(np.mean(error**2))),
        "bias": float(error.mean()),
        "n": int(len(obs)),
    } | noise


def decomposed_skill(
    observed: np.ndarray,
    predicted: np.ndarray,
    times: pd.DatetimeIndex,
    uncertainty: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Score all tower months, and the across-site, seasonal and anomaly parts.

    Parameters
    ----------
    observed, predicted
        ``(S, T)`` monthly fluxes of S towers; NaN where not measured or not predicted.
    times
        The T months.
    uncertainty
        ``(S, T)`` measurement uncertainty of ``observed``, for the noise ceiling of all
        tower months (the components' is NaN: their noise is not independent monthly noise).

    Returns
    -------
    dict
        Component -> [`skill`][upscale.learn.metrics.skill] scores, for

        * ``all``: every tower month;
        * ``across_sites``: each tower's mean over the months both values exist;
        * ``seasonal``: each tower's mean seasonal cycle (12 calendar-month means) minus its
          mean;
        * ``anomalies``: each month's departure from its tower's mean seasonal cycle.

    Notes
    -----
    Only months where both values are finite enter any component, so observed and
    predicted are averaged over the same months.
    """
    both = np.isfinite(observed) & np.isfinite(predicted)
    obs = np.where(both, observed, np.nan).astype("float64")
    pred = np.where(both, predicted, np.nan).astype("float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a calendar month a tower never had
        obs_mean, pred_mean = np.nanmean(obs, axis=1), np.nanmean(pred, axis=1)
        month = np.asarray(times.month) - 1
        obs_cycle = np.stack([np.nanmean(obs[:, month == m], axis=1) for m in range(12)], 1)
        pred_cycle = np.stack([np.nanmean(pred[:, month == m], axis=1) for m in range(12)], 1)
    return {
        "all": skill(obs, pred, uncertainty),
        "across_sites": skill(obs_mean, pred_mean),
        "seasonal": skill(obs_cycle - obs_mean[:, None], pred_cycle - pred_mean[:, None]),
        "anomalies": skill(obs - obs_cycle[:, month], pred - pred_cycle[:, month]),
    }


def skill_rows(metrics: dict[str, dict[str, dict[str, dict[str, float]]]]) -> pd.DataFrame:
    """Tabulate cross-validated scores: one row per ecosystem and flux.

    Parameters
    ----------
    metrics
        Ecosystem -> flux -> part of the signal (``COMPONENTS``) -> scores, as in model
        cards' ``cv_metrics``.

    Returns
    -------
    pandas.DataFrame
        ``ecosystem``, ``flux``, the scores over all months, and ``<part>_r2`` for each other
        part of the signal.
    """
    return pd.DataFrame(
        [
            {"ecosystem": eco, "flux": flux, **parts["all"]}
            | {f"{part}_r2": parts[part]["r2"] for part in COMPONENTS[1:] if part in parts}
            for eco, by_flux in metrics.items()
            for flux, parts in by_flux.items()
        ]
    )
