"""The report of a run: what it holds, section by section, as one HTML page.

[`report_page`][upscale.report.sections.report_page] takes what a run folder holds, already
read ([`RunContents`][upscale.report.sections.RunContents]), and writes each section from
it: inputs and provenance, towers, cross-validated skill, the sweep's memory curves, SHAP
importance and memory, annual maps, uncertainty and domain of applicability, region budgets
and an interactive map. A part the run lacks leaves its section with a note naming the
command that makes it, so the same page serves the demo and any folder the verbs wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import xarray as xr

from upscale.budgets.annual import annual_totals
from upscale.errors import InvalidMapsError
from upscale.learn.artifact import ModelCard
from upscale.learn.metrics import skill_rows
from upscale.report.page import (
    Section,
    details_html,
    facts_html,
    image_html,
    note_html,
    paragraph_html,
    render_page,
    table_html,
)
from upscale.report.plots import (
    annual_maps_figure,
    budget_figure,
    png_bytes,
    skill_components_figure,
    sweep_figure,
    towers_figure,
    uncertainty_figure,
)
from upscale.report.webmap import missing_extra, sink_webmap
from upscale.schema import EXTRAPOLATED, FLUXES, WETLAND


@dataclass
class RunContents:
    """What a run folder holds, read: each part None (or empty) when the run lacks it.

    Attributes
    ----------
    folder
        The run folder.
    found
        Part -> the file or folder it was read from, for the provenance table.
    cards
        Model folder -> its card.
    cv_folds, cv_towers
        Held-out skill per fold and per tower of the models.
    cv_picture
        The demo's scatter of held-out predictions (PNG), when there is one.
    sites
        Towers indexed by ``site_id`` with ``lat``, ``lon``, ``ecosystem``.
    maps
        Flux maps written by ``predict``.
    regions
        Named regions (``name`` column), any CRS.
    budget
        Region budget written by ``query`` (by year or by month).
    sweep_skill, sweep_optimum
        The sweep's runs fold by fold, and the memory chosen.
    importance, memory
        The explanation's driver importance and memory statistics at the towers.
    explain_pictures
        Title -> PNG of the explanation's figures.
    notes
        Problems met while reading (a part that was found but could not be read).
    """

    folder: Path
    found: dict[str, Path] = field(default_factory=dict)
    cards: dict[Path, ModelCard] = field(default_factory=dict)
    cv_folds: pd.DataFrame | None = None
    cv_towers: pd.DataFrame | None = None
    cv_picture: bytes | None = None
    sites: pd.DataFrame | None = None
    maps: xr.Dataset | None = None
    regions: gpd.GeoDataFrame | None = None
    budget: pd.DataFrame | None = None
    sweep_skill: pd.DataFrame | None = None
    sweep_optimum: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None
    memory: pd.DataFrame | None = None
    explain_pictures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _missing(key: str, title: str, text: str) -> Section:
    return Section(key, title, note_html(text), note=text)


def _provenance(run: RunContents, _: xr.Dataset | None) -> Section:
    parts = pd.DataFrame(
        [{"part": part, "path": _relative(path, run.folder)} for part, path in run.found.items()]
    )
    body = paragraph_html(f"Run folder: {run.folder}") + (
        table_html(parts, caption="parts of the run found")
        if not parts.empty
        else note_html("nothing the verbs write was found in this folder")
    )
    if run.cards:
        models = pd.DataFrame(
            [
                {
                    "model": card.name,
                    "ecosystem": card.ecosystem,
                    "architecture": card.architecture,
                    "memory (months)": card.memory,
                    "members": len(card.members),
                    "towers": len(card.sites),
                    "training period": " to ".join(card.training_period),
                    "cross-validation": card.cv_scheme,
                    "features": ", ".join(card.features),
                }
                for card in run.cards.values()
            ]
        )
        body += table_html(models, caption="models")
        card = next(iter(run.cards.values()))
        body += facts_html(
            {f"{card.name}: {key}": value for key, value in card.data.items()}
            | {"software of the first model": _versions(card.versions), "trained": card.created}
        )
    if run.maps is not None:
        attrs = run.maps.attrs
        facts = {"maps made": attrs.get("created", "?"), "command": attrs.get("command", "?")}
        facts |= {f"maps' {k}": v for k, v in json.loads(attrs.get("inputs", "{}")).items()}
        facts |= {"device": attrs.get("device", "?"), "valid from": attrs.get("valid_from", "?")}
        facts["software of the maps"] = _versions(json.loads(attrs.get("software", "{}")))
        body += facts_html(facts)
    body += "".join(note_html(note) for note in run.notes)
    return Section("inputs", "Inputs and provenance", body)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {number}" for name, number in versions.items())


def _relative(path: Path, folder: Path) -> str:
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def _towers(run: RunContents, _: xr.Dataset | None) -> Section:
    title = "Towers"
    if run.sites is None:
        return _missing(
            "towers",
            title,
            "no sites.csv found in this folder or at the models' site folder: copy the towers' "
            "sites.csv (site_id, lat, lon, ecosystem) into the run folder",
        )
    table = run.sites.reset_index()
    if run.cv_towers is not None and not run.cv_towers.empty:
        held_out = run.cv_towers.pivot_table(index="site_id", columns="flux", values="r2")
        held_out = held_out.rename(columns=lambda flux: f"held-out R² {flux}")
        table = table.merge(held_out.reset_index(), on="site_id", how="left")
    wetland = run.maps[WETLAND] if run.maps is not None else None
    figure = towers_figure(run.sites, wetland=wetland, regions=run.regions)
    body = image_html(png_bytes(figure), "the towers and the wetland they stand in")
    return Section("towers", title, body + table_html(table, digits=3))


def _skill(run: RunContents, _: xr.Dataset | None) -> Section:
    title = "Cross-validated skill"
    metrics = {card.ecosystem: card.cv_metrics for card in run.cards.values() if card.cv_metrics}
    if not metrics:
        return _missing(
            "skill",
            title,
            "no trained model with cross-validated scores (card.json): `upscale train` writes them",
        )
    table = skill_rows(metrics).astype({"n": int})
    body = paragraph_html(
        "Scores of each model on towers (or months) it never saw: over all months, and "
        "decomposed into the differences across sites, the mean seasonal cycle and the "
        "anomalies from it (rmse and bias in gC m-2 d-1)."
    )
    body += table_html(table)
    caption = "held-out R² by flux and part of the signal"
    body += image_html(png_bytes(skill_components_figure(table)), caption)
    if run.cv_picture is not None:
        caption = "held-out predictions against the towers"
        body += image_html(run.cv_picture, caption)
    if run.cv_folds is not None and not run.cv_folds.empty:
        body += details_html("skill per fold", table_html(run.cv_folds))
    return Section("skill", title, body)


def _sweep(run: RunContents, _: xr.Dataset | None) -> Section:
    title = "Memory: skill against memory length"
    if run.sweep_skill is None or run.sweep_optimum is None:
        return _missing(
            "sweep",
            title,
            "no sweep in this folder: `upscale sweep --out RUN_DIR/sweep` cross-validates "
            "architectures and memory lengths (study.csv, skill.csv, optimum.csv)",
        )
    figure = sweep_figure(run.sweep_skill, run.sweep_optimum)
    body = image_html(png_bytes(figure), "cross-validated NSE against memory length")
    return Section("sweep", title, body + table_html(run.sweep_optimum, caption="memory chosen"))


def _explanation(run: RunContents, _: xr.Dataset | None) -> Section:
    title = "Drivers and memory (SHAP)"
    if run.importance is None and not run.explain_pictures:
        return _missing(
            "shap",
            title,
            "no explanation in this folder: `upscale explain --out RUN_DIR/explain` writes the "
            "drivers' importance and the memory profiles (importance.csv, memory.csv)",
        )
    body = "".join(image_html(png, caption) for caption, png in run.explain_pictures.items())
    if run.importance is not None and "rank" in run.importance:
        top = run.importance[run.importance["rank"] <= 3]
        body += table_html(top, digits=4, caption="three most important drivers per flux")
    if run.memory is not None:
        body += table_html(run.memory, caption="attribution-weighted lags (months back)")
    return Section("shap", title, body)


_NO_MAPS = "no maps in this folder: `upscale predict --out RUN_DIR/maps.zarr` writes them"


def _annual_maps(run: RunContents, totals: xr.Dataset | None) -> Section:
    title = "Annual maps"
    if totals is None:
        return _missing("maps", title, _NO_MAPS)
    figure = annual_maps_figure(totals, regions=run.regions, sites=run.sites)
    return Section("maps", title, image_html(png_bytes(figure), "mean annual GPP, RE and sink"))


def _uncertainty(run: RunContents, totals: xr.Dataset | None) -> Section:
    title = "Uncertainty and domain of applicability"
    if totals is None or run.maps is None:
        return _missing("uncertainty", title, _NO_MAPS)
    extrapolated = run.maps[EXTRAPOLATED.name]
    wetland = run.maps[WETLAND] > 0
    share = float(extrapolated.where(wetland).mean())
    body = paragraph_html(
        "Spread: the standard deviation of the ensemble members' annual totals. Domain of "
        "applicability: a month is outside the towers' domain when its drivers' window is "
        "farther from every tower window than tower windows are from each other's; there "
        f"the models extrapolate. Over the wetland, {share:.1%} of the valid months are "
        "outside it."
    )
    figure = uncertainty_figure(totals, extrapolated, sites=run.sites)
    body += image_html(png_bytes(figure), "ensemble spread and extrapolation")
    return Section("uncertainty", title, body)


def _budgets(run: RunContents, _: xr.Dataset | None) -> Section:
    title = "Region budgets"
    if run.budget is None:
        return _missing(
            "budgets",
            title,
            "no budget table in this folder: `upscale query MAPS REGIONS --out "
            "RUN_DIR/budget.csv` writes one",
        )
    period = "year" if "year" in run.budget else "month"
    headline = ["area_km2", *(f"{flux}_mean" for flux in FLUXES), "NEE_mean_std"]
    headline += ["sink_total", "sink_total_std"]
    mean = (
        run.budget.groupby(["name", "ecosystem"], sort=False)[
            [c for c in headline if c in run.budget]
        ]
        .mean()
        .reset_index()
    )
    units = run.budget["mean_units"].iloc[0] if "mean_units" in run.budget else ""
    totals = run.budget["total_units"].iloc[0] if "total_units" in run.budget else ""
    span = f"{run.budget[period].min()} to {run.budget[period].max()}"
    caption = (
        f"mean {period} of {span}: means in {units}, totals in {totals}, area in km²; "
        "_std: ensemble spread"
    )
    body = table_html(mean, digits=1, caption=caption)
    body += image_html(png_bytes(budget_figure(run.budget)), "sink of each region")
    return Section("budgets", title, body)


def _webmap(run: RunContents, totals: xr.Dataset | None) -> Section:
    title = "Interactive map of the sink"
    if totals is None or "NEE" not in totals:
        return _missing("webmap", title, _NO_MAPS)
    lacking = missing_extra()
    if lacking is not None:
        return _missing("webmap", title, lacking)
    years = totals["year"].values
    sink = -totals["NEE"].mean("year")
    name = f"mean annual sink (-NEE) {years[0]}-{years[-1]}"
    body = paragraph_html(
        "Pan and zoom; hover a region or a tower for its name. No basemap: the page "
        "fetches nothing."
    )
    return Section(
        "webmap", title, body + sink_webmap(sink, regions=run.regions, sites=run.sites, title=name)
    )


_SECTIONS: tuple[Callable[[RunContents, xr.Dataset | None], Section], ...] = (
    _provenance,
    _towers,
    _skill,
    _sweep,
    _explanation,
    _annual_maps,
    _uncertainty,
    _budgets,
    _webmap,
)


def report_page(run: RunContents, *, created: str, version: str) -> tuple[str, list[Section]]:
    """Write the report of a run as one self-contained HTML page.

    Parameters
    ----------
    run
        What the run folder holds.
    created
        When the report is made (ISO 8601), for its footer.
    version
        upscale's version, for its footer.

    Returns
    -------
    tuple
        The page, and its sections (each says whether its part was present).
    """
    totals = None
    if run.maps is not None:
        try:  # computed once: three sections draw from it
            totals = annual_totals(run.maps).compute()
        except InvalidMapsError as err:  # maps shorter than a year: no annual section
            run.notes.append(str(err))
    sections = [build(run, totals) for build in _SECTIONS]
    page = render_page(
        f"upscale report: {run.folder.name}",
        "Towers, skill, memory, drivers, maps, uncertainty and budgets of one run.",
        sections,
        f"Made by upscale {version} on {created}. Self-contained: open it offline.",
    )
    return page, sections
