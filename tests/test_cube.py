import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr.codecs
from pyproj import CRS

from upscale.errors import (
    GridMappingWarning,
    InvalidCubeError,
    InvalidMapsError,
    InvalidMaskError,
    OutputExistsError,
)
from upscale.io.stores import (
    open_cube,
    open_maps,
    open_mask,
    open_store,
    to_canonical_grid,
    write_store,
)
from upscale.schema import WETLAND, WETLAND_FRACTION


def test_store_round_trip_keeps_crs_and_values(small_region, tmp_path):
    path = write_store(small_region.cube.chunk({"y": 8, "x": 8}), tmp_path / "cube.zarr")
    assert (path / "zarr.json").exists()
    assert not (tmp_path / "cube.zarr.partial").exists()
    back = open_store(path)
    assert back.rio.crs == small_region.cube.rio.crs
    assert back["LAI"].attrs["units"] == "m2 m-2"
    np.testing.assert_array_equal(back["LAI"].values, small_region.cube["LAI"].values)


def test_store_refuses_to_overwrite(small_region, tmp_path):
    write_store(small_region.mask, tmp_path / "mask.zarr")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        write_store(small_region.mask, tmp_path / "mask.zarr")
    write_store(small_region.mask, tmp_path / "mask.zarr", overwrite=True)


def test_mask_from_zarr_on_cube_grid(small_region, tmp_path):
    write_store(small_region.mask, tmp_path / "mask.zarr")
    mask = open_mask(tmp_path / "mask.zarr", small_region.cube.chunk({"y": 8, "x": 8}))
    assert set(np.unique(mask[WETLAND].values)) == {0, 1, 2}
    assert float(mask[WETLAND_FRACTION].where(mask[WETLAND] == 0).max()) == 0.0
    assert mask.chunksizes["y"][0] == 8


def test_mask_from_geotiff_without_fraction(small_region, tmp_path):
    small_region.mask[WETLAND].rio.to_raster(tmp_path / "wetland.tif")
    mask = open_mask(tmp_path / "wetland.tif", small_region.cube)
    np.testing.assert_array_equal(mask[WETLAND].values, small_region.mask[WETLAND].values)
    assert set(np.unique(mask[WETLAND_FRACTION].values)) == {0.0, 1.0}


def test_mask_on_another_grid(small_region, tmp_path):
    coarse = small_region.mask.isel(y=slice(0, None, 2), x=slice(0, None, 2))
    write_store(coarse, tmp_path / "coarse.zarr")
    with pytest.raises(
        InvalidMaskError, match=r"coarse.zarr: mask grid is \(10, 12\).*reproject_match"
    ):
        open_mask(tmp_path / "coarse.zarr", small_region.cube)
    shifted = small_region.mask.assign_coords(x=small_region.mask["x"] + 0.5)
    write_store(shifted, tmp_path / "shifted.zarr")
    with pytest.raises(InvalidMaskError, match="x coordinates differ"):
        open_mask(tmp_path / "shifted.zarr", small_region.cube)


def test_mask_with_unknown_codes(small_region, tmp_path):
    bad = small_region.mask.copy()
    bad[WETLAND] = xr.where(bad[WETLAND] == 2, 7, bad[WETLAND]).astype("uint8")
    write_store(bad, tmp_path / "bad.zarr")
    with pytest.raises(InvalidMaskError, match=r"codes \[7\]"):
        open_mask(tmp_path / "bad.zarr")


def test_mask_without_wetland_variable(small_region, tmp_path):
    write_store(small_region.cube[["LAI"]], tmp_path / "nomask.zarr")
    with pytest.raises(InvalidMaskError, match="no 'wetland' variable"):
        open_mask(tmp_path / "nomask.zarr")


@pytest.mark.parametrize("bad", [np.nan, 80.0])
def test_mask_fraction_must_be_a_fraction(small_region, tmp_path, bad):
    mask = small_region.mask.copy(deep=True)
    rows, cols = np.nonzero(mask[WETLAND].values > 0)
    mask[WETLAND_FRACTION][rows[0], cols[0]] = bad
    write_store(mask, tmp_path / "mask.zarr")
    with pytest.raises(
        InvalidMaskError, match="1 wetland pixel\\(s\\) that are NaN or outside 0..1"
    ):
        open_mask(tmp_path / "mask.zarr")


def test_geotiff_nodata_means_no_wetland(small_region, tmp_path):
    float_mask = small_region.mask[WETLAND].astype("float32").where(small_region.mask[WETLAND] > 0)
    float_mask.rio.write_nodata(np.nan, encoded=False).rio.to_raster(tmp_path / "nan.tif")
    mask = open_mask(tmp_path / "nan.tif", small_region.cube)
    np.testing.assert_array_equal(mask[WETLAND].values, small_region.mask[WETLAND].values)


def test_unreadable_cube(tmp_path):
    (tmp_path / "sites.csv").write_text("site_id,lat\n")
    with pytest.raises(InvalidCubeError, match="sites.csv: not a readable Zarr store, NetCDF file"):
        open_cube(tmp_path / "sites.csv")


def test_open_maps_refuses_other_stores(small_region, tmp_path):
    write_store(small_region.cube, tmp_path / "cube.zarr")
    with pytest.raises(InvalidMapsError, match="not a maps store written by `upscale predict`"):
        open_maps(tmp_path / "cube.zarr")


def test_each_reader_raises_the_error_of_what_it_opens(small_region, tmp_path):
    with pytest.raises(
        InvalidMapsError, match="maps.zarr: no such file or store; pass a maps store"
    ):
        open_maps(tmp_path / "maps.zarr")
    (tmp_path / "maps.csv").write_text("GPP\n1\n")
    with pytest.raises(InvalidMapsError, match="maps.csv: not a readable Zarr store, NetCDF file"):
        open_maps(tmp_path / "maps.csv")
    path = write_store(small_region.cube, tmp_path / "cube.zarr")
    zarr.open_group(path, mode="r+").attrs["upscale_complete"] = False
    with pytest.raises(InvalidMapsError, match="cube.zarr: an incomplete store"):
        open_maps(path)
    with pytest.raises(
        InvalidMaskError, match="mask.zarr: no such file or store; pass a wetland mask"
    ):
        open_mask(tmp_path / "mask.zarr")
    with pytest.raises(
        InvalidCubeError, match="cube.nc: no such file or store; pass the path of a"
    ):
        open_cube(tmp_path / "cube.nc")


def test_an_array_goes_on_the_grid_its_dataset_goes_on(small_region):
    flipped = small_region.cube.isel(y=slice(None, None, -1))
    flipped = flipped.assign_coords(x=flipped["x"] + 360).rename(y="latitude", x="longitude")
    array = to_canonical_grid(flipped["TA"], "TA")
    dataset = to_canonical_grid(flipped, "cube")
    xr.testing.assert_identical(array, dataset["TA"])
    np.testing.assert_allclose(array["x"], small_region.cube["x"])


@pytest.mark.parametrize(
    "change",
    [
        lambda ds: ds.isel(y=slice(None, None, -1)),  # latitude ascending
        lambda ds: ds.assign_coords(x=ds["x"] + 360),  # 0-360 longitudes
        lambda ds: ds.isel(x=slice(None, None, -1)),  # east to west
    ],
    ids=["lat-ascending", "lon-0-360", "x-descending"],
)
def test_other_orientations_open_on_the_canonical_grid(change, small_region, tmp_path):
    def as_a_file_states_it(ds):  # with the transform of its own orientation
        changed = change(ds)
        return changed.rio.write_transform(changed.rio.transform(recalc=True))

    path = write_store(as_a_file_states_it(small_region.cube), tmp_path / "cube.zarr")
    cube = open_cube(path)
    np.testing.assert_allclose(cube["x"], small_region.cube["x"])
    np.testing.assert_allclose(cube["y"], small_region.cube["y"])
    np.testing.assert_array_equal(cube["TA"].values, small_region.cube["TA"].values)
    north_up = small_region.cube.rio.transform(recalc=True)
    assert cube.rio.transform().almost_equals(north_up)  # what GeoTIFFs and GIS read
    mask = write_store(as_a_file_states_it(small_region.mask), tmp_path / "mask.zarr")
    opened = open_mask(mask, cube)
    assert (opened["wetland"] == small_region.mask["wetland"]).all()
    assert opened.rio.transform().almost_equals(north_up)


class Killed(BaseException):
    """Stands for a SIGKILL at one step of a store's final swap."""


@pytest.mark.parametrize("step", ["old store aside", "new store in place", "old store deleted"])
def test_store_swap_killed_at_any_step_is_finished_by_a_rerun(small_region, tmp_path, step):
    import pathlib
    import shutil

    lai = small_region.cube[["LAI"]].chunk({"y": 8, "x": 8})
    path = tmp_path / "lai.zarr"
    write_store(lai, path)
    new = (lai * 2).assign_attrs(lai.attrs)
    # Each step is a rename or a deletion of the folder named here.
    kills = {
        "old store aside": (pathlib.Path, "rename", path.name),
        "new store in place": (pathlib.Path, "rename", "lai.zarr.partial"),
        "old store deleted": (shutil, "rmtree", "lai.zarr.replaced"),
    }
    owner, function, folder = kills[step]
    real = getattr(owner, function)

    def step_or_kill(source, *args, **kwargs):
        if pathlib.Path(source).name == folder:
            raise Killed
        return real(source, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, function, step_or_kill)
        with pytest.raises(Killed):
            write_store(new, path, overwrite=True, resume=True)
    if path.exists():  # the old store or the new one, whole: never one half deleted
        left = open_store(path)["LAI"].values
        assert any(np.array_equal(left, v, equal_nan=True) for v in (lai.LAI, new.LAI))

    if step == "old store deleted":  # the new store was in place: the run had finished
        np.testing.assert_array_equal(open_store(path)["LAI"].values, new["LAI"].values)
        return
    rows = []
    write_store(new, path, overwrite=True, resume=True, progress=lambda *done: rows.append(done))
    assert rows[0] == (3, 3)  # 20 rows in chunks of 8, all written before the kill: none again
    np.testing.assert_array_equal(open_store(path)["LAI"].values, new["LAI"].values)
    assert [p.name for p in tmp_path.iterdir()] == ["lai.zarr"]  # nothing left over


def test_cube_with_chunks_of_its_own_per_variable_opens_on_one_grid_of_tiles(
    small_region, tmp_path
):
    cube = small_region.cube.chunk({"y": 8, "x": 8})
    cube["LAI"] = cube["LAI"].chunk({"y": 7, "x": 5})
    cube.drop_encoding().to_zarr(tmp_path / "mixed.zarr", zarr_format=3, consolidated=False)
    opened = open_cube(tmp_path / "mixed.zarr")
    assert opened["LAI"].chunks == opened["TA"].chunks == ((48,), (20,), (24,))  # one tile


def test_mask_without_crs_opened_on_its_own_is_one_clear_error(tmp_path):
    codes = xr.DataArray(np.array([[0, 1], [2, 0]], "uint8"), dims=("y", "x"))
    mask = xr.Dataset({"wetland": codes}, coords={"y": [1.5, 0.5], "x": [100.5, 101.5]})
    mask.to_netcdf(tmp_path / "mask.nc")
    with pytest.raises(InvalidMaskError, match="mask.nc: the mask has no CRS; write one"):
        open_mask(tmp_path / "mask.nc")


def test_cube_with_a_column_left_out_is_refused(small_region, tmp_path):
    gappy = small_region.cube.drop_isel(x=5)
    path = write_store(gappy, tmp_path / "gappy.zarr")
    with pytest.raises(
        InvalidCubeError, match=r"gappy.zarr: the x coordinates are not evenly spaced"
    ):
        open_cube(path)


def test_mask_with_nan_for_no_wetland_says_to_store_0(small_region, tmp_path):
    mask = small_region.mask.copy()
    mask[WETLAND] = mask[WETLAND].astype("float32").where(mask[WETLAND] > 0)
    write_store(mask, tmp_path / "nan.zarr")
    with pytest.raises(InvalidMaskError, match="codes \\[nan\\].*store no wetland as 0, not NaN"):
        open_mask(tmp_path / "nan.zarr")


def test_float32_coordinates_of_a_fine_grid_are_regular(small_region, tmp_path):
    step = 1 / 240  # MODIS 500 m, far from the origin: float32 rounds every coordinate
    x = (120 + step * (np.arange(24) + 0.5)).astype("float32")
    fine = small_region.cube.assign_coords(x=x).rio.write_crs("EPSG:4326")
    path = write_store(fine, tmp_path / "fine.zarr")
    assert open_cube(path).sizes["x"] == 24


UTM = "EPSG:32617"


def utm_cube() -> xr.Dataset:
    """A small monthly cube on a UTM grid (so EPSG:4326 cannot be a default)."""
    time = pd.date_range("2015-01-01", periods=6, freq="MS")
    y = 2_800_000 - 500.0 * np.arange(4) - 250
    x = 500_000 + 500.0 * np.arange(5) + 250
    ta = (20 + np.arange(6 * 4 * 5).reshape(6, 4, 5) / 100).astype("float32")
    return xr.Dataset(
        {"TA": (("time", "y", "x"), ta, {"units": "degC"})},
        coords={"time": time, "y": y, "x": x},
    )


def test_zarr_written_with_an_encoding_keeps_its_crs(tmp_path):
    path = tmp_path / "cube.zarr"
    cube = utm_cube().rio.write_crs(UTM)
    # What users write: an encoding of their own replaces the one holding grid_mapping.
    encoding = {"TA": {"compressors": (zarr.codecs.ZstdCodec(level=3),)}}
    cube.to_zarr(path, zarr_format=3, consolidated=False, encoding=encoding)
    with pytest.warns(GridMappingWarning, match=r"cube.zarr: .*'spatial_ref'.* EPSG:32617"):
        opened = open_cube(path, ["TA"])
    assert opened.rio.crs == UTM
    assert list(opened.data_vars) == ["TA"]  # spatial_ref is a coordinate again
    np.testing.assert_array_equal(opened["TA"].values, cube["TA"].values)


def test_cf_crs_variable_with_only_crs_wkt_is_used(tmp_path):
    path = tmp_path / "cube.zarr"
    cube = utm_cube().assign(crs=xr.DataArray(0, attrs={"crs_wkt": CRS(UTM).to_wkt()}))
    cube.to_zarr(path, zarr_format=3, consolidated=False)
    with pytest.warns(GridMappingWarning, match="'crs'"):
        opened = open_cube(path, ["TA"])
    assert opened.rio.crs == UTM and "crs" not in opened.variables


def test_netcdf_with_a_gdal_spatial_ref_attribute_only_is_used(tmp_path):
    path = tmp_path / "cube.nc"
    wkt = CRS(UTM).to_wkt("WKT1_GDAL")
    utm_cube().assign(spatial_ref=xr.DataArray(0, attrs={"spatial_ref": wkt})).to_netcdf(path)
    with pytest.warns(GridMappingWarning, match="cube.nc: .*'spatial_ref'"):
        opened = open_cube(path, ["TA"])
    assert opened.rio.crs == UTM


def test_cf_grid_mapping_parameters_alone_are_used(tmp_path):
    path = tmp_path / "cube.nc"
    cf = {k: v for k, v in CRS(UTM).to_cf().items() if k != "crs_wkt"}
    utm_cube().assign(transverse_mercator=xr.DataArray(0, attrs=cf)).to_netcdf(path)
    with pytest.warns(GridMappingWarning, match="'transverse_mercator'"):
        opened = open_cube(path, ["TA"])
    assert opened.rio.crs.to_epsg() == 32617


def test_mask_with_an_unnamed_grid_mapping_opens_on_the_cube(small_region, tmp_path):
    path = tmp_path / "mask.zarr"
    encoding = {name: {} for name in small_region.mask.data_vars}
    small_region.mask.to_zarr(path, zarr_format=3, consolidated=False, encoding=encoding)
    with pytest.warns(GridMappingWarning):
        mask = open_mask(path, small_region.cube)
    assert mask.rio.crs == small_region.cube.rio.crs


def test_cube_without_any_crs_is_still_refused(tmp_path):
    utm_cube().to_netcdf(tmp_path / "bare.nc")
    with pytest.raises(
        InvalidCubeError, match=r"bare.nc: no CRS found \(no 'spatial_ref' grid mapping"
    ):
        open_cube(tmp_path / "bare.nc", ["TA"])
