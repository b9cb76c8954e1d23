"""Skill scores of predicted against measured fluxes, ignoring missing months."""

from __future__ import annotations

import numpy as np


def skill(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R², RMSE, bias and count over the months where both values are finite.

    Parameters
    ----------
    observed, predicted
        Arrays of the same shape, in the same units.

    Returns
    -------
    dict
        ``r2`` (coefficient of determination, 1 - SSE/SST, the Nash-Sutcliffe efficiency),
        ``rmse``, ``bias`` (mean of predicted - observed) and ``n``.
    """
    observed = np.asarray(observed, dtype="float64").ravel()
    predicted = np.asarray(predicted, dtype="float64").ravel()
    valid = np.isfinite(observed) & np.isfinite(predicted)
    obs, pred = observed[valid], predicted[valid]
    if len(obs) < 2:
        return {"r2": float("nan"), "rmse": float("nan"), "bias": float("nan"), "n": len(obs)}
    error = pred - obs
    total = np.sum((obs - obs.mean()) ** 2)
    return {
        "r2": float(1 - np.sum(error**2) / total) if total > 0 else float("nan"),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "bias": float(error.mean()),
        "n": int(len(obs)),
    }
