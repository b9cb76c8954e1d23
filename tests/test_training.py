import numpy as np
import pandas as pd
import pytest
import torch

from upscale.errors import SiteDataError
from upscale.samples import SiteSeries, extract_site_series, site_pixels
from upscale.schema import DEFAULT_FEATURES, TARGETS
from upscale.sites import SiteData
from upscale.training import TrainConfig, cross_validate, fit, split_sites


def site_data(region) -> SiteData:
    frames = [rec.reset_index().assign(site_id=site) for site, rec in region.tower_records.items()]
    return SiteData(meta=region.sites, fluxes=pd.concat(frames, ignore_index=True))


@pytest.fixture(scope="module")
def series(small_region) -> SiteSeries:
    return extract_site_series(small_region.cube, site_data(small_region), DEFAULT_FEATURES)


QUICK = TrainConfig(epochs=15, patience=5, hyperparameters={"hidden": 16, "layers": 1}, folds=3)


def test_site_series_align_with_cube_pixels(small_region, series):
    assert series.drivers.shape == (7, 48, 10)
    assert series.fluxes.shape == (7, 48, 3)
    rows, cols = site_pixels(small_region.cube, small_region.sites.sort_index())
    lai = small_region.cube["LAI"].values[:, rows[0], cols[0]]
    np.testing.assert_array_equal(series.drivers[0, :, 0], lai)
    record = small_region.tower_records[series.site_ids[0]]
    month = record["GPP"].first_valid_index()
    t = series.times.get_loc(month)
    assert series.fluxes[0, t, 0] == pytest.approx(record.loc[month, "GPP"])


def test_site_outside_the_cube(small_region):
    data = site_data(small_region)
    meta = data.meta.copy()
    meta.loc[meta.index[0], "lat"] = 40.0
    with pytest.raises(
        SiteDataError, match=f"outside the cube extent: {meta.index[0]} \\(40.0000 N"
    ):
        extract_site_series(small_region.cube, SiteData(meta, data.fluxes), DEFAULT_FEATURES)


def test_site_folds_partition_the_sites():
    sites = [f"S{i}" for i in range(9)]
    folds = split_sites(sites, 4, seed=3)
    assert sorted(s for f in folds for s in f) == sorted(sites)
    assert all(len(f) in (2, 3) for f in folds)
    assert folds == split_sites(list(reversed(sites)), 4, seed=3)


def test_fit_is_deterministic_and_holds_out_towers(series, small_region):
    mangroves = series.of_ecosystem("mangrove")
    a = fit(mangroves, QUICK, name="a", ecosystem="mangrove")
    b = fit(mangroves, QUICK, name="b", ecosystem="mangrove")
    for key, value in a.net.state_dict().items():
        torch.testing.assert_close(value, b.net.state_dict()[key], rtol=0, atol=0)
    assert set(a.card.validation_sites).isdisjoint(a.card.training_sites)
    assert sorted(a.card.validation_sites + a.card.training_sites) == mangroves.site_ids
    assert a.card.features == list(DEFAULT_FEATURES)
    assert a.card.hyperparameters == {"hidden": 16, "layers": 1, "dropout": 0.0}
    first = min(
        record["GPP"].first_valid_index()
        for site, record in small_region.tower_records.items()
        if site in a.card.training_sites
    )
    assert a.card.training_period[0] == f"{first:%Y-%m}"
    assert a.card.targets == list(TARGETS)


def test_training_learns(series):
    mangroves = series.of_ecosystem("mangrove")
    config = TrainConfig(epochs=60, patience=60, hyperparameters={"hidden": 16, "layers": 1})
    model = fit(mangroves, config, name="m", ecosystem="mangrove")
    predictions = model.predict_series(torch.from_numpy(mangroves.drivers)).numpy()
    observed = mangroves.fluxes[:, config.memory - 1 :, 0]
    valid = np.isfinite(observed)
    r = np.corrcoef(observed[valid], predictions[..., 0][valid])[0, 1]
    assert r > 0.8


def test_cross_validation_predicts_every_tower_out_of_fold(series):
    saltmarsh = series.of_ecosystem("saltmarsh")
    metrics, predictions = cross_validate(saltmarsh, QUICK, ecosystem="saltmarsh")
    assert set(metrics) == set(TARGETS)
    assert set(metrics["GPP"]) == {"all", "across_sites", "seasonal", "anomalies"}
    assert metrics["GPP"]["all"]["n"] == int(
        np.isfinite(saltmarsh.fluxes[:, QUICK.memory - 1 :, 0]).sum()
    )
    assert np.isnan(predictions[:, : QUICK.memory - 1]).all()
    assert np.isfinite(predictions[:, QUICK.memory - 1 :]).all()
