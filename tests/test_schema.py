import numpy as np
import pandas as pd
import pytest

from upscale.errors import InvalidCubeError
from upscale.io.stores import open_cube, write_store
from upscale.schema import DEFAULT_FEATURES, FLUXES, units_match, validate_cube


@pytest.fixture
def cube(small_region):
    return small_region.cube


def test_demo_cube_is_valid(cube):
    validate_cube(cube)


def test_missing_variable(cube):
    with pytest.raises(InvalidCubeError, match=r"demo.zarr: missing driver variable\(s\) LAI"):
        validate_cube(cube.drop_vars("LAI"), source="demo.zarr")


def test_wrong_units(cube):
    cube = cube.copy()
    cube["TA"] = cube["TA"].assign_attrs(units="K")
    with pytest.raises(InvalidCubeError, match="variable TA is in 'K', expected 'degC'"):
        validate_cube(cube)


def test_missing_units(cube):
    cube = cube.copy()
    cube["VPD"] = cube["VPD"].assign_attrs(units=None)
    cube["VPD"].attrs.pop("units")
    with pytest.raises(InvalidCubeError, match="VPD has no 'units' attribute"):
        validate_cube(cube)


def test_unit_spellings():
    assert units_match("°C", "degC")
    assert units_match("W/m2", "W m-2")
    assert not units_match("K", "degC")


def test_unsorted_time(cube):
    with pytest.raises(InvalidCubeError, match="not sorted"):
        validate_cube(cube.isel(time=[1, 0, *range(2, cube.sizes["time"])]))


def test_mid_month_stamps(cube):
    shifted = cube.assign_coords(time=cube.indexes["time"] + pd.Timedelta(days=14))
    with pytest.raises(InvalidCubeError, match="stamped on the first of the month; found .*-15"):
        validate_cube(shifted)


def test_missing_month(cube):
    with pytest.raises(InvalidCubeError, match=r"gapless monthly series \(jump at 2010-06\)"):
        validate_cube(cube.drop_sel(time="2010-05-01"))


def test_no_crs(cube):
    bare = cube.drop_vars("spatial_ref")
    for name in bare.data_vars:
        bare[name].attrs.pop("grid_mapping", None)
        bare[name].encoding.pop("grid_mapping", None)
    with pytest.raises(InvalidCubeError, match="no CRS found"):
        validate_cube(bare)


def test_lat_lon_netcdf_opens_as_epsg4326(cube, tmp_path):
    path = tmp_path / "cube.nc"
    bare = cube.drop_vars("spatial_ref").rename({"y": "lat", "x": "lon"})
    bare = bare.isel(lat=slice(None, None, -1))  # south-up, as many NetCDF files are
    for name in bare.data_vars:
        bare[name].attrs.pop("grid_mapping", None)
    bare.to_netcdf(path)
    opened = open_cube(path)
    assert opened.rio.crs.to_epsg() == 4326
    assert opened["y"][0] > opened["y"][-1]
    np.testing.assert_array_equal(opened["TA"].values, cube["TA"].values)


def test_open_cube_rechunks_to_tiles(cube, tmp_path):
    write_store(cube, tmp_path / "cube.zarr")
    opened = open_cube(tmp_path / "cube.zarr", DEFAULT_FEATURES, tile=8)
    assert opened.chunksizes["time"] == (cube.sizes["time"],)
    assert opened.chunksizes["y"][0] == 8


def test_open_missing_path(tmp_path):
    with pytest.raises(InvalidCubeError, match="no such file or store"):
        open_cube(tmp_path / "nope.zarr")


def test_cf_attributes():
    assert FLUXES["GPP"].attrs()["standard_name"] == (
        "gross_primary_productivity_of_biomass_expressed_as_carbon"
    )
    assert "standard_name" not in FLUXES["NEE"].attrs()
    assert "sink is -NEE" in FLUXES["NEE"].attrs()["comment"]


def test_plausible_ranges_allow_rounding_past_a_bound_but_not_nodata():
    from upscale.schema import implausible_value

    assert implausible_value(["PRECIP", "SW_IN"], [-0.01, -0.4], [12.0, 300.0]) is None
    assert "PRECIP ranges -9999" in implausible_value(["PRECIP"], [-9999.0], [12.0])
    assert "flux GPP ranges -8..12" in implausible_value(["GPP"], [-8.0], [12.0])
