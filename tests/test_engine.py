import dask
import numpy as np
import pandas as pd
import pytest
import torch

from upscale.engine.tiles import default_batch_size, flux_maps
from upscale.errors import InvalidCubeError, InvalidModelError
from upscale.io.stores import open_store, write_store
from upscale.learn.artifact import load_model, save_model
from upscale.schema import ECOSYSTEM_CODES, WETLAND

from .helpers import raise_if_dask_computes


@pytest.fixture
def inputs(small_region):
    cube = small_region.cube.chunk({"time": -1, "y": 8, "x": 8})
    mask = small_region.mask.chunk({"y": 8, "x": 8})
    return cube, mask


def test_maps_stay_lazy_until_written(inputs, model_folders, tmp_path):
    cube, mask = inputs
    with raise_if_dask_computes(max_computes=1):  # the 2-D mask: which ecosystems are there
        maps = flux_maps(cube, mask, model_folders)
    with raise_if_dask_computes(max_computes=1):
        write_store(maps, tmp_path / "maps.zarr")


def test_known_answer_at_wetland_pixels(inputs, model_folders, tmp_path, small_region):
    cube, mask = inputs
    maps = open_store(write_store(flux_maps(cube, mask, model_folders), tmp_path / "maps.zarr"))
    wetland = small_region.mask[WETLAND].values
    for ecosystem, code in (("mangrove", 1), ("saltmarsh", 2)):
        model = load_model(model_folders[ecosystem])
        rows, cols = np.nonzero(wetland == code)
        pick = [0, len(rows) // 2, len(rows) - 1]
        drivers = np.stack(
            [cube[f].values[:, rows[pick], cols[pick]].T for f in model.card.features], -1
        )
        members = model.predict_members(torch.from_numpy(drivers)).numpy()
        distance = model.domain_distance(torch.from_numpy(drivers)).numpy()
        # Every pixel starts at the longest memory (3, mangrove); saltmarsh's L is 2.
        skip = 3 - model.memory
        for k, name in enumerate(["GPP", "RE", "NEE"]):
            got = maps[name].values[:, rows[pick], cols[pick]].T
            np.testing.assert_allclose(got[:, 2:], members.mean(0)[:, skip:, k], rtol=1e-5)
            assert np.isnan(got[:, :2]).all()
            spread = maps[f"{name}_std"].values[:, rows[pick], cols[pick]].T
            expected = members.std(0, ddof=1)[:, skip:, k]
            np.testing.assert_allclose(spread[:, 2:], expected, rtol=1e-4, atol=1e-6)
        got = maps["doa_distance"].values[:, rows[pick], cols[pick]].T
        np.testing.assert_allclose(got[:, 2:], distance[:, skip:], rtol=1e-4)
    off = maps["GPP"].values[:, wetland == 0]
    assert np.isnan(off).all()


def test_maps_carry_grid_crs_and_cf_attributes(inputs, model_folders, tmp_path):
    cube, mask = inputs
    path = write_store(
        flux_maps(cube, mask, model_folders, provenance={"command": "upscale predict"}),
        tmp_path / "maps.zarr",
    )
    maps = open_store(path)
    assert maps.rio.crs == cube.rio.crs
    np.testing.assert_array_equal(maps["x"], cube["x"])
    np.testing.assert_array_equal(maps["y"], cube["y"])
    assert maps["GPP"].dtype == np.float32
    assert maps["GPP"].attrs["units"] == "gC m-2 d-1"
    assert "standard_name" in maps["GPP"].attrs
    assert "sink is -NEE" in maps["NEE"].attrs["comment"]
    assert maps.attrs["valid_from"] == "2010-03-01"  # memory 3 of the mangrove model
    assert maps.attrs["command"] == "upscale predict"
    assert "mangrove" in maps.attrs["models"]


def test_missing_model_for_an_ecosystem(inputs, model_folders):
    cube, mask = inputs
    with pytest.raises(InvalidModelError, match="no model for ecosystem\\(s\\) saltmarsh"):
        flux_maps(cube, mask, {"mangrove": model_folders["mangrove"]})


def test_model_of_the_wrong_ecosystem(inputs, model_folders):
    cube, mask = inputs
    swapped = {"mangrove": model_folders["saltmarsh"], "saltmarsh": model_folders["mangrove"]}
    with pytest.raises(InvalidModelError, match="model is for saltmarsh, not mangrove"):
        flux_maps(cube, mask, swapped)


def test_gap_at_a_wetland_pixel_is_an_error(inputs, model_folders, small_region, tmp_path):
    cube, mask = inputs
    rows, cols = np.nonzero(small_region.mask[WETLAND].values == 1)
    lai = cube["LAI"].load().copy()
    lai[5, rows[0], cols[0]] = np.nan
    cube = cube.assign(LAI=lai.chunk({"y": 8, "x": 8}))
    with pytest.raises(InvalidCubeError, match="driver LAI is missing at 1 wetland pixel-months"):
        write_store(flux_maps(cube, mask, model_folders), tmp_path / "maps.zarr")
    assert not (tmp_path / "maps.zarr").exists()


def test_cube_shorter_than_the_memory(inputs, model_folders):
    cube, mask = inputs
    with pytest.raises(InvalidCubeError, match="the cube has 2 months; the models need at least 3"):
        flux_maps(cube.isel(time=slice(0, 2)), mask, model_folders)


def test_spread_is_larger_where_the_domain_flags_extrapolation(small_region, tmp_path):
    from upscale.learn.samples import extract_site_series
    from upscale.learn.training import TrainConfig, train_ensemble
    from upscale.schema import DEFAULT_FEATURES
    from upscale.towers.sites import SiteData

    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES)
    config = TrainConfig(epochs=40, patience=10, hyperparameters={"hidden": 16, "layers": 1})
    folders = {
        eco: save_model(
            train_ensemble(series.of_ecosystem(eco), config, name=eco, ecosystem=eco).model,
            tmp_path / eco,
        )
        for eco in ("mangrove", "saltmarsh")
    }
    # The eastern half of the region gets a climate no tower has seen.
    cube = small_region.cube.copy()
    east = cube["x"] > float(cube["x"].median())
    for name in ("TA", "LST_DAY", "LST_NIGHT"):
        cube[name] = (cube[name] + 6.0 * east).assign_attrs(cube[name].attrs)
    maps = flux_maps(cube.chunk({"y": 8, "x": 8}), small_region.mask, folders).compute()
    valid = maps.sel(time=slice(maps.attrs["valid_from"], None))
    wetland = valid["wetland"] > 0
    flagged = valid["doa_distance"] > 1
    assert float(flagged.where(east & wetland).mean()) > 0.5
    assert float(flagged.where(~east & wetland).mean()) < 0.2
    spread = valid["GPP_std"].where(wetland)
    assert float(spread.where(flagged).mean()) > float(spread.where(~flagged).mean())
    assert float(maps["extrapolated_fraction"].where(east & (maps["wetland"] > 0)).mean()) > 0.5


def _poisoned(block, tile, block_info=None):
    """Pass blocks through, but fail if the given tile is ever read."""
    if tuple(block_info[0]["chunk-location"][1:]) == tile:
        raise AssertionError("the drivers of a tile without wetland were read")
    return block


def test_tiles_without_wetland_are_never_read(small_region, model_folders, tmp_path):
    cube = small_region.cube.chunk({"time": -1, "y": 4, "x": 4})
    mask = small_region.mask.chunk({"y": 4, "x": 4})
    dry = ~(mask["wetland"] > 0).coarsen(y=4, x=4).any().values
    assert dry.any() and not dry.all()
    i, j = (int(v) for v in np.argwhere(dry)[0])
    for name in cube.data_vars:
        data = cube[name].data
        cube[name] = cube[name].copy(data=data.map_blocks(_poisoned, tile=(i, j), dtype=data.dtype))
    maps = open_store(write_store(flux_maps(cube, mask, model_folders), tmp_path / "maps.zarr"))
    assert np.isnan(maps["GPP"].values[:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]).all()
    assert np.isfinite(maps["GPP"].where(maps["wetland"] > 0).values[-1]).any()


def test_batch_size_follows_the_device():
    assert default_batch_size("cpu") == 2048  # fastest on CPU: the batch stays in cache
    assert default_batch_size(torch.device("cuda", 1)) == 16384
    assert default_batch_size("mps") == 2048  # any other device: the CPU's


def test_maps_are_bit_identical_whatever_the_threads_and_tiles(
    small_region, model_folders, tmp_path
):
    maps = {}
    for workers, tile in ((1, 8), (2, 8), (2, 5)):
        cube = small_region.cube.chunk({"time": -1, "y": tile, "x": tile})
        mask = small_region.mask.chunk({"y": tile, "x": tile})
        with dask.config.set(scheduler="threads", num_workers=workers):
            path = write_store(
                flux_maps(cube, mask, model_folders),  # batches group the pixels of a tile
                tmp_path / f"maps-{workers}-{tile}.zarr",
                resume=True,
            )
        maps[workers, tile] = open_store(path).load()
    reference = maps[1, 8]
    for key, other in maps.items():
        for name in ("GPP", "RE", "NEE", "GPP_std", "doa_distance", "extrapolated_fraction"):
            np.testing.assert_array_equal(
                other[name].values, reference[name].values, err_msg=f"{name} {key}"
            )


def test_models_of_ecosystems_absent_from_the_mask_do_not_delay_the_maps(inputs, model_folders):
    cube, mask = inputs
    codes = mask[WETLAND]
    only_saltmarsh = mask.assign({WETLAND: codes.where(codes != ECOSYSTEM_CODES["mangrove"], 0)})
    maps = flux_maps(cube, only_saltmarsh, model_folders)  # mangrove's L = 3, saltmarsh's 2
    assert maps.attrs["valid_from"] == f"{pd.Timestamp(cube['time'].values[1]):%Y-%m-%d}"
    second_month = maps["GPP"].isel(time=1).where(only_saltmarsh[WETLAND] > 0)
    assert int(second_month.count()) == int((only_saltmarsh[WETLAND] > 0).sum()) > 0


def test_predict_with_a_geotiff_mask(small_region, model_folders, tmp_path):
    import upscale
    from upscale.demo_region import write_demo_region
    from upscale.io.stores import open_maps

    inputs = write_demo_region(small_region, tmp_path / "inputs")
    small_region.mask[WETLAND].rio.to_raster(tmp_path / "wetland.tif")  # with scale/offset tags
    models = [model_folders["mangrove"], model_folders["saltmarsh"]]
    maps = open_maps(upscale.predict(inputs.cube, tmp_path / "wetland.tif", models, tmp_path / "m"))
    wetland = small_region.mask[WETLAND].values > 0
    assert (maps[WETLAND].values == small_region.mask[WETLAND].values).all()
    assert np.isfinite(maps["GPP"].isel(time=-1).values[wetland]).all()


@pytest.mark.parametrize(
    ("driver", "change", "shown"),
    [("NDVI", lambda v: np.full_like(v, -9999), "-9999.."), ("TA", lambda v: v + 273.15, "")],
    ids=["unmasked-nodata", "kelvin-as-degC"],
)
def test_implausible_driver_at_a_wetland_pixel_is_an_error(
    inputs, model_folders, small_region, tmp_path, driver, change, shown
):
    cube, mask = inputs
    rows, cols = np.nonzero(small_region.mask[WETLAND].values == 1)
    values = cube[driver].load().copy()
    values[:, rows[0], cols[0]] = change(values[:, rows[0], cols[0]])
    cube = cube.assign({driver: values.chunk({"y": 8, "x": 8})})
    with pytest.raises(
        InvalidCubeError, match=f"driver {driver} ranges {shown}.*outside the plausible"
    ):
        write_store(flux_maps(cube, mask, model_folders), tmp_path / "maps.zarr")
