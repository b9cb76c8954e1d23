"""Figures of every output: maps, cross-validation, memory curves, SHAP summaries, budgets.

Each ``*_figure`` function returns a matplotlib ``Figure`` with a title, units on every axis
and colour bar, and a legend where lines or markers need one;
[`save_png`][upscale.report.plots.save_png] writes it. Returning the figure lets notebooks
show it and tests check its labels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.colors import ListedColormap, TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from pyproj import CRS, Transformer  # noqa: E402

from upscale.grid import pixel_areas  # noqa: E402
from upscale.learn.attribution import TowerExplanation  # noqa: E402
from upscale.learn.metrics import COMPONENTS  # noqa: E402
from upscale.schema import ANNUAL_FLUX_UNITS, ECOSYSTEMS, FLUXES  # noqa: E402

DPI = 110
"""Resolution of every PNG: readable on screen and in reports."""

ECOSYSTEM_COLOURS = {"mangrove": "tab:green", "saltmarsh": "tab:orange"}
"""One colour per ecosystem, for its towers and its wetland pixels."""


def _decorate_map(
    ax: plt.Axes,
    crs,
    title: str,
    *,
    regions: gpd.GeoDataFrame | None = None,
    sites: pd.DataFrame | None = None,
) -> None:
    """Title, axis names, equal aspect, and the optional region outlines and towers."""
    if regions is not None:
        regions.to_crs(crs).boundary.plot(ax=ax, color="k", linewidth=0.8)
    if sites is not None:
        xs, ys = Transformer.from_crs(4326, crs, always_xy=True).transform(
            sites["lon"].to_numpy(), sites["lat"].to_numpy()
        )
        ax.scatter(xs, ys, marker="^", s=22, c="k", label="towers")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title)
    crs = CRS.from_user_input(crs)
    if crs.is_geographic:
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    else:
        unit = crs.axis_info[0].unit_name if crs.axis_info else "map units"
        ax.set_xlabel(f"x ({unit}, {crs.to_string()})")
        ax.set_ylabel(f"y ({unit})")
    ax.set_aspect("equal")


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write a figure as PNG (110 dpi, readable on screen and in reports) and release it."""
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def png_bytes(fig: Figure) -> bytes:
    """Encode a figure as PNG bytes (as `save_png` writes it) and release it, for web pages."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    plt.close(fig)
    return buffer.getvalue()


def annual_maps_figure(
    totals: xr.Dataset,
    *,
    regions: gpd.GeoDataFrame | None = None,
    sites: pd.DataFrame | None = None,
) -> Figure:
    """Plot the mean annual GPP, RE and carbon sink (-NEE) side by side.

    Parameters
    ----------
    totals
        Annual totals ``(year, y, x)`` in gC m-2 yr-1
        ([`annual_totals`][upscale.budgets.annual.annual_totals]).
    regions
        Optional outlines to draw, any CRS.
    sites
        Optional towers (``lat``, ``lon``, ``ecosystem``) to mark.
    """
    mean = totals[[n for n in FLUXES if n in totals]].mean("year").compute()
    panels = {name: (mean[name], FLUXES[name].long_name) for name in ("GPP", "RE") if name in mean}
    if "NEE" in mean:
        panels["-NEE"] = (-mean["NEE"], "carbon sink (-NEE)")
    years = totals["year"].values
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.6), layout="constrained", squeeze=False
    )
    for ax, (label, (field, title)) in zip(axes[0], panels.items(), strict=True):
        low, high = float(field.min()), float(field.max())
        if low < 0 < high:  # sources and sinks: a diverging scale centred on zero
            style = {"cmap": "RdBu", "norm": TwoSlopeNorm(0.0, low, high)}
        else:
            style = {"cmap": {"GPP": "YlGn", "RE": "YlOrBr"}.get(label, "Blues")}
        field.plot.imshow(ax=ax, cbar_kwargs={"label": f"{label} ({ANNUAL_FLUX_UNITS})"}, **style)
        title = f"{title}\nmean of {years[0]}-{years[-1]}"
        _decorate_map(ax, totals.rio.crs, title, regions=regions, sites=sites)
    return fig


def cv_scatter_figure(
    panels: dict[str, tuple[np.ndarray, np.ndarray, dict[str, float]]],
) -> Figure:
    """Scatter held-out predictions against tower fluxes, one panel per flux and ecosystem.

    Parameters
    ----------
    panels
        Title -> (observed, predicted, skill) with skill holding ``r2`` and ``rmse``.
    """
    n = len(panels)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.8 * rows), layout="constrained")
    for ax, (title, (obs, pred, score)) in zip(np.ravel(axes), panels.items(), strict=False):
        valid = np.isfinite(obs) & np.isfinite(pred)
        ax.scatter(obs[valid], pred[valid], s=4, alpha=0.4)
        low, high = np.nanmin(obs[valid]), np.nanmax(obs[valid])
        ax.plot([low, high], [low, high], "k--", linewidth=0.8, label="1:1")
        ax.set_title(f"{title}\nR² {score['r2']:.2f}, RMSE {score['rmse']:.2f}")
        ax.set_xlabel("tower (gC m-2 d-1)")
        ax.set_ylabel("held-out model (gC m-2 d-1)")
        ax.legend(loc="upper left", fontsize=8)
    for ax in np.ravel(axes)[n:]:
        ax.set_visible(False)
    fig.suptitle("Cross-validation by tower: monthly fluxes of towers the model never saw")
    return fig


def sweep_figure(skill: pd.DataFrame, optimum: pd.DataFrame) -> Figure:
    """Plot cross-validated NSE against memory length, one panel per ecosystem.

    Lines are fluxes (colour) and architectures (line style); the band spans the mean fold
    NSE plus and minus one standard error; a star marks the memory chosen per flux.

    Parameters
    ----------
    skill, optimum
        Tables of [`SweepResult`][upscale.learn.sweep.SweepResult] (the memory grid's rows are
        plotted).
    """
    skill = skill[skill["run"] == "grid"]
    ecosystems = sorted(skill["ecosystem"].unique())
    colours = {"GPP": "tab:green", "RE": "tab:orange", "NEE": "tab:blue"}
    # Line style and marker per architecture, cycled: a sweep may hold any registered number.
    looks = zip(cycle(("-", "--", ":", "-.")), cycle(("o", "s", "^", "D", "v")))
    styles = dict(zip(sorted(skill["architecture"].unique()), looks, strict=False))
    fig, axes = plt.subplots(
        1,
        len(ecosystems),
        figsize=(5.5 * len(ecosystems), 4.2),
        layout="constrained",
        squeeze=False,
        sharey=True,
    )
    for ax, eco in zip(axes[0], ecosystems, strict=True):
        for (arch, flux), rows in skill[skill["ecosystem"] == eco].groupby(
            ["architecture", "flux"]
        ):
            pooled = rows[rows["fold"] == "all"].sort_values("memory")
            folds = rows[rows["fold"] != "all"].groupby("memory")["nse"]
            se = (folds.std(ddof=1) / np.sqrt(folds.count())).reindex(pooled["memory"])
            mean = folds.mean().reindex(pooled["memory"])
            colour = colours.get(flux, "k")
            ax.plot(
                pooled["memory"],
                pooled["nse"],
                styles[arch][0],
                color=colour,
                marker=styles[arch][1],
                markersize=3,
                label=f"{flux} {arch}",
            )
            ax.fill_between(pooled["memory"], mean - se, mean + se, color=colour, alpha=0.12)
            pick = optimum[
                (optimum["ecosystem"] == eco)
                & (optimum["architecture"] == arch)
                & (optimum["flux"] == flux)
            ]
            for row in pick.itertuples():
                ax.plot(
                    row.chosen_memory,
                    row.chosen_nse,
                    "*",
                    color=colour,
                    markersize=13,
                    markeredgecolor="k",
                )
        chosen = optimum[optimum["ecosystem"] == eco]
        lines = [
            f"{arch}: " + ", ".join(f"{r.flux} {r.chosen_memory}" for r in rows.itertuples())
            for arch, rows in chosen.sort_values("flux").groupby("architecture")
        ]
        ax.text(
            0.02,
            0.02,
            "chosen L (months)\n" + "\n".join(lines),
            transform=ax.transAxes,
            fontsize=8,
            va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        ax.set_xscale("log", base=2)
        memories = sorted(skill["memory"].unique())
        ax.set_xticks(memories, [str(m) for m in memories])
        ax.set_xlabel("memory length L (months)")
        ax.set_title(f"{eco}: cross-validated skill vs memory")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(
        "NSE on held-out towers or months (dimensionless)\nband: mean fold NSE ± 1 SE"
    )
    axes[0][-1].legend(
        fontsize=8, loc="lower right", title="* chosen memory (1-SE rule)", title_fontsize=8
    )
    return fig


def uncertainty_figure(
    totals: xr.Dataset,
    extrapolated: xr.DataArray,
    *,
    sites: pd.DataFrame | None = None,
) -> Figure:
    """Plot the ensemble spread of annual GPP and NEE, and where the models extrapolate.

    Parameters
    ----------
    totals
        Annual totals with spreads (``GPP_std``, ``NEE_std``; gC m-2 yr-1).
    extrapolated
        Share of months outside the towers' domain ``(y, x)``.
    sites
        Optional towers (``lat``, ``lon``) to mark: spread and extrapolation grow away
        from them.
    """
    panels = {
        name: (
            totals[name].mean("year").compute(),
            f"spread of annual {name[:-4]}",
            "Purples",
            f"{name} ({ANNUAL_FLUX_UNITS})",
        )
        for name in ("GPP_std", "NEE_std")
        if name in totals
    }
    panels["extrapolated"] = (
        extrapolated.compute(),
        "months outside the towers' domain",
        "Reds",
        "share of months (0-1)",
    )
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.6), layout="constrained", squeeze=False
    )
    for ax, (field, title, cmap, label) in zip(axes[0], panels.values(), strict=True):
        style = {"vmin": 0} if label.startswith("share of months") else {}
        field.plot.imshow(ax=ax, cmap=cmap, cbar_kwargs={"label": label}, **style)
        _decorate_map(ax, totals.rio.crs, title, sites=sites)
    return fig


def _explanation_grid(explanations: Sequence[TowerExplanation], height: float):
    """Make a figure with one row per ecosystem and one panel per flux."""
    targets = explanations[0].attribution.targets
    fig, axes = plt.subplots(
        len(explanations),
        len(targets),
        figsize=(4.2 * len(targets), height * len(explanations)),
        layout="constrained",
        squeeze=False,
    )
    return fig, axes, targets


def importance_figure(explanations: Sequence[TowerExplanation]) -> Figure:
    """Bar charts of mean |SHAP| (summed over lags) per driver, one panel per flux and ecosystem.

    Parameters
    ----------
    explanations
        One [`TowerExplanation`][upscale.learn.attribution.TowerExplanation] per ecosystem.
    """
    fig, axes, targets = _explanation_grid(explanations, 3.6)
    for row, explanation in zip(axes, explanations, strict=True):
        table = explanation.attribution.importance()
        for ax, target in zip(row, targets, strict=True):
            ranked = table[table["target"] == target].iloc[::-1]
            ax.barh(ranked["feature"], ranked["mean_abs"], color="tab:purple")
            ax.set_title(f"{explanation.ecosystem} {target}")
            ax.set_xlabel("mean |SHAP| (gC m-2 d-1)")
            ax.set_ylabel("driver")
    fig.suptitle("Driver importance at the towers: mean |SHAP| summed over lags")
    return fig


def memory_figure(explanations: Sequence[TowerExplanation]) -> Figure:
    """Memory profiles: mean |SHAP| by lag and driver, one panel per flux and ecosystem.

    Each panel shows the share of the flux's total mean |SHAP| held by each lag (months back,
    0 = the month predicted) and driver; the title gives the attribution-weighted mean lag
    with the spread over ensemble members.
    """
    fig, axes, targets = _explanation_grid(explanations, 3.8)
    for row, explanation in zip(axes, explanations, strict=True):
        attribution = explanation.attribution
        summary = explanation.lag_summary().set_index("target")
        for k, (ax, target) in enumerate(zip(row, targets, strict=True)):
            by_lag = attribution.by_lag[k]
            share = by_lag / by_lag.sum()
            image = ax.imshow(share.T, aspect="auto", cmap="magma_r", origin="upper")
            ax.set_yticks(range(len(attribution.features)), attribution.features, fontsize=8)
            ax.set_ylabel("driver")
            ax.set_xticks(range(share.shape[0]))
            ax.set_xlabel("lag (months back)")
            stats = summary.loc[target]
            title = (
                f"{explanation.ecosystem} {target}: mean lag {stats['mean_lag']:.2f}\n"
                f"members {stats['members_mean_lag']:.2f} ± {stats['members_sd_lag']:.2f}"
            )
            if "null_mean_lag" in stats:
                title += f", null {stats['null_mean_lag']:.2f} ± {stats['null_sd_lag']:.2f}"
            ax.set_title(title, fontsize=9)
            fig.colorbar(image, ax=ax, label="share of mean |SHAP| (0-1)")
    fig.suptitle("Memory profiles: share of the attribution by lag and driver")
    return fig


def region_sink_figure(totals: xr.Dataset, regions: gpd.GeoDataFrame, *, margin: int = 3) -> Figure:
    """Map the mean annual carbon sink (-NEE) around the regions, with their outlines.

    Parameters
    ----------
    totals
        Annual totals ``(year, y, x)`` with ``NEE`` in gC m-2 yr-1.
    regions
        Regions with a ``name`` column, any CRS; the map spans their extent plus ``margin``
        pixels.
    """
    crs = totals.rio.crs
    minx, miny, maxx, maxy = regions.to_crs(crs).total_bounds
    step_x = abs(float(totals["x"][1] - totals["x"][0]))
    step_y = abs(float(totals["y"][1] - totals["y"][0]))
    near = totals.sel(
        x=totals["x"][
            (totals["x"] > minx - margin * step_x) & (totals["x"] < maxx + margin * step_x)
        ],
        y=totals["y"][
            (totals["y"] > miny - margin * step_y) & (totals["y"] < maxy + margin * step_y)
        ],
    )
    sink = -near["NEE"].mean("year").compute()
    years = totals["year"].values
    fig, ax = plt.subplots(figsize=(7.2, 5.6), layout="constrained")
    ax.set_facecolor("0.88")  # no wetland: grey, not a colour of the scale
    low, high = float(sink.min()), float(sink.max())
    style = (
        {"cmap": "RdBu", "norm": TwoSlopeNorm(0.0, low, high)}
        if low < 0 < high
        else {"cmap": "Blues"}
    )
    sink.plot.imshow(ax=ax, cbar_kwargs={"label": f"sink, -NEE ({ANNUAL_FLUX_UNITS})"}, **style)
    outlines = regions.to_crs(crs)
    outlines.boundary.plot(ax=ax, color="k", linewidth=1.0)
    for name, point in zip(outlines["name"], outlines.representative_point(), strict=True):
        ax.annotate(str(name), (point.x, point.y), fontsize=8, ha="center", weight="bold")
    _decorate_map(ax, crs, f"carbon sink (-NEE), mean of {years[0]}-{years[-1]}")
    return fig


def region_fluxes_figure(monthly: pd.DataFrame, *, most: int = 8) -> Figure:
    """Plot the monthly mean GPP, RE and NEE of each region, with the ensemble spread.

    Parameters
    ----------
    monthly
        Budget by month ([`budget`][upscale.budgets.regions.budget] with ``by="month"``); the rows
        of all wetland (``ecosystem == "wetland"``) are drawn.
    most
        Draw at most this many regions (the first ones) to keep the lines readable.
    """
    rows = monthly[monthly["ecosystem"] == "wetland"]
    names = list(dict.fromkeys(rows["name"]))
    shown = names[:most]
    fluxes = [f for f in FLUXES if f"{f}_mean" in rows]
    fig, axes = plt.subplots(
        len(fluxes), 1, figsize=(9, 2.4 * len(fluxes)), sharex=True, layout="constrained"
    )
    units = monthly.attrs.get("units", {}).get("mean", "gC m-2 month-1")
    for ax, flux in zip(np.atleast_1d(axes), fluxes, strict=True):
        for name in shown:
            region = rows[rows["name"] == name]
            when = pd.to_datetime(region["month"])
            (line,) = ax.plot(when, region[f"{flux}_mean"], label=str(name), linewidth=1.2)
            spread = f"{flux}_mean_std"
            if spread in region:
                low = region[f"{flux}_mean"] - region[spread]
                high = region[f"{flux}_mean"] + region[spread]
                ax.fill_between(when, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        if flux == "NEE":
            ax.axhline(0, color="0.4", linewidth=0.8)
        ax.set_ylabel(f"{flux}\n({units})")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[-1].set_xlabel("month")
    first = np.atleast_1d(axes)[0]
    first.legend(fontsize=8, ncol=min(4, len(shown)), loc="upper left")
    hidden = f" (first {most} of {len(names)})" if len(names) > most else ""
    band = " with the ensemble spread" if any(f"{f}_mean_std" in rows for f in fluxes) else ""
    fig.suptitle(f"Monthly mean fluxes of the regions' wetlands{band}{hidden}")
    return fig


def mask_figure(mask: xr.Dataset) -> Figure:
    """Map each ecosystem's cover fraction, one panel per ecosystem present.

    Parameters
    ----------
    mask
        Mask with ``<ecosystem>_fraction`` variables
        ([`wetland_mask`][upscale.budgets.masks.wetland_mask]).
    """
    panels = [
        (name, mask[f"{name}_fraction"])
        for name in ECOSYSTEMS.values()
        if f"{name}_fraction" in mask and bool((mask[f"{name}_fraction"] > 0).any())
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 4.6), layout="constrained", squeeze=False
    )
    colours = {"mangrove": "Greens", "saltmarsh": "Oranges"}
    for ax, (name, cover) in zip(axes[0], panels, strict=True):
        cover.where(cover > 0).plot.imshow(
            ax=ax,
            cmap=colours.get(name, "viridis"),
            vmin=0,
            vmax=1,
            cbar_kwargs={"label": f"{name} cover fraction (0-1)"},
        )
        ax.set_facecolor("0.92")
        km2 = float((pixel_areas(mask) * cover).sum()) / 1e6
        _decorate_map(ax, mask.rio.crs, f"{name} cover: {km2:,.1f} km²")
    return fig


def towers_figure(
    sites: pd.DataFrame,
    *,
    wetland: xr.DataArray | None = None,
    regions: gpd.GeoDataFrame | None = None,
) -> Figure:
    """Map the towers, coloured by ecosystem and labelled, over the wetland classes.

    Parameters
    ----------
    sites
        Towers indexed by ``site_id`` with ``lat``, ``lon`` (degrees WGS84) and ``ecosystem``.
    wetland
        Optional wetland classes ``(y, x)`` (0 none, 1 mangrove, 2 saltmarsh) with a CRS;
        without it the towers are drawn in longitude and latitude.
    regions
        Optional outlines to draw, any CRS.
    """
    fig, ax = plt.subplots(figsize=(7.2, 5.6), layout="constrained")
    crs = wetland.rio.crs if wetland is not None else CRS.from_epsg(4326)
    if wetland is not None:
        classes = [ECOSYSTEMS[code] for code in sorted(ECOSYSTEMS)]
        palette = ListedColormap([ECOSYSTEM_COLOURS[name] for name in classes])
        image = (
            wetland.astype(float)
            .where(wetland > 0)
            .plot.imshow(
                ax=ax,
                cmap=palette,
                vmin=0.5,
                vmax=len(classes) + 0.5,
                alpha=0.35,
                cbar_kwargs={"ticks": sorted(ECOSYSTEMS), "label": "wetland (class in the mask)"},
            )
        )
        image.colorbar.set_ticklabels(classes)
        ax.set_facecolor("0.95")
    if regions is not None:
        regions.to_crs(crs).boundary.plot(ax=ax, color="k", linewidth=0.8)
    xs, ys = Transformer.from_crs(4326, crs, always_xy=True).transform(
        sites["lon"].to_numpy(), sites["lat"].to_numpy()
    )
    for ecosystem in sorted(sites["ecosystem"].unique()):
        mine = (sites["ecosystem"] == ecosystem).to_numpy()
        ax.scatter(
            xs[mine],
            ys[mine],
            marker="^",
            s=60,
            c=ECOSYSTEM_COLOURS.get(ecosystem, "k"),
            edgecolors="k",
            label=f"{ecosystem} towers ({mine.sum()})",
        )
    for name, x, y in zip(sites.index, xs, ys, strict=True):
        ax.annotate(str(name), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.legend(loc="lower left", fontsize=8)
    shade = ", wetland pixels shaded by ecosystem" if wetland is not None else ""
    _decorate_map(ax, crs, f"eddy-covariance towers{shade}")
    return fig


def skill_components_figure(skill: pd.DataFrame) -> Figure:
    """Bar charts of cross-validated R² per flux and part of the signal, one panel per ecosystem.

    The parts are those of [`decomposed_skill`][upscale.learn.metrics.decomposed_skill]: all
    months, differences across sites, the mean seasonal cycle and the anomalies from it; a
    model can score well on all months through the season alone.

    Parameters
    ----------
    skill
        One row per ecosystem and flux with ``r2`` (all months) and ``<part>_r2`` for the
        other parts.
    """
    ecosystems = sorted(skill["ecosystem"].unique())
    parts = [part for part in COMPONENTS if part == "all" or f"{part}_r2" in skill]
    fig, axes = plt.subplots(
        1,
        len(ecosystems),
        figsize=(5.2 * len(ecosystems), 3.8),
        layout="constrained",
        squeeze=False,
        sharey=True,
    )
    width = 0.8 / len(parts)
    for ax, eco in zip(axes[0], ecosystems, strict=True):
        rows = skill[skill["ecosystem"] == eco]
        where = np.arange(len(rows))
        for k, part in enumerate(parts):
            column = "r2" if part == "all" else f"{part}_r2"
            ax.bar(where + (k - (len(parts) - 1) / 2) * width, rows[column], width, label=part)
        ax.set_xticks(where, rows["flux"])
        ax.axhline(0, color="0.4", linewidth=0.8)
        ax.set_ylim(min(0.0, float(np.nanmin(rows[["r2"]].to_numpy())) - 0.05), 1.0)
        ax.set_xlabel("flux")
        ax.set_title(f"{eco}: held-out R² by part of the signal")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("cross-validated R² (dimensionless)")
    axes[0][-1].legend(fontsize=8, loc="lower right", title="part", title_fontsize=8)
    return fig


def budget_figure(table: pd.DataFrame) -> Figure:
    """Plot each region's carbon sink (-NEE) per period, with the ensemble spread as error bars.

    Parameters
    ----------
    table
        Budget ([`budget`][upscale.budgets.regions.budget]) by year or month; the rows of
        all wetland (``ecosystem == "wetland"``) are drawn, and ``sink_total_std`` as error
        bars where the maps carry the spread.
    """
    period = "year" if "year" in table else "month"
    rows = table[table["ecosystem"] == "wetland"]
    units = table["total_units"].iloc[0] if "total_units" in table else "Gg C"
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for name, region in rows.groupby("name", sort=False):
        when = pd.to_datetime(region[period].astype(str))  # a year is its 1 January
        spread = region["sink_total_std"] if "sink_total_std" in region else None
        ax.errorbar(
            when, region["sink_total"], yerr=spread, marker="o", ms=3, capsize=2, label=name
        )
    ax.axhline(0, color="0.4", linewidth=0.8)
    ax.set_xlabel(period)
    ax.set_ylabel(f"sink, -NEE ({units})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=min(3, rows["name"].nunique()))
    band = " (bars: ensemble spread)" if "sink_total_std" in rows else ""
    ax.set_title(f"carbon sink of each region's wetlands per {period}{band}")
    return fig
