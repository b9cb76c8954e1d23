"""The README's first command, end to end, checked as a user would check its outputs."""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from upscale.budgets.annual import annual_totals
from upscale.budgets.regions import pixel_areas
from upscale.io.stores import open_cube, open_store
from upscale.learn.metrics import skill
from upscale.schema import WETLAND

pytestmark = pytest.mark.slow


def test_summary_names_every_output(demo_run):
    out, printed = demo_run
    printed = " ".join(printed.split())
    for what in ("cross-validated skill", "maps against the demo truth", "region budgets"):
        assert what in printed
    pictures = ("annual_maps.png", "uncertainty_maps.png", "cross_validation.png")
    pictures += ("region_sink.png", "region_fluxes.png")
    for name in ("maps.zarr", "budget.csv", "report.html", *pictures):
        assert (out / name).exists()
        assert str(out / name) in printed


def test_maps_carry_the_cube_grid_and_crs(demo_run):
    out, _ = demo_run
    maps, cube = open_store(out / "maps.zarr"), open_cube(out / "inputs" / "cube.zarr")
    assert maps.rio.crs == cube.rio.crs
    assert maps.rio.transform() == cube.rio.transform()
    assert json.loads(maps.attrs["models"]).keys() == {"mangrove", "saltmarsh"}


def test_cross_validated_skill(demo_run):
    out, _ = demo_run
    for ecosystem in ("mangrove", "saltmarsh"):
        card = json.loads((out / "models" / f"demo-{ecosystem}" / "card.json").read_text())
        assert card["cv_scheme"].startswith("4-fold by site")
        scores = {flux: parts["all"] for flux, parts in card["cv_metrics"].items()}
        assert scores["GPP"]["r2"] >= 0.8 and scores["GPP"]["nse"] >= 0.8
        assert scores["RE"]["r2"] >= 0.8 and scores["RE"]["nse"] >= 0.8
        assert scores["NEE"]["r2"] >= 0.5


def test_maps_recover_the_truth(demo_run):
    out, _ = demo_run
    maps, truth = open_store(out / "maps.zarr"), open_store(out / "inputs" / "truth.zarr")
    valid = maps.sel(time=slice(maps.attrs["valid_from"], None))
    wetland = (valid[WETLAND] > 0).values
    for name, threshold in (("GPP", 0.8), ("RE", 0.8), ("NEE", 0.6)):
        mapped = valid[name].values[:, wetland]
        true = truth[name].sel(time=valid["time"]).values[:, wetland]
        assert np.isfinite(mapped).all()
        assert skill(true, mapped)["r2"] >= threshold
        assert skill(true, mapped)["nse"] >= threshold


def test_cogs_validate(demo_run):
    out, _ = demo_run
    paths = sorted((out / "cogs").glob("*_annual.tif"))
    assert [p.name for p in paths] == [
        f"{v}_annual.tif" for v in ("GPP", "GPP_std", "NEE", "NEE_std", "RE", "RE_std")
    ]
    assert (out / "cogs" / "extrapolated_fraction.tif").exists()
    for path in paths:
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
        with rasterio.open(path) as src:
            assert src.count == 11  # 2011-2021; 2010 lacks its first five months
            assert src.crs.to_epsg() == 4326


def test_budget_equals_the_map_integrated_over_geodesic_areas(demo_run):
    out, _ = demo_run
    table = pd.read_csv(out / "budget.csv")
    table = table[table["ecosystem"] == "wetland"]
    maps = open_store(out / "maps.zarr")
    regions = gpd.read_file(out / "inputs" / "regions.geojson")
    totals = annual_totals(maps)
    areas = pixel_areas(maps).values * maps["wetland_fraction"].values
    areas = np.where(maps[WETLAND].values > 0, areas, 0.0)
    hx, hy = (abs(float(maps[d][1] - maps[d][0])) / 2 for d in ("x", "y"))
    cells = [
        [shapely.box(x - hx, y - hy, x + hx, y + hy) for x in maps["x"].values]
        for y in maps["y"].values
    ]
    for region in regions.itertuples():
        share = np.array(
            [[c.intersection(region.geometry).area / c.area for c in r] for r in cells]
        )
        rows = table[table["name"] == region.name].set_index("year")
        assert rows["area_km2"].iloc[0] == pytest.approx((areas * share).sum() / 1e6, rel=1e-6)
        for year in totals["year"].values:
            sink = -np.nansum(totals["NEE"].sel(year=year).values * areas * share) / 1e9
            assert rows.loc[year, "sink_total"] == pytest.approx(sink, rel=1e-4)


def test_a_second_run_needs_overwrite(demo_run):
    from upscale.cli import app

    out, _ = demo_run
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 2
    assert "pass --overwrite" in result.output


def test_sweep_finds_the_longer_memory_of_re(demo_run):
    """The demo truth gives RE a longer memory than GPP; cross-validation alone finds it."""
    import upscale

    out, _ = demo_run
    report = upscale.sweep(
        out / "inputs" / "sites",
        out / "inputs" / "cube.zarr",
        out / "sweep",
        architectures=["lstm"],
        memories=[1, 2, 6, 12],
        nee_modes=["direct"],
        status=lambda line: None,
    )
    chosen = report.result.optimum.set_index(["ecosystem", "flux"])["chosen_memory"]
    for ecosystem in ("mangrove", "saltmarsh"):
        assert chosen[(ecosystem, "RE")] >= chosen[(ecosystem, "GPP")]
        assert chosen[(ecosystem, "RE")] > 1
    assert (out / "sweep" / "skill_vs_memory.png").exists()
