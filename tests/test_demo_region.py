from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest

from upscale.demo_region import DemoSpec, make_demo_region, write_demo_region
from upscale.io.stores import open_cube, open_mask, open_store
from upscale.schema import DEFAULT_FEATURES, WETLAND
from upscale.towers.sites import read_sites

from .conftest import SMALL_SPEC


def test_same_spec_same_region(small_region):
    again = make_demo_region(SMALL_SPEC)
    for name in small_region.cube.data_vars:
        np.testing.assert_array_equal(again.cube[name].values, small_region.cube[name].values)
    np.testing.assert_array_equal(again.truth["NEE"].values, small_region.truth["NEE"].values)
    assert again.sites.equals(small_region.sites)


def test_region_contents(small_region):
    cube, mask, truth = small_region.cube, small_region.mask, small_region.truth
    assert cube.sizes == {"time": 48, "y": 20, "x": 24}
    assert set(cube.data_vars) == set(DEFAULT_FEATURES)
    assert {1, 2} <= set(np.unique(mask[WETLAND].values))
    wetland = mask[WETLAND].values > 0
    assert np.isfinite(truth["GPP"].values[:, wetland]).all()
    assert np.isnan(truth["GPP"].values[:, ~wetland]).all()
    np.testing.assert_allclose(truth["NEE"], truth["RE"] - truth["GPP"], atol=1e-5)
    assert (truth["GPP"].values[:, wetland] > 0).all()
    assert set(small_region.sites["ecosystem"]) == {"mangrove", "saltmarsh"}


def _best_lag(response, driver, lags=12):
    """Lag (months) at which a driver's past best correlates with a response's anomaly."""
    scores = [np.corrcoef(response[lag:], driver[: len(driver) - lag])[0, 1] for lag in range(lags)]
    return int(np.argmax(scores))


def test_truth_re_remembers_longer_than_gpp():
    region = make_demo_region(
        DemoSpec(ny=12, nx=14, years=10, n_mangrove_sites=2, n_saltmarsh_sites=2)
    )
    wetland = region.mask[WETLAND].values == 1
    gpp = region.truth["GPP"].values[:, wetland].mean(axis=1)
    re = region.truth["RE"].values[:, wetland].mean(axis=1)
    # RE lags GPP through the remembered GPP pool: its peak trails GPP's.
    assert _best_lag(re, gpp) >= 1
    assert _best_lag(gpp, gpp) == 0


def test_the_salinity_truth_is_another_process_on_the_same_drivers(small_region):
    other = make_demo_region(replace(SMALL_SPEC, process="salinity"))
    for name in small_region.cube.data_vars:  # the same drivers, towers and mask
        np.testing.assert_array_equal(other.cube[name].values, small_region.cube[name].values)
    wetland = other.mask[WETLAND].values > 0
    gpp, re = (other.truth[k].values[:, wetland] for k in ("GPP", "RE"))
    assert np.isfinite(gpp).all() and (gpp > 0).all() and (re > 0).all()
    np.testing.assert_allclose(
        other.truth["NEE"], other.truth["RE"] - other.truth["GPP"], atol=1e-5
    )
    light_use = small_region.truth["GPP"].values[:, wetland]
    assert np.corrcoef(gpp.ravel(), light_use.ravel())[0, 1] < 0.9  # not a rescaled copy


def test_an_unknown_process_model_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown process model 'bucket'; choose one of light_use"):
        DemoSpec(process="bucket")


def test_written_region_reads_back_through_the_public_readers(small_region, tmp_path):
    paths = write_demo_region(small_region, tmp_path)
    cube = open_cube(paths.cube)
    assert cube.rio.crs.to_epsg() == 4326
    mask = open_mask(paths.mask, cube)
    assert int((mask[WETLAND] > 0).sum()) == int((small_region.mask[WETLAND] > 0).sum())
    assert open_store(paths.truth)["GPP"].attrs["units"] == "gC m-2 d-1"
    sites = read_sites(paths.sites)
    assert sorted(sites.meta.index) == sorted(small_region.tower_records)
    one = small_region.tower_records["ZZ-Mg1"]["GPP"].dropna()
    read = sites.fluxes.set_index(["site_id", "time"]).loc["ZZ-Mg1", "GPP"]
    qc_ok = small_region.tower_records["ZZ-Mg1"]["NEE_QC"] >= 0.5
    np.testing.assert_allclose(read.dropna(), one[qc_ok.reindex(one.index)], rtol=1e-4)
    assert gpd.read_file(paths.regions)["name"].tolist() == small_region.regions["name"].tolist()
    assert len(list(paths.sites.glob("FLX_ZZ-*_FLUXNET2015_SUBSET_MM_*.csv"))) == 7


def test_shipped_regions_file_matches_the_generator():
    shipped = gpd.read_file(
        __import__("pathlib").Path(__file__).resolve().parents[1] / "regions" / "demo.geojson"
    )
    generated = make_demo_region(SMALL_SPEC).regions
    assert shipped["name"].tolist() == generated["name"].tolist()
    assert all(
        a.equals_exact(b, 1e-9) for a, b in zip(shipped.geometry, generated.geometry, strict=True)
    )


def test_wetland_inventory_gives_back_the_mask_codes(small_region, tmp_path):
    """The shipped polygons, put back on the grid by `upscale mask`, give the mask's codes.

    Only the codes: the polygons are whole pixels, so partial cover becomes 1.
    """
    import upscale

    paths = upscale.demo_inputs(tmp_path / "inputs", spec=SMALL_SPEC)
    polygons = gpd.read_file(paths.wetlands)
    assert sorted(polygons["ecosystem"]) == ["mangrove", "saltmarsh"]
    rebuilt = upscale.mask(paths.cube, tmp_path / "again.zarr", vectors=[paths.wetlands])
    again = open_mask(rebuilt.path, open_cube(paths.cube))
    np.testing.assert_array_equal(again[WETLAND].values, small_region.mask[WETLAND].values)
    assert rebuilt.picture.exists()
