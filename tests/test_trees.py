"""The boosted-trees baseline: grown on the nets' windows, saved unpickled, explained exactly."""

import json
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from upscale.engine.shap_maps import _background, shap_maps
from upscale.engine.tiles import flux_maps
from upscale.errors import InvalidConfigError, InvalidModelError
from upscale.io.stores import open_store, write_store
from upscale.learn.artifact import CARD, TREES, Member, MemberCard, load_model, save_model
from upscale.learn.attribution import explain_model, explain_towers
from upscale.learn.nets import architecture_versions, build_net, is_tree_ensemble
from upscale.learn.nets.trees import xgboost
from upscale.learn.samples import extract_site_series
from upscale.learn.sweep import run_sweep
from upscale.learn.training import TrainConfig, fit_member, train_ensemble
from upscale.learn.tree_shap import member_tree_shap, tree_shap
from upscale.schema import DEFAULT_FEATURES

from .conftest import untrained_model
from .test_artifact import _Payload
from .test_training import site_data

TREES_ARCH = "xgboost"
SMALL = {"trees": 60, "depth": 3}


def lagged_target(n=600, memory=4, features=3, lag=2, seed=0):
    """Windows whose only signal is feature 0 ``lag`` months before the last month."""
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randn(n, memory, features, generator=generator)
    fluxes = torch.stack([windows[:, -1 - lag, 0], -windows[:, -1 - lag, 0]], dim=1)
    return windows, fluxes


def grown(memory=4, features=3, lag=2, seed=0, **hyper):
    net = build_net(TREES_ARCH, n_features=features, n_targets=2, memory=memory, **(SMALL | hyper))
    windows, fluxes = lagged_target(memory=memory, features=features, lag=lag, seed=seed)
    ones = torch.ones_like(fluxes)
    kept = net.fit(
        (windows[:400], fluxes[:400], ones[:400]),
        (windows[400:], fluxes[400:], ones[400:]),
        patience=10,
        seed=seed,
    )
    return net, kept, windows[400:], fluxes[400:]


def test_the_registry_knows_the_trees_as_trees():
    assert is_tree_ensemble(TREES_ARCH)
    assert not is_tree_ensemble("lstm")
    assert architecture_versions(TREES_ARCH).keys() == {"xgboost"}


def test_trees_learn_a_lagged_driver():
    net, kept, windows, fluxes = grown()
    with torch.no_grad():
        predicted = net(windows)
    assert predicted.shape == fluxes.shape
    for k in range(2):
        assert np.corrcoef(predicted[:, k], fluxes[:, k])[0, 1] > 0.95
        assert 1 <= kept[k] <= SMALL["trees"]


def test_the_same_seed_grows_the_same_trees():
    a, _, windows, _ = grown(seed=3)
    b, _, _, _ = grown(seed=3)
    assert a.to_ubjson() == b.to_ubjson()
    torch.testing.assert_close(a(windows), b(windows), rtol=0, atol=0)


def test_early_stopping_keeps_the_best_round():
    """With validation fluxes of pure noise, the trees stop long before their maximum."""
    net = build_net(TREES_ARCH, n_features=3, n_targets=1, memory=2, trees=400, depth=3)
    windows, fluxes = lagged_target(memory=2, lag=1)
    noise = torch.randn(200, 1, generator=torch.Generator().manual_seed(1))
    ones = torch.ones(600, 1)
    kept = net.fit(
        (windows[:400], fluxes[:400, :1], ones[:400]),
        (windows[400:], noise, ones[400:]),
        patience=5,
        seed=0,
    )
    assert kept[0] < 50


def test_a_flux_learns_from_the_months_it_was_measured():
    net = build_net(TREES_ARCH, n_features=3, n_targets=2, memory=4, **SMALL)
    windows, fluxes = lagged_target()
    fluxes[::2, 1] = float("nan")  # the second flux measured every other month
    ones = torch.ones_like(fluxes)
    net.fit((windows, fluxes, ones), (windows[:100], fluxes[:100], ones[:100]), patience=5, seed=0)
    with torch.no_grad():
        predicted = net(windows[1::2])
    assert np.corrcoef(predicted[:, 1], fluxes[1::2, 1])[0, 1] > 0.95


def test_unfitted_trees_refuse_to_predict():
    net = build_net(TREES_ARCH, n_features=3, n_targets=2, memory=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        net(torch.randn(2, 4, 3))


def test_the_balance_penalty_is_refused_for_trees():
    with pytest.raises(ValueError, match="nee_mode 'penalty' is a loss term"):
        TrainConfig(architecture=TREES_ARCH, nee_mode="penalty")
    assert TrainConfig(architecture=TREES_ARCH, nee_mode="derived").nee_mode == "derived"


def test_without_xgboost_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)  # what an absent package imports as
    with pytest.raises(InvalidConfigError, match=r"pip install 'upscale\[trees\]'"):
        xgboost()


def test_tree_shap_adds_up_exactly_and_finds_the_lag():
    model = untrained_model("mangrove", memory=4, architecture=TREES_ARCH, nee_mode="derived")
    generator = torch.Generator().manual_seed(4)
    windows = torch.randn(24, 4, 10, generator=generator) * 2 + 5
    background = torch.randn(50, 4, 10, generator=generator) * 2 + 5
    attribution = explain_model(model, windows, background)
    scale = np.abs(attribution.outputs - attribution.expected[:, None]).mean()
    assert np.abs(attribution.completeness_gap()).max() < 1e-4 * scale
    # SHAP is linear: the ensemble's is the mean of the members', derived NEE is RE - GPP's.
    members = torch.stack([tree_shap(model, windows, background, member=m) for m in (0, 1)])
    mean = members.mean(dim=0)
    torch.testing.assert_close(torch.from_numpy(attribution.values[:2]), mean[:2])
    torch.testing.assert_close(torch.from_numpy(attribution.values[2]), mean[1] - mean[0])


def test_tree_shap_puts_the_attribution_on_the_lag_the_trees_use():
    net, _, windows, _ = grown(lag=2)
    card = MemberCard(
        training_sites=["A"],
        validation_sites=["B"],
        held_out_sites=[],
        feature_mean=[0.0] * 3,
        feature_std=[1.0] * 3,
        target_mean=[0.0] * 2,
        target_std=[1.0] * 2,
    )
    values = member_tree_shap(Member(net=net, card=card), windows[:40], windows[40:])
    by_lag = values.abs().mean(dim=1).flip(dims=[1])  # (K, lag, F), lag 0 first
    for k in range(2):  # the rest is the trees' small splits on noise
        assert by_lag[k].argmax() == 2 * 3 + 0
        assert by_lag[k, 2, 0] / by_lag[k].sum() > 0.8


def test_round_trip_through_ubjson_files_listed_by_the_card(tmp_path):
    model = untrained_model("mangrove", memory=3, architecture=TREES_ARCH)
    folder = save_model(model, tmp_path / "m")
    card = json.loads((folder / CARD).read_text())
    files = card["tree_files"]
    assert [(f["member"], f["target"]) for f in files] == [
        (m, t) for m in range(2) for t in card["targets"]
    ]
    for entry in files:
        raw = (folder / entry["path"]).read_bytes()
        assert raw[:1] == b"{" and entry["format"] == "ubjson" and entry["trees"] >= 1
    loaded = load_model(folder)
    assert loaded.card == model.card
    series = torch.randn(3, 14, 10) * 3 + 5
    torch.testing.assert_close(model.predict_members(series), loaded.predict_members(series))


def test_loading_trees_never_unpickles(tmp_path, monkeypatch):
    folder = save_model(untrained_model("mangrove", architecture=TREES_ARCH), tmp_path / "m")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_model(folder).members[1].net.fitted


def test_a_pickle_planted_in_place_of_a_tree_file_is_refused_and_never_runs(tmp_path):
    folder = save_model(untrained_model("mangrove", architecture=TREES_ARCH), tmp_path / "m")
    marker = tmp_path / "payload-ran"
    planted = folder / TREES / "member.1.RE.ubj"
    planted.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(InvalidModelError, match=r"member\.1\.RE\.ubj: not an XGBoost UBJSON"):
        load_model(folder)
    assert not marker.exists()


def test_a_tree_file_swapped_for_another_is_refused(tmp_path):
    folder = save_model(untrained_model("mangrove", architecture=TREES_ARCH), tmp_path / "m")
    trees = folder / TREES
    (trees / "member.0.GPP.ubj").write_bytes((trees / "member.0.RE.ubj").read_bytes())
    with pytest.raises(InvalidModelError, match=r"member\.0\.GPP\.ubj: not the file its card"):
        load_model(folder)


def test_a_card_pointing_outside_its_folder_is_refused(tmp_path):
    folder = save_model(untrained_model("mangrove", architecture=TREES_ARCH), tmp_path / "m")
    card = json.loads((folder / CARD).read_text())
    card["tree_files"][0]["path"] = "../elsewhere.ubj"
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(InvalidModelError, match="elsewhere.ubj: not found"):
        load_model(folder)


@pytest.fixture(scope="module")
def mangroves(small_region):
    series = extract_site_series(small_region.cube, site_data(small_region), DEFAULT_FEATURES)
    return series.of_ecosystem("mangrove")


def test_a_member_is_grown_reproducibly_on_its_learning_towers(mangroves):
    config = TrainConfig(architecture=TREES_ARCH, hyperparameters=SMALL, patience=10, memory=3)
    a, b = fit_member(mangroves, config), fit_member(mangroves, config)
    assert a.net.to_ubjson() == b.net.to_ubjson()
    windows, fluxes, _ = mangroves.trainable_windows(config.memory)
    with torch.no_grad():
        predicted = a.fluxes(windows)
    valid = np.isfinite(fluxes[:, 0].numpy())
    assert np.corrcoef(fluxes[valid, 0], predicted[valid, 0])[0, 1] > 0.8


def test_trees_are_cross_validated_in_the_same_folds_as_the_nets(mangroves):
    trees = TrainConfig(architecture=TREES_ARCH, hyperparameters=SMALL, folds=3, memory=3)
    nets = TrainConfig(epochs=1, hyperparameters={"hidden": 8, "layers": 1}, folds=3, memory=3)
    fitted = train_ensemble(mangroves, trees, name="t", ecosystem="mangrove")
    lstm = train_ensemble(mangroves, nets, name="n", ecosystem="mangrove")
    assert fitted.folds == lstm.folds
    assert [m.card.validation_sites for m in fitted.model.members] == [
        m.card.validation_sites for m in lstm.model.members
    ]
    card = fitted.model.card
    assert card.versions["xgboost"] and card.cv_metrics["GPP"]["all"]["r2"] > 0.5
    assert np.isfinite(fitted.predictions[:, 3:]).any(axis=(0, 2)).all()


@pytest.fixture
def tree_folders(tmp_path):
    """Boosted-trees models of mangrove (L=3) and saltmarsh (L=2) saved as artifacts."""
    mangrove = untrained_model("mangrove", memory=3, architecture=TREES_ARCH)
    saltmarsh = untrained_model("saltmarsh", memory=2, seed=1, architecture=TREES_ARCH)
    return {
        "mangrove": save_model(mangrove, tmp_path / "t-mangrove"),
        "saltmarsh": save_model(saltmarsh, tmp_path / "t-saltmarsh"),
    }


def _pixels(region, model, code):
    rows, cols = np.nonzero(region.mask["wetland"].values == code)
    drivers = np.stack([region.cube[f].values[:, rows, cols] for f in model.card.features])
    return rows, cols, torch.from_numpy(np.ascontiguousarray(drivers.transpose(2, 1, 0)))


def test_the_tile_engine_maps_the_tree_ensemble(small_region, tree_folders, tmp_path):
    cube = small_region.cube.chunk({"time": -1, "y": 8, "x": 8})
    maps = open_store(
        write_store(flux_maps(cube, small_region.mask, tree_folders), tmp_path / "maps.zarr")
    )
    assert maps.rio.crs == cube.rio.crs
    for ecosystem, code in (("mangrove", 1), ("saltmarsh", 2)):
        model = load_model(tree_folders[ecosystem])
        rows, cols, series = _pixels(small_region, model, code)
        members = model.predict_members(series).numpy()
        skip = 3 - model.memory  # every pixel starts at the longest memory (3)
        for k, name in enumerate(model.card.targets):
            got = maps[name].values[2:, rows, cols].T
            np.testing.assert_allclose(got, members.mean(0)[:, skip:, k], rtol=1e-5, atol=1e-6)
            spread = maps[f"{name}_std"].values[2:, rows, cols].T
            np.testing.assert_allclose(
                spread, members.std(0, ddof=1)[:, skip:, k], rtol=1e-4, atol=1e-6
            )


def test_shap_rasters_of_trees_are_their_exact_attributions(small_region, tree_folders):
    shap = shap_maps(
        small_region.cube.chunk({"y": -1, "x": -1}),
        small_region.mask,
        tree_folders,
        months=2,
        background=16,
    ).compute()
    wetland = small_region.mask["wetland"].values > 0
    assert np.isfinite(shap["mean_lag"].values[:, wetland]).all()
    assert np.isnan(shap["mean_lag"].values[:, ~wetland]).all()
    model = load_model(tree_folders["mangrove"])
    rows, cols, series = _pixels(small_region, model, 1)
    windows = torch.stack([series[:, t - 2 : t + 1] for t in (2, 47)], dim=1).reshape(-1, 3, 10)
    phi = tree_shap(model, windows, _background(model, 16, 0)).abs()
    expected = phi.reshape(3, len(rows), 2, 3, 10).mean(2).sum(2)  # (K, P, F)
    got = shap["mean_abs_shap"].values[:, :, rows, cols]
    np.testing.assert_allclose(got, expected.permute(0, 2, 1).numpy(), rtol=1e-4, atol=1e-6)


def test_explain_towers_gives_the_nets_tables_for_trees(mangroves):
    config = TrainConfig(architecture=TREES_ARCH, hyperparameters=SMALL, folds=3, memory=3)
    model = train_ensemble(mangroves, config, name="t", ecosystem="mangrove").model
    explanation = explain_towers(model, mangroves, windows=30, background=20)
    attribution = explanation.attribution
    assert attribution.values.shape == (3, 30, 3, 10)
    assert np.abs(attribution.completeness_gap()).max() < 1e-4
    assert set(explanation.member_lags["member"]) == {0, 1, 2}
    importance = attribution.importance()
    assert set(importance["target"]) == {"GPP", "RE", "NEE"} and importance["rank"].min() == 1
    np.testing.assert_allclose(attribution.memory_profile().sum(axis=1), 1.0, rtol=1e-6)


def test_a_sweep_compares_the_trees_at_every_memory_without_a_penalty_run(mangroves):
    base = TrainConfig(architecture=TREES_ARCH, hyperparameters=SMALL, folds=3, memory=2)
    with ThreadPoolExecutor(1) as pool:
        result = run_sweep(
            mangroves,
            base,
            architectures=[TREES_ARCH],
            memories=[2],
            nee_modes=["direct", "derived", "penalty"],
            executor=pool,
        )
    assert set(result.nee_modes["nee_mode"]) == {"direct", "derived"}
    study = result.study
    assert set(study["architecture"]) == {TREES_ARCH} and set(study["memory"]) == {1, 2}
    assert study.groupby("flux")["chosen"].sum().eq(1).all()
