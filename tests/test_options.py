"""Options: validated, read when used, and restored after a with block however it ends."""

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr

import upscale
from upscale.engine.tiles import default_batch_size, wetland_series
from upscale.io.geotiff import write_cog
from upscale.io.stores import open_cube, write_store
from upscale.options import OPTIONS, get_options, set_options


@pytest.fixture(autouse=True)
def restored_options():
    """Undo a plain set_options call of a test, so that no other test sees it."""
    before = get_options()
    yield
    set_options(**before)


def test_the_package_exports_them():
    assert upscale.set_options is set_options and upscale.get_options is get_options


def test_a_with_block_changes_the_batch_size_and_restores_it():
    with set_options(batch_sizes={"cpu": 512}):
        assert default_batch_size("cpu") == 512
        assert default_batch_size("cuda") == 16384  # the device types not given keep theirs
    assert default_batch_size("cpu") == 2048


def test_options_are_restored_after_an_exception():
    with pytest.raises(RuntimeError, match="inside"), set_options(tile=64, threads=2):
        assert get_options()["tile"] == 64
        raise RuntimeError("inside")
    assert get_options()["tile"] == 256 and get_options()["threads"] == 1


def test_nested_blocks_restore_in_turn():
    with set_options(tile=128):
        with set_options(tile=64, cog_block=256):
            assert (OPTIONS["tile"], OPTIONS["cog_block"]) == (64, 256)
        assert (OPTIONS["tile"], OPTIONS["cog_block"]) == (128, 512)
    assert OPTIONS["tile"] == 256


def test_a_plain_call_sets_them_for_the_process():
    set_options(batch_sizes={"cuda": 4096})
    assert default_batch_size("cuda") == 4096


def test_get_options_is_a_copy_that_sets_them_again():
    options = get_options()
    options["batch_sizes"]["cpu"] = 1
    assert default_batch_size("cpu") == 2048
    with set_options(tile=32):
        inside = get_options()
    set_options(**inside)
    assert OPTIONS["tile"] == 32


def test_the_tile_option_tiles_a_cube_opened_without_a_tile(small_region, tmp_path):
    path = write_store(small_region.cube, tmp_path / "cube.zarr")  # one 20 x 24 chunk
    with set_options(tile=8):
        assert open_cube(path).chunks["y"] == (8, 8, 4)
    assert open_cube(path).chunks["y"] == (20,)  # within the default 256: the store's own


def test_the_threads_option_sets_the_torch_threads_of_a_cpu_tile():
    previous = torch.get_num_threads()
    tile = np.zeros((3, 4, 2, 2), dtype="float32"), np.zeros((2, 2), dtype="uint8")
    try:
        with set_options(threads=2):
            list(wetland_series(*tile, (), ("a", "b", "c"), "cpu"))
            assert torch.get_num_threads() == 2
        list(wetland_series(*tile, (), ("a", "b", "c"), "cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_the_cog_block_option_sets_the_block_of_the_cogs(tmp_path):
    side = np.arange(64) + 0.5
    bands = xr.DataArray(
        np.random.default_rng(0).random((1, 64, 64), dtype="float32"),
        dims=("band", "y", "x"),
        coords={"y": side[::-1], "x": side},
    ).rio.write_crs("EPSG:3857")
    with set_options(cog_block=32):
        path = write_cog(bands, ["one"], tmp_path / "small.tif")
    with rasterio.open(path) as src:
        assert src.block_shapes == [(32, 32)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile": 0}, r"option tile=0 is invalid; tile takes a positive integer \(pixels\)"),
        ({"tile": 12.5}, "tile takes a positive integer"),
        ({"threads": True}, "threads takes a positive integer"),
        ({"cog_block": 500}, "cog_block takes a positive multiple of 16"),
        ({"batch_sizes": {"gpu": 8}}, "batch_sizes takes a mapping of torch device types"),
        ({"batch_sizes": {"cpu": 0}}, "batch_sizes takes a mapping"),
        ({"batch_sizes": 8}, "batch_sizes takes a mapping"),
    ],
)
def test_invalid_values_are_refused_and_nothing_is_set(options, message):
    before = get_options()
    with pytest.raises(ValueError, match=message):
        set_options(**({"threads": 2} | options))  # a valid option beside: set neither
    assert get_options() == before
