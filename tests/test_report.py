"""`upscale report`: one self-contained page of whatever a run folder holds.

A small run (two models with known cross-validated scores, maps, a budget, regions and the
towers) is written with the real verbs; the page is checked for its numbers, for fetching
nothing, and for notes where a part is missing. The browser test is test_report_browser.py.
"""

import base64
import html
import re
import shutil
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from upscale.api import predict, query, report
from upscale.api.report import REPORT_FILE, read_run
from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.errors import OutputExistsError
from upscale.learn.artifact import save_model
from upscale.report.webmap import leaflet_assets

from .conftest import untrained_model

PNG = b"\x89PNG\r\n\x1a\n"
SCORES = {"r2": 0.812, "nse": 0.801, "rmse": 0.5, "bias": 0.01, "n": 120.0}


def _scored(ecosystem: str, seed: int, r2: float):
    """An untrained model whose card carries known cross-validated scores."""
    model = untrained_model(ecosystem, seed=seed)
    parts = {"all": SCORES | {"r2": r2}, "seasonal": SCORES | {"r2": 0.95}}
    metrics = {flux: parts for flux in ("GPP", "RE", "NEE")}
    model.card = model.card.model_copy(update={"cv_metrics": metrics, "cv_scheme": "2-fold"})
    return model


@pytest.fixture(scope="module")
def run(small_region, tmp_path_factory):
    """A run folder as the verbs write it: inputs, models, maps, budget."""
    folder = tmp_path_factory.mktemp("run")
    inputs = write_demo_region(small_region, folder / "inputs")
    models = [
        save_model(_scored("mangrove", 0, 0.812), folder / "models" / "m-mangrove"),
        save_model(_scored("saltmarsh", 1, 0.734), folder / "models" / "m-saltmarsh"),
    ]
    maps = predict(inputs.cube, inputs.mask, models, folder / "maps.zarr")
    query(maps, inputs.regions, out=folder / "budget.csv")
    return folder


@pytest.fixture(scope="module")
def page(run):
    result = report(run, status=lambda _: None)
    return result, result.path.read_text()


def test_every_section_of_a_run_with_maps_models_and_budget(page):
    result, text = page
    present = {s.key: s.present for s in result.sections}
    assert present == {
        "inputs": True,
        "towers": True,
        "skill": True,
        "sweep": False,
        "shap": False,
        "maps": True,
        "uncertainty": True,
        "budgets": True,
        "webmap": True,
    }
    for section in result.sections:
        assert f'<section id="{section.key}">' in text
    notes = {s.key: s.note for s in result.sections if not s.present}
    assert "upscale sweep" in notes["sweep"] and "upscale explain" in notes["shap"]


def test_the_skill_table_shows_the_cards_scores(page):
    _, text = page
    skill = text.split('<section id="skill">')[1].split("</section>")[0]
    assert skill.count("<td>0.812</td>") == 3  # mangrove GPP, RE, NEE
    assert skill.count("<td>0.734</td>") == 3
    assert skill.count("<td>0.950</td>") == 6  # the seasonal part of each


def test_budget_means_match_the_table(run, page):
    _, text = page
    budget = pd.read_csv(run / "budget.csv")
    wetland = budget[budget["ecosystem"] == "wetland"]
    for name, rows in wetland.groupby("name"):
        expected = f"{rows['sink_total'].mean():.1f}"
        section = text.split('<section id="budgets">')[1]
        assert html.escape(name) in section
        assert f"<td>{expected}</td>" in section


def test_the_page_fetches_nothing_and_every_image_is_a_png(page):
    _, text = page
    inner = html.unescape(text)  # the interactive map's page sits escaped in its srcdoc
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", inner)
    assert not re.search(r"""src=["'](?!data:)""", inner)
    figures = re.findall(r'<img src="data:image/png;base64,([^"]+)"', inner)
    assert len(figures) == 5  # towers, skill, annual maps, uncertainty, budget
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", inner)
    assert len(embedded) == 5 + 1 + 3  # and the sink overlay, Leaflet's three images
    assert all(base64.b64decode(data)[:8] == PNG for data in embedded)
    assert "url(images/" not in inner  # Leaflet's own images inlined too


def test_leaflet_is_inlined_whole():
    script, style = leaflet_assets()
    assert "L.version" in script or 'version="1.' in script
    assert style.count("url(data:image/png;base64,") == 3  # layers, layers-2x, marker
    assert "</script" not in script  # it can sit inside a <script> element


def test_the_run_is_read_whole_towers_models_and_all(run, small_region):
    contents = read_run(run)
    assert contents.found["towers"] == run / "inputs" / "sites" / "sites.csv"
    assert sorted(contents.sites.index) == sorted(small_region.sites.index)
    assert {c.ecosystem for c in contents.cards.values()} == {"mangrove", "saltmarsh"}


def test_a_sweep_alone_gets_its_section_and_notes_for_the_rest(tmp_path):
    rows = [
        {"run": "grid", "ecosystem": "mangrove", "architecture": "lstm", "flux": flux}
        | {"memory": memory, "fold": fold, "nse": 0.5 + 0.05 * memory + (0.01 if fold else 0)}
        for flux in ("GPP", "RE")
        for memory in (1, 3, 6)
        for fold in ("all", "1", "2")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "skill.csv", index=False)
    optimum = pd.DataFrame(
        {
            "ecosystem": ["mangrove"] * 2,
            "architecture": ["lstm"] * 2,
            "flux": ["GPP", "RE"],
            "chosen_memory": [3, 6],
            "chosen_nse": [0.65, 0.8],
        }
    )
    optimum.to_csv(tmp_path / "optimum.csv", index=False)
    result = report(tmp_path, status=lambda _: None)
    present = [s.key for s in result.sections if s.present]
    assert present == ["inputs", "sweep"]
    text = result.path.read_text()
    assert "<td>6</td>" in text.split('<section id="sweep">')[1]  # RE's chosen memory
    assert "upscale predict" in text and "upscale train" in text


def test_without_folium_the_map_is_a_note_naming_the_extra(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "folium", None)  # as if it were not installed
    result = report(run, tmp_path, status=lambda _: None)
    by_key = {s.key: s for s in result.sections}
    assert not by_key["webmap"].present
    assert "upscale[report]" in by_key["webmap"].note
    assert by_key["maps"].present and by_key["budgets"].present
    assert "<iframe" not in result.path.read_text()


def test_refuses_to_replace_a_report(run, tmp_path):
    (tmp_path / REPORT_FILE).write_text("earlier")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        report(run, tmp_path, status=lambda _: None)
    assert (tmp_path / REPORT_FILE).read_text() == "earlier"


def test_cli_lists_the_sections_and_where_the_page_is(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run / "models", copy / "models")
    result = CliRunner().invoke(app, ["report", str(copy), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "✓ Cross-validated skill" in printed
    assert "– Annual maps: no maps in this folder" in printed
    assert str(tmp_path / "out" / REPORT_FILE) in printed
