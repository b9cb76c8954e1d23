import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import yaml
from rasterio.transform import from_origin
from typer.testing import CliRunner

import upscale
from tests.conftest import shared_file
from upscale.cli import app
from upscale.drivers.ingest import (
    DRIVER_SOURCES,
    DriverSource,
    SourceSpec,
    build_drivers,
    read_source_variable,
    register_driver_source,
)
from upscale.errors import InvalidCubeError
from upscale.grid import TargetGrid
from upscale.io.stores import open_cube


def write_config(folder, **fields):
    path = folder / "ingest.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.mark.shared_data
def test_era5_daily_kelvin_becomes_a_monthly_celsius_cube(tmp_path):
    era5 = shared_file("era5_t2m_daily_2019-03_uk.nc")
    # 0.5 degree pixels whose edges fall on the 0.25 degree source cells' edges: 2 x 2 each.
    config = write_config(
        tmp_path,
        grid={"crs": "EPSG:4326", "bounds": [-10.125, 49.875, 1.875, 57.875], "resolution": 0.5},
        period=["2019-03", "2019-03"],
        sources=[{"path": str(era5), "variables": {"TA": "t2m"}}],
    )
    report = upscale.ingest(config, tmp_path / "cube.zarr")
    cube = open_cube(report.path, ["TA"])  # the canonical contract holds
    assert cube.sizes == {"time": 1, "y": 16, "x": 24}
    assert str(cube["time"].values[0])[:10] == "2019-03-01"
    assert cube["TA"].attrs["units"] == "degC" and cube.rio.crs.to_epsg() == 4326
    source = xr.open_dataset(era5)["t2m"].mean("time").values - 273.15  # (33, 49), 58 N first
    blocks = source[1:33, 0:48].reshape(16, 2, 24, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(cube["TA"].values[0], blocks, atol=1e-3)
    assert report.gaps == {}  # no optical driver to fill


@pytest.mark.shared_data
def test_era5_onto_a_projected_grid(tmp_path):
    era5 = shared_file("era5_t2m_daily_2019-03_uk.nc")
    spec = SourceSpec(path=str(era5), variables={"TA": "t2m"})
    grid = TargetGrid("EPSG:27700", (100_000, 100_000, 600_000, 900_000), 50_000)
    cube = build_drivers([spec], grid, ("2019-03", "2019-03"))
    assert cube.rio.crs.to_epsg() == 27700 and cube["TA"].shape == (1, 16, 10)
    # March 2019 over Great Britain: a few degrees Celsius, colder in the north.
    ta = cube["TA"].values[0]
    assert 3 < np.nanmean(ta) < 10 and np.nanmean(ta[:4]) < np.nanmean(ta[-4:])


def synthetic_netcdf(path, **variables):
    """Daily data on a 0-360 longitude, ascending latitude grid, 2019-01-01..2019-02-28."""
    time = pd.date_range("2019-01-01", "2019-02-28", freq="D")
    lat, lon = np.arange(24.0, 27.0, 0.5), np.arange(278.0, 280.0, 0.5)  # -82..-80.5 E
    data = {}
    for name, (units, daily) in variables.items():
        values = np.broadcast_to(np.asarray(daily, "float64")[:, None, None], (len(time), 6, 4))
        data[name] = (("time", "latitude", "longitude"), values.copy(), {"units": units})
    xr.Dataset(data, coords={"time": time, "latitude": lat, "longitude": lon}).to_netcdf(path)
    return path


def test_units_dims_and_steps_are_converted(tmp_path):
    days = np.arange(59)
    path = synthetic_netcdf(
        tmp_path / "met.nc",
        vpd=("Pa", 1000.0 + 0 * days),
        ssrd=("J m-2 d-1", 86400.0 * 200 + 0 * days),
        tp=("kg m-2 s-1", np.where(days < 31, 1 / 86400, 3 / 86400)),
        t2m=("K", 273.15 + days),  # a daily ramp: the monthly mean is the mid-month value
    )
    spec = SourceSpec(
        path=str(path), variables={"VPD": "vpd", "SW_IN": "ssrd", "PRECIP": "tp", "TA": "t2m"}
    )
    grid = TargetGrid("EPSG:4326", (-82.25, 24.25, -80.25, 26.75), 0.5)
    cube = build_drivers([spec], grid, ("2019-01", "2019-02"))
    centre = cube.isel(y=2, x=1)
    np.testing.assert_allclose(centre["VPD"], [10.0, 10.0], rtol=1e-6)
    np.testing.assert_allclose(centre["SW_IN"], [200.0, 200.0], rtol=1e-6)
    np.testing.assert_allclose(centre["PRECIP"], [1.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(centre["TA"], [15.0, 44.5], rtol=1e-6)
    assert float(cube["x"].min()) < -80  # 0-360 longitudes shifted to -180..180


def test_unit_problems_are_refused(tmp_path):
    path = synthetic_netcdf(tmp_path / "bad.nc", ssrd=("J m-2", [1.0] * 59), t2m=("F", [50.0] * 59))
    accumulation = SourceSpec(path=str(path), variables={"SW_IN": "ssrd"})
    with pytest.raises(InvalidCubeError, match="'J m-2' is an amount accumulated over an unstated"):
        read_source_variable(accumulation, "SW_IN")
    stated = SourceSpec(path=str(path), variables={"SW_IN": "ssrd"}, units={"SW_IN": "J m-2 h-1"})
    assert float(read_source_variable(stated, "SW_IN").max()) == pytest.approx(1 / 3600)
    with pytest.raises(InvalidCubeError, match="cannot convert 'F' to TA's 'degC'"):
        read_source_variable(SourceSpec(path=str(path), variables={"TA": "t2m"}), "TA")
    with pytest.raises(
        InvalidCubeError, match=r"bad.nc: no variable 'rh'; it has \['ssrd', 't2m'\]"
    ):
        read_source_variable(SourceSpec(path=str(path), variables={"VPD": "rh"}), "VPD")


def write_modis_stack(folder, scale_in_file):
    """8-day NDVI GeoTIFFs in UTM 17N, int16 like MOD13: NDVI = 0.5 in Jan, 0.7 in Feb."""
    folder.mkdir()
    for day in pd.date_range("2019-01-01", "2019-02-28", freq="8D"):
        value = 5000 if day.month == 1 else 7000
        profile = {
            "driver": "GTiff",
            "width": 40,
            "height": 40,
            "count": 1,
            "dtype": "int16",
            "crs": "EPSG:32617",
            "transform": from_origin(400_000, 2_900_000, 500, 500),
            "nodata": -3000,
        }
        with rasterio.open(folder / f"ndvi_{day:%Y%j}.tif", "w", **profile) as dst:
            data = np.full((40, 40), value, "int16")
            data[:5, :5] = -3000  # fill value: no data
            dst.write(data, 1)
            if scale_in_file:
                dst.scales = (0.0001,)


@pytest.mark.parametrize("scale_in_file", [True, False])
def test_geotiff_stack_with_scale_factors(tmp_path, scale_in_file):
    write_modis_stack(tmp_path / "modis", scale_in_file)
    spec = {"pattern": "modis/{variable}_{date:%Y%j}.tif", "variables": {"NDVI": "ndvi"}}
    spec |= {"units": {"NDVI": "1"}} | ({} if scale_in_file else {"scale": {"NDVI": 0.0001}})
    grid = TargetGrid("EPSG:32617", (402_500, 2_882_500, 417_500, 2_897_500), 2500)
    cube = build_drivers([SourceSpec(**spec)], grid, ("2019-01", "2019-02"), base=tmp_path)
    np.testing.assert_allclose(cube["NDVI"].values[:, 3, 3], [0.5, 0.7], atol=1e-6)
    assert cube["NDVI"].attrs["resampling"] == "average"


def test_unscaled_modis_is_caught(tmp_path):
    write_modis_stack(tmp_path / "modis", scale_in_file=False)
    spec = SourceSpec(
        pattern="modis/{variable}_{date:%Y%j}.tif", variables={"NDVI": "ndvi"}, units={"NDVI": "1"}
    )
    grid = TargetGrid("EPSG:32617", (402_500, 2_882_500, 417_500, 2_897_500), 2500)
    with pytest.raises(
        InvalidCubeError, match="NDVI ranges 5000..7000, outside the plausible -1..1"
    ):
        build_drivers([spec], grid, ("2019-01", "2019-02"), base=tmp_path)


def test_config_errors(tmp_path):
    config = write_config(
        tmp_path,
        grid={"crs": "EPSG:4326", "bounds": [0, 0, 1, 1], "resolution": 0.1},
        period=["2019-01", "2019-02"],
        sources=[{"path": "x.nc", "variables": {"TEMP": "t2m"}}],
    )
    with pytest.raises(
        InvalidCubeError, match=r"ingest.yaml: sources.0.variables: .*\['TEMP'\] are not"
    ):
        upscale.ingest(config, tmp_path / "cube.zarr")
    config.write_text("grid: [1, 2]\n")
    with pytest.raises(InvalidCubeError, match="ingest.yaml: grid: "):
        upscale.ingest(config, tmp_path / "cube.zarr")


def test_monthly_multiband_exports_are_a_stack(tmp_path):
    """One GeoTIFF per month, a band per driver, as `upscale fetch --export-to` writes."""
    (tmp_path / "exports").mkdir()
    for month, (ndvi, ta) in {"2019-01": (0.4, 21.0), "2019-02": (0.6, 23.0)}.items():
        profile = {
            "driver": "GTiff",
            "width": 10,
            "height": 10,
            "count": 2,
            "dtype": "float32",
            "crs": "EPSG:4326",
            "transform": from_origin(-81.5, 25.5, 0.01, 0.01),
        }
        with rasterio.open(tmp_path / "exports" / f"upscale_{month}.tif", "w", **profile) as dst:
            dst.write(np.stack([np.full((10, 10), ndvi), np.full((10, 10), ta)]).astype("float32"))
            dst.descriptions = ("NDVI", "TA")
    spec = SourceSpec(
        pattern="exports/upscale_{date:%Y-%m}.tif",
        variables={"NDVI": "NDVI", "TA": "2"},  # by band description, or by number
        units={"NDVI": "1", "TA": "degC"},
    )
    grid = TargetGrid("EPSG:4326", (-81.5, 25.4, -81.4, 25.5), 0.05)
    cube = build_drivers([spec], grid, ("2019-01", "2019-02"), base=tmp_path)
    np.testing.assert_allclose(cube["NDVI"].values[:, 0, 0], [0.4, 0.6], rtol=1e-6)
    np.testing.assert_allclose(cube["TA"].values[:, 1, 1], [21.0, 23.0], rtol=1e-6)
    wrong = spec.model_copy(update={"variables": {"EVI": "EVI"}})
    with pytest.raises(InvalidCubeError, match=r"no band 'EVI' \(bands: \['NDVI', 'TA'\]\)"):
        build_drivers([wrong], grid, ("2019-01", "2019-02"), base=tmp_path)


def test_listing_and_the_ingest_command(tmp_path):
    write_modis_stack(tmp_path / "modis", scale_in_file=True)
    files = sorted((tmp_path / "modis").glob("*.tif"))
    listing = pd.DataFrame(
        {
            "path": [f"modis/{f.name}" for f in files],
            "variable": "ndvi",
            "time": [pd.to_datetime(f.stem[5:], format="%Y%j") for f in files],
        }
    )
    listing.to_csv(tmp_path / "listing.csv", index=False)
    config = write_config(
        tmp_path,
        grid={
            "crs": "EPSG:32617",
            "bounds": [402_500, 2_882_500, 417_500, 2_897_500],
            "resolution": 2500,
        },
        period=["2019-01", "2019-02"],
        sources=[{"listing": "listing.csv", "variables": {"NDVI": "ndvi"}, "units": {"NDVI": "1"}}],
    )
    result = CliRunner().invoke(app, ["ingest", str(config), "--out", str(tmp_path / "c.zarr")])
    assert result.exit_code == 0, result.output
    assert "c.zarr" in result.output and "NDVI" in result.output  # the gap table
    cube = open_cube(tmp_path / "c.zarr", ["NDVI"])
    np.testing.assert_allclose(cube["NDVI"].values[:, 3, 3], [0.5, 0.7], atol=1e-6)
    assert "FILLED" in cube and "NDVI_gap_fraction" in cube
    again = CliRunner().invoke(app, ["ingest", str(config), "--out", str(tmp_path / "c.zarr")])
    assert again.exit_code == 2 and "pass --overwrite" in " ".join(again.output.split())


def varying_netcdf(path, lon, time_name="time"):
    """t2m in K: 280 K at 270 E, 1 K more per degree east, 0.1 K per degree north."""
    time = pd.date_range("2019-01-01", "2019-01-31", freq="D")
    lat = np.arange(20.0, 24.0, 1.0)
    east = (lon % 360) - 270
    values = np.broadcast_to(280.0 + east[None, :] + 0.1 * lat[:, None], (31, 4, len(lon)))
    data = xr.Dataset(
        {"t2m": ((time_name, "latitude", "longitude"), values, {"units": "K"})},
        coords={time_name: time, "latitude": lat, "longitude": lon},
    )
    data.to_netcdf(path)
    return path


def test_positions_survive_ascending_latitudes_and_0_360_longitudes(tmp_path):
    path = varying_netcdf(tmp_path / "t.nc", np.arange(270.0, 280.0, 1.0), time_name="valid_time")
    spec = SourceSpec(path=str(path), variables={"TA": "t2m"})
    grid = TargetGrid("EPSG:4326", (-88.5, 20.5, -83.5, 22.5), 1.0)  # centres -88..-84, 22, 21
    ta = build_drivers([spec], grid, ("2019-01", "2019-01"))["TA"].values[0]
    east = (np.arange(-88.0, -83.0) % 360) - 270
    expected = 280.0 - 273.15 + east[None, :] + 0.1 * np.array([22.0, 21.0])[:, None]
    np.testing.assert_allclose(ta, expected, atol=1e-4)


def test_sources_that_cannot_be_placed_or_scaled_are_refused(tmp_path):
    across = varying_netcdf(tmp_path / "a.nc", np.arange(175.0, 185.0, 1.0))
    grid = TargetGrid("EPSG:4326", (176.5, 20.5, 179.5, 22.5), 1.0)
    with pytest.raises(InvalidCubeError, match="0-360 longitudes that cross 180 E"):
        build_drivers(
            [SourceSpec(path=str(across), variables={"TA": "t2m"})], grid, ("2019-01", "2019-01")
        )
    inside = varying_netcdf(tmp_path / "b.nc", np.arange(270.0, 280.0, 1.0))
    grid = TargetGrid("EPSG:4326", (-88.5, 20.5, -83.5, 22.5), 1.0)
    with pytest.raises(
        InvalidCubeError, match=r"TA has no value in 1 month\(s\) of the period \(2019-02\)"
    ):
        build_drivers(
            [SourceSpec(path=str(inside), variables={"TA": "t2m"})], grid, ("2019-01", "2019-02")
        )
    far = TargetGrid("EPSG:4326", (0, 0, 2, 2), 1.0)
    with pytest.raises(InvalidCubeError, match="does not cover the target grid"):
        build_drivers(
            [SourceSpec(path=str(inside), variables={"TA": "t2m"})], far, ("2019-01", "2019-01")
        )


def test_a_file_scale_factor_is_not_applied_twice(tmp_path):
    write_modis_stack(tmp_path / "modis", scale_in_file=True)
    spec = SourceSpec(
        pattern="modis/{variable}_{date:%Y%j}.tif",
        variables={"NDVI": "ndvi"},
        units={"NDVI": "1"},
        scale={"NDVI": 0.0001},
    )
    with pytest.raises(InvalidCubeError, match="carries its own scale factor, already applied"):
        read_source_variable(spec, "NDVI", base=tmp_path)


def test_declared_nodata_and_mixed_crs_stacks(tmp_path):
    (tmp_path / "s").mkdir()
    for month, crs in (("2019-01", "EPSG:4326"), ("2019-02", "EPSG:4269")):
        profile = {
            "driver": "GTiff",
            "width": 4,
            "height": 4,
            "count": 1,
            "dtype": "float32",
            "crs": crs,
            "transform": from_origin(-81.5, 25.5, 0.05, 0.05),
        }
        with rasterio.open(tmp_path / "s" / f"ndvi_{month}.tif", "w", **profile) as dst:
            data = np.full((4, 4), 0.5, "float32")
            data[0, 0] = -9999
            dst.write(data, 1)
    spec = SourceSpec(
        pattern="s/{variable}_{date:%Y-%m}.tif",
        variables={"NDVI": "ndvi"},
        units={"NDVI": "1"},
        nodata={"NDVI": -9999},
    )
    with pytest.raises(InvalidCubeError, match="in several CRSs"):
        read_source_variable(spec, "NDVI", base=tmp_path)
    (tmp_path / "s" / "ndvi_2019-02.tif").unlink()
    ndvi = read_source_variable(spec, "NDVI", base=tmp_path).values[0]
    assert np.isnan(ndvi[0, 0]) and np.nanmin(ndvi) == pytest.approx(0.5)


def global_ring(y: str, x: str, east_of_180: bool) -> xr.Dataset:
    """Monthly TA in degC on a 1 degree ring around the globe, latitudes ascending."""
    time = pd.date_range("2019-01-01", periods=3, freq="MS")
    lat = np.arange(20.5, 24.5, 1.0)
    lon = np.arange(-179.5, 180.0, 1.0)
    values = lon[None, None, :] + 1000 * lat[None, :, None] + 1e5 * np.arange(3)[:, None, None]
    ta = xr.DataArray(values.astype("float32"), dims=("time", y, x), attrs={"units": "degC"})
    ring = xr.Dataset({"TA": ta}, coords={"time": time, y: lat, x: lon})
    if east_of_180:  # 0..360, as ERA5 and many models store it
        ring = ring.assign_coords({x: ring[x] % 360}).sortby(x)
    return ring


@pytest.mark.parametrize(
    ("y", "x", "east_of_180", "suffix"),
    [
        ("latitude", "longitude", False, ".zarr"),
        ("latitude", "longitude", True, ".nc"),
        ("lat", "lon", True, ".zarr"),
        ("y", "x", True, ".nc"),
    ],
    ids=["latitude-longitude", "latitude-longitude-0-360", "lat-lon-0-360", "y-x-0-360"],
)
def test_cube_and_ingest_read_a_store_on_one_grid(y, x, east_of_180, suffix, tmp_path):
    path = tmp_path / f"ta{suffix}"
    ring = global_ring(y, x, east_of_180)
    if y == "y":  # no lat/lon dims to default from: the file states its CRS
        ring = ring.rio.write_crs("EPSG:4326")
    if suffix == ".zarr":
        ring.to_zarr(path, zarr_format=3, consolidated=False)
    else:
        ring.to_netcdf(path)
    canonical = global_ring("y", "x", east_of_180=False).isel(y=slice(None, None, -1))

    cube = open_cube(path, ["TA"])
    source = read_source_variable(SourceSpec(path=str(path), variables={"TA": "TA"}), "TA")
    for read in (cube["TA"], source):
        assert read.rio.crs == "EPSG:4326"
        np.testing.assert_array_equal(read["x"], canonical["x"])  # -179.5..179.5, west to east
        np.testing.assert_array_equal(read["y"], canonical["y"])  # north up
        np.testing.assert_array_equal(read.values, canonical["TA"].values)


@pytest.fixture
def csv_source():
    """A toy kind of driver source, ``csv: <file>``: one value per month for every pixel of a
    fixed grid; removed from the registry after the test."""

    def read(spec, name, base):
        table = pd.read_csv(base / spec.location, parse_dates=["time"]).set_index("time")
        lat, lon = np.arange(26.5, 24.0, -0.5), np.arange(-82.0, -80.0, 0.5)
        values = np.broadcast_to(table[name].to_numpy()[:, None, None], (len(table), 5, 4))
        array = xr.DataArray(
            values.copy(), coords={"time": table.index, "y": lat, "x": lon}, dims=("time", "y", "x")
        )
        return array.rio.write_crs("EPSG:4326").assign_attrs(units="K")

    source = register_driver_source(DriverSource("csv", "a CSV of monthly values", read))
    yield source
    del DRIVER_SOURCES[source.kind]


def test_a_registered_driver_source_is_read_by_its_key(tmp_path, csv_source):
    (tmp_path / "t.csv").write_text("time,t2m\n2019-01-01,283.15\n2019-02-01,293.15\n")
    spec = SourceSpec(csv="t.csv", variables={"TA": "t2m"})
    assert (spec.kind, spec.location) == ("csv", "t.csv")
    grid = TargetGrid("EPSG:4326", (-82.25, 24.25, -80.25, 26.75), 0.5)
    cube = build_drivers([spec], grid, ("2019-01", "2019-02"), base=tmp_path)
    np.testing.assert_allclose(cube["TA"].values[:, 2, 1], [10.0, 20.0], rtol=1e-6)
    with pytest.raises(ValueError, match="give exactly one of path, pattern, listing, csv"):
        SourceSpec(csv="t.csv", path="x.nc", variables={"TA": "t2m"})
    with pytest.raises(ValueError, match="already called 'csv'"):
        register_driver_source(csv_source)
