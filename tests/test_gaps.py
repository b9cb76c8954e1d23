import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import upscale
from upscale.demo_region import write_demo_region
from upscale.drivers.gaps import FILLED, fill_gaps, gap_summary
from upscale.io.stores import open_maps, write_store
from upscale.learn.training import TrainConfig


def series_cube(values, variable="NDVI"):
    times = pd.date_range("2015-01", periods=len(values), freq="MS")
    data = np.asarray(values, "float32")[:, None, None] * np.ones((1, 1, 2), "float32")
    data[:, 0, 1] = np.nan  # a pixel never observed (open water)
    cube = xr.Dataset({variable: (("time", "y", "x"), data)}, coords={"time": times})
    cube[variable].attrs = {"units": "1"}
    return cube


def test_short_gaps_are_interpolated_and_long_ones_take_the_climatology():
    months = np.arange(36)
    truth = 0.5 + 0.3 * np.sin(2 * np.pi * months / 12)
    holes = truth.copy()
    holes[[5]] = np.nan  # one month: interpolated
    holes[14:18] = np.nan  # four months: the same calendar months of the other years
    filled = fill_gaps(series_cube(holes), max_interpolated=2)
    ndvi = filled["NDVI"].values[:, 0, 0]
    assert ndvi[5] == pytest.approx((truth[4] + truth[6]) / 2, rel=1e-6)
    for month in range(14, 18):
        assert ndvi[month] == pytest.approx(truth[month], rel=1e-5)  # same sine each year
    flag = filled[FILLED].values[:, 0, 0]
    np.testing.assert_array_equal(np.flatnonzero(flag), [5, 14, 15, 16, 17])
    assert filled["NDVI_gap_fraction"].values[0, 0] == pytest.approx(5 / 36)
    assert np.isnan(filled["NDVI"].values[:, 0, 1]).all()  # nothing to fill from: stays NaN
    assert filled["NDVI"].attrs == {"units": "1"}


def test_a_calendar_month_never_observed_is_bridged():
    values = np.linspace(0.2, 0.8, 24)
    values[[3, 15]] = np.nan  # April of both years
    values[[2, 4, 14, 16]] = np.nan  # and its neighbours: gaps of 3, longer than 2
    filled = fill_gaps(series_cube(values), max_interpolated=2)["NDVI"].values[:, 0, 0]
    assert np.isfinite(filled).all()
    truth = np.linspace(0.2, 0.8, 24)
    np.testing.assert_allclose(filled[[3, 15]], truth[[3, 15]], rtol=1e-5)  # linear: exact


def test_gaps_at_the_ends_are_held_over_short_runs():
    values = np.r_[np.nan, np.linspace(0.3, 0.6, 22), np.nan]
    filled = fill_gaps(series_cube(values))["NDVI"].values[:, 0, 0]
    assert filled[0] == pytest.approx(0.3) and filled[-1] == pytest.approx(0.6)


@pytest.mark.slow
def test_cloudy_cube_trains_and_predicts_without_nan(small_region, tmp_path):
    """30 % of optical values missing: filled, flagged, learnt from, and mapped."""
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    rng = np.random.default_rng(3)
    cloudy = small_region.cube.copy()
    optical = ["LAI", "FAPAR", "NDVI", "EVI", "LST_DAY", "LST_NIGHT"]
    towers = small_region.cube.sel(
        x=small_region.sites["lon"].to_xarray(),
        y=small_region.sites["lat"].to_xarray(),
        method="nearest",
    )
    at_tower = xr.zeros_like(cloudy["LAI"].isel(time=0), dtype=bool)
    at_tower.loc[{"y": towers["y"].values, "x": towers["x"].values}] = True
    for name in optical:  # clouds everywhere but at the towers: FILLED is 0 there
        clouds = (rng.random(cloudy[name].shape) < 0.3) & ~at_tower.values
        cloudy[name] = cloudy[name].where(~clouds)
    filled = fill_gaps(cloudy)
    assert all(0.27 < gap_summary(filled)[name] < 0.32 for name in optical)
    cube = write_store(filled, tmp_path / "cloudy.zarr")
    config = TrainConfig(memory=3, epochs=3, folds=3, reference_windows=50)
    trained = upscale.train(
        inputs.sites, cube, tmp_path / "models", config=config, status=lambda line: None
    )
    card = (trained.models["mangrove"] / "card.json").read_text()
    assert f'"{FILLED}"' in card  # the models read which values were filled
    maps_path = upscale.predict(
        cube, inputs.mask, list(trained.models.values()), tmp_path / "maps.zarr"
    )
    maps = open_maps(maps_path)
    valid = maps.sel(time=slice(maps.attrs["valid_from"], None))
    wetland = maps["wetland"] > 0
    for flux in ("GPP", "RE", "NEE"):
        assert not bool(valid[flux].where(wetland).isnull().where(wetland, False).any())
    provenance = json.loads(maps.attrs["input_gap_fraction"])  # over wetland pixels
    assert set(provenance) == set(optical) and all(0.2 < v < 0.32 for v in provenance.values())
    # The flag never varies at the towers: filled pixels must not look like extrapolation.
    assert float(maps["extrapolated_fraction"].where(wetland).mean()) < 0.5
