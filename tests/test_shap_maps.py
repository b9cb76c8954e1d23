import json

import numpy as np
import torch
from rio_cogeo.cogeo import cog_validate

from upscale.engine.shap_maps import _background, export_shap_cogs, shap_maps
from upscale.io.stores import open_store, write_store
from upscale.learn.artifact import load_model
from upscale.learn.attribution import expected_gradients

from .helpers import raise_if_dask_computes


def test_rasters_shapes_names_and_crs(small_region, model_folders, tmp_path):
    cube = small_region.cube.chunk({"y": 8, "x": 8})
    with raise_if_dask_computes(max_computes=1):  # the 2-D mask: which ecosystems are there
        lazy = shap_maps(cube, small_region.mask, model_folders, months=3, samples=8)
    shap = open_store(write_store(lazy, tmp_path / "shap.zarr"))
    assert shap.rio.crs == cube.rio.crs
    assert shap["mean_abs_shap"].dims == ("target", "feature", "y", "x")
    assert list(shap["target"].values) == ["GPP", "RE", "NEE"]
    assert list(shap["feature"].values) == list(small_region.cube.data_vars)
    wetland = small_region.mask["wetland"].values > 0
    for name in ("mean_abs_shap", "dominant_driver", "mean_lag"):
        values = shap[name].values
        assert np.isfinite(values[..., wetland]).all() and np.isnan(values[..., ~wetland]).all()
    np.testing.assert_array_equal(
        shap["dominant_driver"].values[:, wetland],
        shap["mean_abs_shap"].values[:, :, wetland].argmax(axis=1),
    )
    assert (shap["mean_lag"].values[:, wetland] <= 2).all()  # memories 3 and 2
    assert json.loads(shap.attrs["sampled_months"]) == ["2010-03", "2012-01", "2013-12"]
    assert shap.attrs["samples"] == 8


def test_rasters_equal_the_attribution_of_the_same_windows(small_region, model_folders, tmp_path):
    """One tile: the raster is the batched estimator on the pixels' windows, summarised."""
    shap = shap_maps(
        small_region.cube.chunk({"y": -1, "x": -1}),
        small_region.mask,
        model_folders,
        months=2,
        samples=8,
        background=16,
    ).compute()
    model = load_model(model_folders["mangrove"])
    rows, cols = np.nonzero(small_region.mask["wetland"].values == 1)
    drivers = np.stack([small_region.cube[f].values[:, rows, cols] for f in model.card.features])
    series = torch.from_numpy(np.ascontiguousarray(drivers.transpose(2, 1, 0)))
    months = [2, 47]
    windows = torch.stack([series[:, t - 2 : t + 1] for t in months], dim=1).reshape(-1, 3, 10)
    phi = expected_gradients(
        model.ensemble_fluxes, windows, _background(model, 16, 0), samples=8, seed=0
    ).abs()
    expected = phi.reshape(3, len(rows), 2, 3, 10).mean(2).sum(2)  # (K, P, F)
    got = shap["mean_abs_shap"].values[:, :, rows, cols]
    np.testing.assert_allclose(got, expected.permute(0, 2, 1).numpy(), rtol=1e-4, atol=1e-6)


def test_shap_cogs_validate_with_band_names(small_region, model_folders, tmp_path):
    import rasterio

    shap = shap_maps(
        small_region.cube.chunk({"y": 8, "x": 8}),
        small_region.mask,
        model_folders,
        months=2,
        samples=4,
    )
    paths = export_shap_cogs(
        write_store(shap, tmp_path / "s.zarr") and open_store(tmp_path / "s.zarr"),
        tmp_path / "cogs",
    )
    assert sorted(p.name for p in paths) == sorted(
        ["shap_GPP.tif", "shap_RE.tif", "shap_NEE.tif", "mean_lag.tif", "dominant_driver.tif"]
    )
    for path in paths:
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
    with rasterio.open(tmp_path / "cogs" / "shap_GPP.tif") as src:
        assert src.descriptions[0] == "GPP LAI" and src.count == 10
        assert src.crs.to_epsg() == 4326
    with rasterio.open(tmp_path / "cogs" / "dominant_driver.tif") as src:
        assert src.tags()["flag_meanings"].split()[0] == "LAI"
        assert src.descriptions == (
            "dominant_driver GPP",
            "dominant_driver RE",
            "dominant_driver NEE",
        )


def test_a_chosen_period(small_region, model_folders):
    import pytest

    from upscale.errors import InvalidCubeError

    shap = shap_maps(
        small_region.cube.chunk({"y": 8, "x": 8}),
        small_region.mask,
        model_folders,
        months=3,
        period=("2011-01", "2011-12"),
        samples=4,
    )
    assert json.loads(shap.attrs["sampled_months"]) == ["2011-01", "2011-07", "2011-12"]
    with pytest.raises(InvalidCubeError, match="no month of 2030-01..2030-12 has a full window"):
        shap_maps(
            small_region.cube, small_region.mask, model_folders, period=("2030-01", "2030-12")
        )
