"""Pictures: annual flux maps with region outlines, and cross-validation scatter plots."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from upscale.schema import ANNUAL_FLUX_UNITS, FLUXES  # noqa: E402


def annual_maps_png(
    totals: xr.Dataset, path: str | Path, *, regions: gpd.GeoDataFrame | None = None
) -> Path:
    """Plot the mean annual GPP, RE and NEE side by side, NEE on a diverging scale.

    Parameters
    ----------
    totals
        Annual totals ``(year, y, x)`` in gC m-2 yr-1 (:func:`upscale.annual.annual_totals`).
    path
        PNG to write.
    regions
        Optional outlines to draw, any CRS.
    """
    names = [n for n in FLUXES if n in totals]
    mean = totals[names].mean("year").compute()
    years = totals["year"].values
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.6), layout="constrained")
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        if name == "NEE":
            limit = float(np.nanmax(np.abs(mean[name]))) or 1.0
            style = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
        else:
            style = {"cmap": "YlGn" if name == "GPP" else "YlOrBr"}
        mean[name].plot.imshow(
            ax=ax, cbar_kwargs={"label": f"{name} ({ANNUAL_FLUX_UNITS})"}, **style
        )
        if regions is not None:
            regions.to_crs(totals.rio.crs).boundary.plot(ax=ax, color="k", linewidth=0.8)
        ax.set_title(f"{FLUXES[name].long_name}\nmean of {years[0]}-{years[-1]}")
        ax.set_xlabel("x" if not totals.rio.crs.is_geographic else "longitude")
        ax.set_ylabel("y" if not totals.rio.crs.is_geographic else "latitude")
        ax.set_aspect("equal")
    if "NEE" in names:
        fig.suptitle("NEE > 0 is a carbon source; the sink is -NEE", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def cv_scatter_png(
    panels: dict[str, tuple[np.ndarray, np.ndarray, dict[str, float]]], path: str | Path
) -> Path:
    """Scatter held-out predictions against tower fluxes, one panel per flux and ecosystem.

    Parameters
    ----------
    panels
        Title -> (observed, predicted, skill) with skill holding ``r2`` and ``rmse``.
    path
        PNG to write.
    """
    n = len(panels)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.8 * rows), layout="constrained")
    for ax, (title, (obs, pred, score)) in zip(np.ravel(axes), panels.items(), strict=False):
        valid = np.isfinite(obs) & np.isfinite(pred)
        ax.scatter(obs[valid], pred[valid], s=4, alpha=0.4)
        low, high = np.nanmin(obs[valid]), np.nanmax(obs[valid])
        ax.plot([low, high], [low, high], "k--", linewidth=0.8)
        ax.set_title(f"{title}\nR² {score['r2']:.2f}, RMSE {score['rmse']:.2f}")
        ax.set_xlabel("tower (gC m-2 d-1)")
        ax.set_ylabel("held-out model (gC m-2 d-1)")
    for ax in np.ravel(axes)[n:]:
        ax.set_visible(False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
