"""The STAC source offline: a static catalogue of the demo's drivers in the real collections'
encodings (tests/stac_catalogue.py), fetched into a cube that must give back the demo's
drivers, its QC gaps filled and flagged, resumably; then trained on and mapped."""

import os
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.stac_catalogue import write_catalogue
from upscale.api import ingest, predict, train
from upscale.cli import app
from upscale.demo_region import DemoSpec, make_demo_region, write_demo_region
from upscale.drivers.blocks import FetchPlan
from upscale.drivers.gaps import FILLED, OPTICAL, fill_gaps, gap_fraction_name
from upscale.drivers.stac import (
    canonical_values,
    fetch_stac_cube,
    is_planetary_computer,
    url_signer,
)
from upscale.drivers.stac_recipes import (
    PLANETARY_COMPUTER,
    PLANETARY_COMPUTER_RECIPES,
    STAC_DRIVERS,
    StacRecipe,
)
from upscale.errors import FetchFailedError
from upscale.grid import TargetGrid
from upscale.io.stores import open_store
from upscale.learn.training import TrainConfig
from upscale.schema import DRIVERS

SPEC = DemoSpec(ny=18, nx=23, years=2, n_mangrove_sites=3, n_saltmarsh_sites=2, seed=7)
GRID = TargetGrid("EPSG:4326", SPEC.bounds, 0.05)  # the demo's own 18 x 23 pixels
PERIOD = ("2010-01", "2011-12")
STEP = {  # half of one step of each product's integer encoding (LST: + float32 at 300 K)
    "LAI": 0.05,
    "FAPAR": 0.005,
    "NDVI": 0.00005,
    "EVI": 0.00005,
    "LST_DAY": 0.01 + 5e-5,
    "LST_NIGHT": 0.01 + 5e-5,
}
TOLERANCE = {"TA": 1e-3, "SW_IN": 1e-2, "VPD": 1e-3, "PRECIP": 1e-4}  # float32 sums


@pytest.fixture(scope="module")
def region():
    return make_demo_region(SPEC)


@pytest.fixture(scope="module")
def catalogue(region, tmp_path_factory):
    return write_catalogue(region.cube, tmp_path_factory.mktemp("stac"))


@pytest.fixture(scope="module")
def fetched(catalogue, tmp_path_factory):
    path, _ = catalogue
    out = tmp_path_factory.mktemp("fetched") / "cube.zarr"
    return fetch_stac_cube(GRID, PERIOD, out, catalog=str(path))


def test_the_demo_grid_is_the_target_grid(region):
    np.testing.assert_allclose(GRID.template()["x"], region.cube["x"], atol=1e-9)
    np.testing.assert_allclose(GRID.template()["y"], region.cube["y"], atol=1e-9)


@pytest.mark.parametrize("name", ["TA", "SW_IN", "VPD", "PRECIP"])
def test_era5_drivers_are_the_demo_drivers(fetched, region, name):
    cube = open_store(fetched)
    assert cube[name].attrs["units"] == DRIVERS[name].units
    np.testing.assert_allclose(cube[name].values, region.cube[name].values, atol=TOLERANCE[name])


@pytest.mark.parametrize("name", OPTICAL)
def test_modis_drivers_are_decoded_and_their_qc_gaps_filled_and_flagged(
    fetched, region, catalogue, name
):
    _, gaps = catalogue
    cube = open_store(fetched)
    truth = region.cube[name].values
    seen = ~gaps[name]
    # Good observations: the demo's value within the encoding's precision.
    assert np.abs(cube[name].values - truth)[seen].max() <= STEP[name] + 1e-6
    # QC-flagged pixel-months: gaps, filled as the Earth Engine path fills its gaps.
    expected = fill_gaps(
        region.cube[list(OPTICAL)].where(xr.DataArray(~gaps[name], dims=("time", "y", "x")))
    )
    np.testing.assert_allclose(cube[name].values, expected[name].values, atol=STEP[name] + 1e-6)
    np.testing.assert_array_equal(
        cube[gap_fraction_name(name)].values, gaps[name].mean(axis=0).astype("float32")
    )
    assert gaps[name].sum() > 0 and cube[FILLED].values[gaps[name]].min() > 0


def test_fetched_cube_carries_provenance_and_the_canonical_layout(fetched):
    cube = open_store(fetched)
    assert set(STAC_DRIVERS) <= set(cube.data_vars)
    assert cube.rio.crs.to_epsg() == 4326
    assert "STAC catalogue" in cube.attrs["source"]
    assert "modis-15A3H-061" in cube.attrs["collections"]
    assert "comment" in cube["VPD"].attrs
    assert not fetched.with_name("cube.zarr.fetching").exists()


def test_an_interrupted_fetch_resumes_with_the_missing_blocks_only(catalogue, fetched, tmp_path):
    path, _ = catalogue
    out = tmp_path / "cube.zarr"
    plan = FetchPlan(GRID, ("NDVI", "TA"), pd.date_range(*PERIOD, freq="MS"), 12, 12)
    calls = []

    def crash_at_third(block):
        calls.append(block)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill mid-fetch
        return {}

    settings = {"catalog": str(path), "variables": ["NDVI", "TA"], "tile": 12}
    with pytest.raises(KeyboardInterrupt):
        fetch_stac_cube(GRID, PERIOD, out, **settings, extra=crash_at_third)
    assert not out.exists()
    again = []
    fetch_stac_cube(GRID, PERIOD, out, **settings, extra=lambda block: again.append(block) or {})
    assert again == plan.blocks()[2:]
    whole = open_store(fetched)
    for name in ("NDVI", "TA"):
        np.testing.assert_allclose(open_store(out)[name].values, whole[name].values, atol=1e-6)


def test_planetary_computer_items_alone_are_signed():
    import planetary_computer

    assert is_planetary_computer(PLANETARY_COMPUTER)
    assert url_signer(PLANETARY_COMPUTER) is planetary_computer.sign_inplace
    for other in (
        "https://earth-search.aws.element84.com/v1",
        "/data/stac/catalog.json",
        "https://example.org/planetarycomputer.microsoft.com/catalog.json",
    ):
        assert not is_planetary_computer(other) and url_signer(other) is None


def test_the_recipes_follow_the_collections_metadata():
    lai = PLANETARY_COMPUTER_RECIPES["LAI"]
    assert (lai.collection, lai.asset, lai.scale, lai.qc_asset) == (
        "modis-15A3H-061",
        "Lai_500m",
        0.1,
        "FparLai_QC",
    )
    assert PLANETARY_COMPUTER_RECIPES["NDVI"].fill == (-3000,)
    assert PLANETARY_COMPUTER_RECIPES["LST_DAY"].qc_mask == 0b11
    assert set(STAC_DRIVERS) == {"LAI", "FAPAR", "NDVI", "EVI", "LST_DAY", "LST_NIGHT"} | {
        "TA",
        "SW_IN",
        "VPD",
        "PRECIP",
    }


def test_qc_bits_fill_values_and_range_decide_what_is_kept():
    recipe = StacRecipe(
        collection="c",
        asset="v",
        scale=0.1,
        fill=(255,),
        valid_range=(0, 100),
        qc_asset="qc",
        qc_mask=0b11,
    )
    raw = xr.DataArray(np.array([[50.0, 50.0, 50.0, 255.0, 251.0, 50.0]]))
    qc = xr.DataArray(np.array([[0.0, 0b100, 0b01, 0.0, 0.0, np.nan]]))
    kept = canonical_values(recipe, {"v": raw, "qc": qc}).values[0]
    np.testing.assert_allclose(kept, [5.0, 5.0, np.nan, np.nan, np.nan, np.nan])


def test_a_recipe_needs_one_qc_rule():
    with pytest.raises(ValidationError, match="exactly one"):
        StacRecipe(collection="c", asset="v", qc_asset="qc")
    with pytest.raises(ValidationError, match="exactly one"):
        StacRecipe(collection="c", asset="v", qc_asset="qc", qc_mask=1, qc_max=1)


def test_a_collection_the_catalogue_lacks_is_named(catalogue, tmp_path):
    path, _ = catalogue
    recipes = {"NDVI": StacRecipe(collection="modis-13Q1-061", asset="250m_16_days_NDVI")}
    with pytest.raises(FetchFailedError, match="no collection 'modis-13Q1-061'.*modis-13A1-061"):
        fetch_stac_cube(
            GRID,
            PERIOD,
            tmp_path / "c.zarr",
            catalog=str(path),
            recipes=recipes,
            variables=["NDVI"],
        )


def test_a_missing_extra_is_named(monkeypatch, catalogue, tmp_path):
    monkeypatch.setitem(sys.modules, "pystac_client", None)  # as if not installed
    with pytest.raises(FetchFailedError, match=r"upscale\[stac\]"):
        fetch_stac_cube(GRID, PERIOD, tmp_path / "c.zarr", catalog=str(catalogue[0]))


def test_ingest_config_with_a_stac_section_and_a_local_source(catalogue, region, tmp_path):
    path, _ = catalogue
    region.cube[["PRECIP"]].to_netcdf(tmp_path / "rain.nc")
    evi = PLANETARY_COMPUTER_RECIPES["EVI"].model_dump(mode="json")
    evi_without_qc = evi | {"qc_asset": None, "qc_max": None}
    config = {
        "grid": {"crs": "EPSG:4326", "bounds": list(SPEC.bounds), "resolution": 0.05},
        "period": ["2010-01", "2010-06"],
        "sources": [{"path": "rain.nc", "variables": {"PRECIP": "PRECIP"}}],
        "stac": {
            "catalog": os.path.relpath(path, tmp_path),  # from the config's folder
            "variables": ["EVI", "TA"],
            "recipes": {"EVI": evi_without_qc},
        },
    }
    (tmp_path / "cube.yaml").write_text(yaml.safe_dump(config))
    report = ingest(tmp_path / "cube.yaml", tmp_path / "cube.zarr")
    cube = open_store(report.path)
    assert {"EVI", "TA", "PRECIP"} <= set(cube.data_vars) and cube.sizes["time"] == 6
    np.testing.assert_allclose(cube["PRECIP"], region.cube["PRECIP"][:6], atol=1e-5)
    # Without its QC, EVI keeps the flagged observations: no gap left to fill.
    assert float(cube[gap_fraction_name("EVI")].max()) == 0.0


def test_cli_fetch_from_a_stac_catalogue(catalogue, tmp_path):
    path, _ = catalogue
    west, south, east, north = SPEC.bounds
    command = ["fetch", "--source", "stac", "--catalog", str(path), "--period", "2010-01:2010-03"]
    command += ["-r", f"{west},{south},{east},{north}", "--resolution", "0.1"]
    command += ["--variables", "LST_DAY,TA", "--out", str(tmp_path / "cube.zarr")]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    cube = open_store(tmp_path / "cube.zarr")
    assert set(cube.data_vars) >= {"LST_DAY", "TA"} and cube.sizes["x"] == 12
    refused = CliRunner().invoke(app, [*command[:7], "--sites", str(tmp_path)])
    assert refused.exit_code != 0 and "upscale extract" in refused.output


@pytest.mark.slow
def test_a_fetched_cube_trains_and_predicts(fetched, region, tmp_path):
    inputs = write_demo_region(region, tmp_path / "demo")
    config = TrainConfig(memory=3, epochs=2, folds=2, reference_windows=50)
    trained = train(
        inputs.sites, fetched, tmp_path / "models", config=config, status=lambda _: None
    )
    maps = predict(fetched, inputs.mask, list(trained.models.values()), tmp_path / "maps.zarr")
    gpp = open_store(maps)["GPP"]
    wetland = open_store(inputs.mask)["wetland"] > 0
    assert np.isfinite(gpp.isel(time=-1).values[wetland.values]).all()
