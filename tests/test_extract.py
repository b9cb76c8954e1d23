"""Drivers at the towers from a cube: `upscale extract` and the tidy CSV it writes."""

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod
from typer.testing import CliRunner

from upscale import api
from upscale.cli import app
from upscale.errors import InvalidCubeError, InvalidTowerDataError, OutputExistsError
from upscale.io.stores import open_cube, write_store
from upscale.schema import DEFAULT_FEATURES
from upscale.towers.pixels import drivers_at_towers, monthly_variables
from upscale.towers.sites import read_sites_table, write_sites_table
from upscale.towers.tidy import read_site_drivers

from .helpers import raise_if_dask_computes


@pytest.fixture(scope="module")
def inputs(small_region, tmp_path_factory):
    """The demo cube in 8 x 8 tiles, with a gap at the first tower in March 2010."""
    folder = tmp_path_factory.mktemp("extract")
    cube = small_region.cube.copy()
    first = small_region.sites.iloc[0]
    gap = cube["TA"].sel(y=first["lat"], x=first["lon"], method="nearest").squeeze()
    cube["TA"] = cube["TA"].where(
        ~((cube["y"] == gap["y"]) & (cube["x"] == gap["x"]) & (cube["time"] == cube["time"][2]))
    )
    write_store(cube.chunk({"time": -1, "y": 8, "x": 8}), folder / "cube.zarr")
    write_sites_table(small_region.sites, folder / "sites")
    return folder


def nearest(cube, lat, lon):
    return cube.sel(y=lat, x=lon, method="nearest")


def test_drivers_at_the_towers_round_trip(inputs, small_region, tmp_path):
    report = api.extract(inputs / "sites", inputs / "cube.zarr", tmp_path / "drivers.csv")
    meta = read_sites_table(inputs / "sites")
    cube = small_region.cube
    header = (tmp_path / "drivers.csv").read_text().splitlines()[0].split(",")
    assert header == ["site_id", "time", *DEFAULT_FEATURES]  # the schema's order
    table = pd.read_csv(tmp_path / "drivers.csv", dtype={"site_id": str})
    assert list(table["site_id"].unique()) == list(meta.index)  # sites.csv order
    assert table["time"].iloc[:2].tolist() == ["2010-01-01", "2010-02-01"]
    assert len(table) == len(meta) * cube.sizes["time"]
    back = read_site_drivers(tmp_path / "drivers.csv")
    for site, (lat, lon) in meta[["lat", "lon"]].iterrows():
        rows = back[back["site_id"] == site].set_index("time")
        pixel = nearest(cube, lat, lon)
        for name in cube.data_vars:
            expected = pixel[name].values.copy()
            if name == "TA" and site == meta.index[0]:
                expected[2] = np.nan  # the gap: an empty field, NaN again when read
            np.testing.assert_array_equal(rows[name].to_numpy("float32"), expected)
    assert report.path == tmp_path / "drivers.csv"


def test_the_pixel_under_each_tower_and_its_distance(inputs, small_region, tmp_path):
    report = api.extract(inputs / "sites", inputs / "cube.zarr", tmp_path / "d.csv")
    assert report.pixels_path == tmp_path / "d.pixels.csv"
    pixels = pd.read_csv(report.pixels_path, dtype={"site_id": str})
    assert list(pixels.columns) == [
        "site_id",
        "lat",
        "lon",
        "row",
        "col",
        "pixel_x",
        "pixel_y",
        "pixel_lon",
        "pixel_lat",
        "distance_m",
    ]
    cube = small_region.cube
    for row in pixels.itertuples():
        pixel = nearest(cube, row.lat, row.lon)
        assert (row.pixel_x, row.pixel_y) == (float(pixel["x"]), float(pixel["y"]))
        assert float(cube["x"][row.col]) == row.pixel_x and float(cube["y"][row.row]) == row.pixel_y
        # EPSG:4326 cube: the centre in lon/lat is the centre in the cube's CRS
        assert row.pixel_lon == pytest.approx(row.pixel_x) and row.pixel_lat == row.pixel_y
        _, _, metres = Geod(ellps="WGS84").inv(row.lon, row.lat, row.pixel_lon, row.pixel_lat)
        assert row.distance_m == pytest.approx(metres)
    step = abs(float(cube["x"][1] - cube["x"][0]))
    half_diagonal = Geod(ellps="WGS84").inv(0, 25, step / 2, 25 + step / 2)[2]
    assert (pixels["distance_m"] <= half_diagonal).all()


def test_features_choose_and_order_the_columns(inputs, tmp_path):
    api.extract(inputs / "sites", inputs / "cube.zarr", tmp_path / "d.csv", features=["TA", "LAI"])
    header = (tmp_path / "d.csv").read_text().splitlines()[0]
    assert header == "site_id,time,TA,LAI"
    with pytest.raises(InvalidCubeError, match=r"cube.zarr: missing driver variable\(s\) SALINITY"):
        api.extract(
            inputs / "sites", inputs / "cube.zarr", tmp_path / "e.csv", features=["SALINITY"]
        )


def test_only_the_tower_pixels_are_computed_once(inputs):
    cube = open_cube(inputs / "cube.zarr")
    meta = read_sites_table(inputs / "sites")
    with raise_if_dask_computes(max_computes=1):
        table = drivers_at_towers(cube, meta, ["LAI", "TA"])
    assert list(table.columns) == ["site_id", "time", "LAI", "TA"]


def test_towers_outside_the_cube_are_named(inputs, small_region, tmp_path):
    sites = small_region.sites.copy()
    sites.iloc[0, [0, 1]] = (10.0, -60.0)
    write_sites_table(sites, tmp_path / "sites")
    with pytest.raises(
        InvalidTowerDataError, match=rf"outside the cube extent: {sites.index[0]} \(10"
    ):
        api.extract(tmp_path / "sites", inputs / "cube.zarr", tmp_path / "d.csv")
    assert not (tmp_path / "d.csv").exists()


def test_outputs_are_not_overwritten_without_asking(inputs, tmp_path):
    api.extract(inputs / "sites", inputs / "cube.zarr", tmp_path / "d.csv", features=["TA"])
    (tmp_path / "d.csv").unlink()  # the pixel table alone still blocks the run
    with pytest.raises(OutputExistsError, match="d.pixels.csv: exist"):
        api.extract(inputs / "sites", inputs / "cube.zarr", tmp_path / "d.csv")
    api.extract(inputs / "sites", inputs / "cube.zarr", tmp_path / "d.csv", overwrite=True)
    assert not list(tmp_path.glob("*.partial"))


def test_extract_command_prints_the_pixels_and_what_it_wrote(inputs, tmp_path):
    out = tmp_path / "drivers.csv"
    options = ["--sites", inputs / "sites", "--cube", inputs / "cube.zarr", "--out", out]
    result = CliRunner().invoke(app, ["extract", *map(str, options), "--features", "NDVI,TA"])
    assert result.exit_code == 0, result.output
    assert "pixel under each tower" in result.output and "distance_m" in result.output
    assert "drivers.pixels.csv" in result.output
    assert out.read_text().startswith("site_id,time,NDVI,TA\n")
    again = CliRunner().invoke(app, ["extract", *map(str, options)])
    assert again.exit_code == 2 and "pass --overwrite" in again.output


def test_default_drivers_come_in_a_stable_order(small_region):
    cube = small_region.cube[["TA", "LAI"]]
    cube = cube.assign(TIDE=cube["TA"], FILLED=cube["TA"], NDVI_gap_fraction=cube["TA"][0])
    assert monthly_variables(cube) == ["LAI", "TA", "FILLED", "TIDE"]  # no (y, x) layers
