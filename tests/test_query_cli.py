"""The mask, regions and query verbs on generated inputs, through the command line."""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from tests.test_regions import synthetic_maps
from upscale import api
from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.io.stores import open_cube, open_mask, open_store, write_store

runner = CliRunner()


def invoke(*parts):
    return runner.invoke(app, [str(part) for part in parts])


def one_clear_error(result, fragment):
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert text.startswith("error:") and "Traceback" not in text
    assert fragment in text


@pytest.fixture
def maps_store(tmp_path):
    step = 0.05
    x = np.arange(-81.9, -80.75, step) + step / 2
    y = np.arange(26.0, 25.1, -step) - step / 2
    return write_store(synthetic_maps("EPSG:4326", x, y), tmp_path / "maps.zarr")


@pytest.fixture
def catalogue(tmp_path, small_region):
    folder = tmp_path / "catalogue"
    folder.mkdir()
    small_region.regions.to_file(folder / "demo.geojson")
    return folder


def test_query_by_name_bbox_and_polygon(maps_store, catalogue, tmp_path):
    result = invoke(
        "query",
        "--maps",
        maps_store,
        "--catalogue",
        catalogue,
        "-r",
        "Cape Sable",
        "-r",
        "-81.5,25.5,-81.2,25.8",
        "-r",
        "POLYGON ((-81.4 25.3, -81.1 25.3, -81.1 25.5, -81.4 25.3))",
        "--by",
        "month",
        "--out",
        tmp_path / "b.csv",
        "--plots",
        tmp_path / "pictures",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "b.csv")
    assert list(dict.fromkeys(table["name"])) == [
        "Cape Sable",
        "bbox -81.5,25.5,-81.2,25.8",
        "polygon 3",
    ]
    assert table["month"].iloc[0] == "2012-01" and set(table["ecosystem"]) == {
        "wetland",
        "mangrove",
        "saltmarsh",
    }
    assert "gC m-2 month-1" in " ".join(result.output.split())
    for picture in ("region_sink.png", "region_fluxes.png"):
        assert (tmp_path / "pictures" / picture).stat().st_size > 10_000


def test_query_catalogue_from_the_environment(maps_store, catalogue, monkeypatch):
    monkeypatch.setenv("UPSCALE_REGIONS", str(catalogue))
    result = invoke("query", "--maps", maps_store, "-r", "Lostmans River")
    assert result.exit_code == 0, result.output
    assert "Lostmans" in result.output


def test_query_errors(maps_store, catalogue, tmp_path):
    one_clear_error(
        invoke("query", "--maps", maps_store, "--catalogue", catalogue, "-r", "Cape"),
        "did you mean ['Cape Sable']",
    )
    one_clear_error(
        invoke("query", "--maps", maps_store, "-r", "10,10,11,11"),
        "bbox 10,10,11,11 do not overlap the maps",
    )
    one_clear_error(
        invoke("query", "--maps", maps_store, "-r", "480000,2800000,490000,2810000"),
        "is not in degrees; give its CRS (--crs EPSG:...)",
    )
    (tmp_path / "b.csv").write_text("old")
    one_clear_error(
        invoke(
            "query",
            "--maps",
            maps_store,
            "-r",
            "-81.5,25.5,-81.2,25.8",
            "--out",
            tmp_path / "b.csv",
        ),
        "b.csv: exist(s); pass --overwrite",
    )
    assert (tmp_path / "b.csv").read_text() == "old"


def test_regions_list_and_show(catalogue, maps_store):
    result = invoke("regions", "list", "--catalogue", catalogue, "--mask", maps_store)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Thousand" in text and "saltmarsh" in text and "1506.0" in text
    table = api.list_regions(catalogue, mask=maps_store).set_index("name")
    assert (table[["mangrove_km2", "saltmarsh_km2"]] > 0).all(axis=None)
    np.testing.assert_allclose(
        table["mangrove_km2"] + table["saltmarsh_km2"], table["wetland_km2"], rtol=1e-9
    )
    result = invoke("regions", "show", "Cape Sable", "--catalogue", catalogue)
    assert result.exit_code == 0, result.output
    assert "demo.geojson" in result.output and "area_km2" in result.output
    one_clear_error(
        invoke("regions", "show", "Atlantis", "--catalogue", catalogue),
        "'Atlantis' is not in the catalogue",
    )


def test_mask_from_vectors_matches_the_cube_grid(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    west, south, east, north = (-81.6, 25.3, -81.2, 25.7)
    polygons = gpd.GeoDataFrame(
        {"habitat": ["Estuarine forest", "Estuarine emergent", "Upland"]},
        geometry=[
            shapely.box(west, south, (west + east) / 2, north),
            shapely.box((west + east) / 2, south, east, north),
            shapely.box(-81.0, 25.9, -80.9, 26.0),
        ],
        crs=4326,
    ).to_crs("EPSG:32617")
    polygons.to_file(tmp_path / "wetlands.gpkg")
    out = tmp_path / "mask.zarr"
    result = invoke(
        "mask",
        "--cube",
        inputs.cube,
        "--out",
        out,
        "--vectors",
        tmp_path / "wetlands.gpkg",
        "--ecosystem-column",
        "habitat",
        "--class",
        "Estuarine forest=mangrove",
        "--class",
        "Estuarine emergent=saltmarsh",
    )
    assert result.exit_code == 0, result.output
    assert "mask_km2" in result.output and (tmp_path / "mask.png").exists()
    mask = open_mask(out, open_cube(inputs.cube))  # on the cube's grid: accepted as is
    codes, counts = np.unique(mask["wetland"].values, return_counts=True)
    assert set(codes) == {0, 1, 2} and counts[1] == pytest.approx(counts[2], rel=0.25)
    fraction = mask["wetland_fraction"].values
    assert fraction.max() == pytest.approx(1.0) and 0 < fraction[fraction > 0].min() < 1
    assert not (mask["wetland"].values[fraction == 0]).any()
    provenance = json.loads(open_store(out).attrs["sources"])
    assert provenance["vectors"] == [str(tmp_path / "wetlands.gpkg")]


def test_mask_errors(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    one_clear_error(
        invoke("mask", "--cube", inputs.cube, "--out", tmp_path / "m.zarr"),
        "no wetland source given",
    )
    one_clear_error(
        invoke(
            "mask", "--cube", inputs.cube, "--out", tmp_path / "m.tif", "--mangrove", inputs.regions
        ),
        "m.tif: write the mask as a .zarr store",
    )
    result = invoke(
        "mask", "--cube", inputs.cube, "--out", tmp_path / "m.zarr", "--class", "no-equals-sign"
    )
    assert result.exit_code == 2 and "SOURCE CLASS=ecosystem" in result.output
