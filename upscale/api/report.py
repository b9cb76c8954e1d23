"""Report: one self-contained HTML page of a run folder, whatever the verbs wrote into it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from upscale.api._common import print_status
from upscale.api.explain import EXPLAIN_FILES
from upscale.api.sweep import SWEEP_FILES
from upscale.api.train import cv_tables
from upscale.budgets.regions import read_regions
from upscale.errors import (
    InvalidInputError,
    InvalidMapsError,
    InvalidModelError,
    InvalidRegionsError,
    InvalidTowerDataError,
)
from upscale.io.durable import refuse_overwrite, utc_now, write_text
from upscale.io.stores import open_maps
from upscale.io.vectors import VECTOR_SUFFIXES, read_vector, vector_columns
from upscale.learn.artifact import CARD, ModelCard, read_card
from upscale.progress import Status
from upscale.report.page import Section
from upscale.report.sections import RunContents, report_page
from upscale.towers.sites import SITES_TABLE, read_sites_table

REPORT_FILE = "report.html"
"""Name of the page written into the output folder."""

CV_PICTURE = "cross_validation.png"
"""The demo's scatter of held-out predictions against the towers, shown when a run has it."""

_DEPTH = 4  # folders below the run folder searched: a run nests its verbs' outputs shallowly
_BUDGET_COLUMNS = {"name", "ecosystem", "area_km2"}  # what tells a budget table from others


@dataclass(frozen=True)
class ReportResult:
    """What [`report`][upscale.api.report.report] wrote, and which sections have content.

    Attributes
    ----------
    path
        The HTML page.
    sections
        Every section in page order; ``present`` is False where the run lacked the part
        (the section then holds a note).
    """

    path: Path
    sections: list[Section]


def report(
    run: str | Path,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    status: Status = print_status,
) -> ReportResult:
    """Write one self-contained HTML page of a run: towers, skill, memory, maps, budgets.

    Searches ``run`` (and its folders, a few levels down) for what the verbs write: model
    folders (``train``), a sweep (``sweep``), an explanation (``explain``), a maps store
    (``predict``), a budget table (``query``), a regions file and the towers'
    ``sites.csv``; then draws every section from them (see
    [`report_page`][upscale.report.sections.report_page]). Figures are embedded and the
    interactive map's Leaflet is inlined: the page fetches nothing to open. A part the run
    lacks leaves its section with a note naming the command that makes it; without the
    ``report`` extra (folium) the interactive map is such a note.

    Parameters
    ----------
    run
        The run folder (the demo's, or any folder the verbs wrote into).
    out
        Folder to write ``report.html`` into; the run folder by default.
    overwrite
        Replace an existing report.
    status
        Receives progress lines.
    """
    run = Path(run)
    if not run.is_dir():
        raise InvalidInputError(f"{run}: no such folder; give the folder a run wrote into")
    path = Path(out if out is not None else run) / REPORT_FILE
    refuse_overwrite([path], overwrite=overwrite)
    status(f"reading the run in {run}")
    contents = read_run(run)
    status("drawing the report")
    page, sections = report_page(contents, created=utc_now(), version=version("upscale"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return ReportResult(path=write_text(path, page), sections=sections)


def read_run(folder: Path) -> RunContents:
    """Find and read what the verbs wrote into a run folder; a part absent stays None.

    A part found but unreadable (a model folder with a broken card, a malformed
    ``sites.csv``) is left out with a note rather than failing the whole report.
    """
    run = RunContents(folder=folder)
    files = sorted(_walk(folder, _DEPTH), key=lambda p: (len(p.parts), str(p)))
    _read_models(run, [p.parent for p in files if p.name == CARD])
    stores = [p for p in files if p.suffix == ".zarr"]
    for store in stores:
        try:
            run.maps = open_maps(store)
        except InvalidMapsError:  # a cube, a mask, the demo's truth: not maps
            continue
        run.found["maps"] = store
        break
    if not run.cards and run.maps is not None and "models" in run.maps.attrs:
        for eco, card in pd.read_json(run.maps.attrs["models"], typ="series").items():
            run.cards[run.found["maps"] / eco] = ModelCard.model_validate(card)
    _read_tables(run, files)
    _read_vectors(run, [p for p in files if p.suffix.lower() in VECTOR_SUFFIXES])
    _read_sites(run, [p for p in files if p.name == SITES_TABLE])
    return run


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    """Files and Zarr stores under ``folder``, ``depth`` levels down; never inside a store."""
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        level = len(here.relative_to(folder).parts)
        stores = [d for d in dirs if d.endswith(".zarr")]
        yield from (here / d for d in stores)
        # Hidden folders are partial outputs and locks; stores are read whole, not walked.
        dirs[:] = [] if level >= depth else [d for d in dirs if d not in stores and d[0] != "."]
        yield from (here / name for name in names if name[0] != ".")


def _read_models(run: RunContents, folders: list[Path]) -> None:
    """Read the cards and the held-out skill per fold and tower; one model per ecosystem."""
    chosen: dict[str, Path] = {}
    for folder in folders:
        try:
            card = read_card(folder)
        except InvalidModelError as err:
            run.notes.append(f"a model left out: {err}")
            continue
        if card.ecosystem in chosen:
            run.notes.append(
                f"{folder}: another {card.ecosystem} model; the report shows "
                f"{chosen[card.ecosystem]} (report a folder with one model per ecosystem)"
            )
            continue
        chosen[card.ecosystem] = folder
        run.cards[folder] = card
        run.found[f"model ({card.ecosystem})"] = folder
    if chosen:
        tables = cv_tables(chosen)
        run.cv_folds, run.cv_towers = tables["folds"], tables["towers"]


def _read_tables(run: RunContents, files: list[Path]) -> None:
    """Read the sweep's and the explanation's tables, the demo's scatter, a budget table."""
    for path in files:
        if path.name == SWEEP_FILES["optimum"] and (path.parent / SWEEP_FILES["skill"]).exists():
            if run.sweep_skill is None:
                run.sweep_skill = pd.read_csv(path.parent / SWEEP_FILES["skill"])
                run.sweep_optimum = pd.read_csv(path)
                run.found["sweep"] = path.parent
        elif path.name == EXPLAIN_FILES["importance"] and run.importance is None:
            explained = path.parent
            run.importance = pd.read_csv(path)
            if (explained / EXPLAIN_FILES["memory"]).exists():
                run.memory = pd.read_csv(explained / EXPLAIN_FILES["memory"])
            pictures = {
                "driver importance at the towers": EXPLAIN_FILES["importance_png"],
                "memory profiles at the towers": EXPLAIN_FILES["profile_png"],
            }
            run.explain_pictures = {
                title: (explained / name).read_bytes()
                for title, name in pictures.items()
                if (explained / name).exists()
            }
            run.found["explanation"] = explained
        elif path.name == CV_PICTURE and run.cv_picture is None:
            run.cv_picture = path.read_bytes()
        elif path.suffix in (".csv", ".json") and run.budget is None:
            header = _columns(path)
            if _BUDGET_COLUMNS <= header:
                run.budget = pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path)
                run.found["budget"] = path


def _columns(path: Path) -> set[str]:
    """Column names of a CSV or JSON-records table; empty when it is not one."""
    try:
        if path.suffix == ".csv":
            return set(pd.read_csv(path, nrows=0).columns)
        return set(pd.read_json(path, orient="records").columns)
    except ValueError:  # pandas' parse errors: not a table
        return set()


def _read_vectors(run: RunContents, paths: list[Path]) -> None:
    """Take the first named regions, and a budget written as GeoJSON if no table was found.

    A budget written by ``query --out budget.geojson`` holds one feature per region and
    period: its outlines are the regions when the run has no regions file.
    """
    budgets = []
    for path in paths:
        columns = set(vector_columns(path))
        if _BUDGET_COLUMNS <= columns:
            budgets.append(path)
        elif "name" in columns and run.regions is None:
            try:
                run.regions = read_regions(path)
            except InvalidRegionsError as err:
                run.notes.append(f"regions left out: {err}")
                continue
            run.found["regions"] = path
    if budgets and (run.budget is None or run.regions is None):
        features = read_vector(budgets[0], InvalidRegionsError)
        if run.budget is None:
            run.budget = pd.DataFrame(features.drop(columns="geometry"))
            run.found["budget"] = budgets[0]
        if run.regions is None:
            run.regions = features[["name", "geometry"]].drop_duplicates("name")
            run.found["regions"] = budgets[0]


def _read_sites(run: RunContents, paths: list[Path]) -> None:
    """Read the towers' table: one in the run, else the one the models were trained from."""
    trained_from = [Path(card.data["sites"]) for card in run.cards.values() if "sites" in card.data]
    for path in [*paths, *(p / SITES_TABLE for p in trained_from)]:
        if not path.exists():
            continue
        try:
            run.sites = read_sites_table(path)
        except InvalidTowerDataError as err:
            run.notes.append(f"towers left out: {err}")
            continue
        run.found["towers"] = path
        return
