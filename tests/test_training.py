import numpy as np
import pandas as pd
import pytest
import torch

from upscale.errors import InvalidTowerDataError
from upscale.learn.samples import SiteSeries, extract_site_series
from upscale.learn.training import (
    TrainConfig,
    fit_member,
    site_folds,
    split_sites,
    train_ensemble,
)
from upscale.schema import DEFAULT_FEATURES, TARGETS
from upscale.towers.pixels import site_pixels
from upscale.towers.sites import SiteData


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
        InvalidTowerDataError, match=f"outside the cube extent: {meta.index[0]} \\(40.0000 N"
    ):
        extract_site_series(small_region.cube, SiteData(meta, data.fluxes), DEFAULT_FEATURES)


def test_site_folds_partition_the_sites():
    sites = [f"S{i}" for i in range(9)]
    folds = split_sites(sites, 4, seed=3)
    assert sorted(s for f in folds for s in f) == sorted(sites)
    assert all(len(f) in (2, 3) for f in folds)
    assert folds == split_sites(list(reversed(sites)), 4, seed=3)
    singles = [[s] for s in sites]
    assert site_folds(singles, TrainConfig(cv="loso")) == singles
    assert site_folds(singles, TrainConfig(folds=4, seed=3)) == folds
    # Towers sharing a pixel stay in one fold.
    paired = [["S0", "S1"], *[[s] for s in sites[2:]]]
    for fold in site_folds(paired, TrainConfig(folds=4, seed=3)):
        assert ("S0" in fold) == ("S1" in fold)
    assert ["S0", "S1"] in site_folds(paired, TrainConfig(cv="loso"))


def test_towers_in_one_pixel_never_straddle_training_and_held_out(series):
    """A twin of a held-out tower in training would leak its drivers into the score."""
    from dataclasses import replace

    mangroves = series.of_ecosystem("mangrove")
    drivers = mangroves.drivers.copy()
    drivers[1] = drivers[0]  # the second tower moves into the first one's pixel
    twins = replace(mangroves, drivers=drivers)
    assert [mangroves.site_ids[0], mangroves.site_ids[1]] in twins.pixel_groups()
    fitted = train_ensemble(twins, QUICK, name="m", ecosystem="mangrove")
    for member in fitted.model.card.members:
        for group in ([mangroves.site_ids[0], mangroves.site_ids[1]],):
            sets = [member.training_sites, member.validation_sites, member.held_out_sites]
            assert sum(bool(set(group) & set(s)) for s in sets) == 1


def test_fit_member_is_deterministic(series, small_region):
    mangroves = series.of_ecosystem("mangrove")
    a = fit_member(mangroves, QUICK)
    b = fit_member(mangroves, QUICK)
    for key, value in a.net.state_dict().items():
        torch.testing.assert_close(value, b.net.state_dict()[key], rtol=0, atol=0)
    assert set(a.card.validation_sites).isdisjoint(a.card.training_sites)
    assert sorted(a.card.validation_sites + a.card.training_sites) == mangroves.site_ids


def test_a_member_learns(series):
    mangroves = series.of_ecosystem("mangrove")
    config = TrainConfig(epochs=60, patience=60, hyperparameters={"hidden": 16, "layers": 1})
    member = fit_member(mangroves, config)
    windows, fluxes, _ = mangroves.trainable_windows(config.memory)
    with torch.no_grad():
        predicted = member.denormalise(member.net(member.normalise(windows)))[:, 0].numpy()
    valid = np.isfinite(fluxes[:, 0].numpy())
    assert np.corrcoef(fluxes[:, 0].numpy()[valid], predicted[valid])[0, 1] > 0.8


@pytest.fixture(scope="module")
def saltmarsh_fit(series):
    return train_ensemble(series.of_ecosystem("saltmarsh"), QUICK, name="s", ecosystem="saltmarsh")


def test_no_tower_is_both_trained_on_and_scored(series, saltmarsh_fit):
    saltmarsh = series.of_ecosystem("saltmarsh")
    members = saltmarsh_fit.model.card.members
    assert len(members) == 3
    assert sorted(s for m in members for s in m.held_out_sites) == saltmarsh.site_ids
    for member in members:
        seen = set(member.training_sites) | set(member.validation_sites)
        assert seen.isdisjoint(member.held_out_sites)
        assert seen | set(member.held_out_sites) == set(saltmarsh.site_ids)


def test_held_out_predictions_and_metrics(series, saltmarsh_fit):
    saltmarsh = series.of_ecosystem("saltmarsh")
    metrics = saltmarsh_fit.model.card.cv_metrics
    predictions = saltmarsh_fit.predictions
    assert set(metrics) == set(TARGETS)
    assert set(metrics["GPP"]) == {"all", "across_sites", "seasonal", "anomalies"}
    measured = np.isfinite(saltmarsh.fluxes[:, QUICK.memory - 1 :, 0])
    assert metrics["GPP"]["all"]["n"] == int(measured.sum())
    assert np.isnan(predictions[:, : QUICK.memory - 1]).all()
    assert np.isfinite(predictions[:, QUICK.memory - 1 :]).all()
    # Each tower's prediction is its own fold's member's.
    model = saltmarsh_fit.model
    every = model.predict_members(torch.from_numpy(saltmarsh.drivers)).numpy()
    for number, fold in enumerate(saltmarsh_fit.folds):
        rows = [saltmarsh.site_ids.index(s) for s in fold]
        np.testing.assert_array_equal(predictions[rows, QUICK.memory - 1 :], every[number, rows])
    assert model.card.cv_scheme == "3-fold by site, seed 0"


def test_rerun_gives_the_same_metrics(series, saltmarsh_fit):
    again = train_ensemble(series.of_ecosystem("saltmarsh"), QUICK, name="s", ecosystem="saltmarsh")
    assert again.model.card.cv_metrics == saltmarsh_fit.model.card.cv_metrics


@pytest.mark.parametrize("mode", ["derived", "penalty"])
def test_carbon_balance_modes(series, mode):
    saltmarsh = series.of_ecosystem("saltmarsh")
    config = QUICK.model_copy(update={"nee_mode": mode, "balance_weight": 5.0})
    fitted = train_ensemble(saltmarsh, config, name="s", ecosystem="saltmarsh")
    direct = train_ensemble(saltmarsh, QUICK, name="s", ecosystem="saltmarsh")
    gap = {
        name: np.nanmean(
            np.abs(f.predictions[..., 2] - (f.predictions[..., 1] - f.predictions[..., 0]))
        )
        for name, f in (("mode", fitted), ("direct", direct))
    }
    if mode == "derived":
        assert gap["mode"] < 1e-5
    else:
        assert gap["mode"] < 0.5 * gap["direct"]
    assert fitted.model.card.nee_mode == mode


def test_domain_of_applicability(series, saltmarsh_fit):
    saltmarsh = series.of_ecosystem("saltmarsh")
    model = saltmarsh_fit.model
    assert model.card.domain.threshold > 0
    at_towers = model.domain_distance(torch.from_numpy(saltmarsh.drivers)).numpy()
    assert np.median(at_towers) < 0.5  # tower windows are in the reference set
    shifted = saltmarsh.drivers.copy()
    shifted[..., DEFAULT_FEATURES.index("TA")] += 8.0  # a climate no tower has seen
    far = model.domain_distance(torch.from_numpy(shifted)).numpy()
    assert (far > 1).mean() > 0.9


def test_spread_is_larger_at_towers_left_out(series):
    mangroves = series.of_ecosystem("mangrove")
    kept = mangroves.subset(mangroves.site_ids[1:])  # the first tower is left out
    config = TrainConfig(
        epochs=40, patience=10, hyperparameters={"hidden": 16, "layers": 1}, cv="loso"
    )
    model = train_ensemble(kept, config, name="m", ecosystem="mangrove").model
    spread = model.predict_members(torch.from_numpy(mangroves.drivers)).numpy().std(axis=0)
    assert spread[0].mean() > spread[1:].mean()


def test_memoryless_series_keeps_the_measured_months(series):
    from upscale.learn.training import memoryless_series

    saltmarsh = series.of_ecosystem("saltmarsh")
    null = memoryless_series(saltmarsh, QUICK, ecosystem="saltmarsh")
    np.testing.assert_array_equal(np.isfinite(null.fluxes), np.isfinite(saltmarsh.fluxes))
    np.testing.assert_array_equal(null.drivers, saltmarsh.drivers)
    valid = np.isfinite(saltmarsh.fluxes[..., 0])
    # A no-memory model of the same drivers follows the fluxes closely, but is not them.
    r = np.corrcoef(null.fluxes[..., 0][valid], saltmarsh.fluxes[..., 0][valid])[0, 1]
    assert 0.5 < r < 1.0


def test_features_constant_at_the_towers_keep_unit_scale():
    from upscale.learn.training import feature_scale

    flat = np.column_stack([np.linspace(0, 10, 50), np.zeros(50), np.full(50, 300.0)])
    scale = feature_scale(flat)
    assert scale[0] == pytest.approx(np.linspace(0, 10, 50).std(), rel=1e-5)
    np.testing.assert_array_equal(scale[1:], [1.0, 1.0])


def test_a_target_no_tower_has_is_refused_before_training(series):
    from dataclasses import replace

    from upscale.api._towers import require_towers

    fluxes = series.fluxes.copy()
    fluxes[..., list(series.targets).index("NEE")] = np.nan  # a tidy CSV without NEE
    with pytest.raises(InvalidTowerDataError, match="towers: no saltmarsh tower has NEE values"):
        require_towers(replace(series, fluxes=fluxes), "towers", ["saltmarsh"], QUICK)


def test_implausible_driver_at_a_tower_is_refused(small_region):
    data = site_data(small_region)
    site = data.meta.index[0]
    rows, cols = site_pixels(small_region.cube, data.meta.loc[[site]])
    ndvi = small_region.cube["NDVI"].copy()
    ndvi[:3, rows[0], cols[0]] = -9999  # a nodata value stored as a number
    cube = small_region.cube.assign(NDVI=ndvi)
    with pytest.raises(
        InvalidTowerDataError, match=f"NDVI ranges -9999.* at the pixel of site {site}"
    ):
        extract_site_series(cube, data, DEFAULT_FEATURES)
