"""Site-level studies with no cube: features from the towers' own tables, temporal CV,
the study's table, tower uncertainty as noise ceiling and loss weight."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.errors import InvalidTowerDataError
from upscale.learn.metrics import skill
from upscale.learn.samples import SiteSeries, tower_site_series
from upscale.learn.training import TrainConfig, split_months, train_ensemble, uncertainty_weights
from upscale.schema import uncertainty_name
from upscale.towers.sites import read_sites

runner = CliRunner()
MARSHES = {  # five tidal marshes a continent apart: each its own climate and record
    "US-Mar": (38.1, -121.6, "2012-01", 84),
    "US-Sav": (31.4, -81.3, "2013-07", 72),
    "CA-Bay": (45.9, -64.3, "2011-03", 96),
    "US-Plm": (42.7, -70.8, "2014-01", 60),
    "US-Edn": (29.5, -94.7, "2012-05", 78),
}


def marsh_table(seed: int = 0, *, uncertainty: bool = True) -> pd.DataFrame:
    """Monthly tidy records of the marshes: own drivers, and fluxes with a known memory.

    GPP follows light, greenness and temperature of the month; RE follows temperature and
    the water table of the last three months (a drained marsh breathes more), so RE has
    memory and GPP little. NEE = RE - GPP, with noise of a known size.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for number, (site, (lat, _, start, months)) in enumerate(MARSHES.items()):
        time = pd.date_range(start, periods=months, freq="MS")
        phase = 2 * np.pi * (time.month - 1) / 12
        season = -np.cos(phase) * np.sign(lat)
        ta = 14 - 0.3 * (lat - 35) + 9 * season + rng.normal(0, 1.0, months)
        par = 420 + 260 * season + rng.normal(0, 25, months)
        evi = 0.35 + 0.15 * season + rng.normal(0, 0.02, months)
        wtd = (
            -5 + 12 * np.sin(2 * np.pi * np.arange(months) / 17 + number) + rng.normal(0, 2, months)
        )
        salinity = 15 + 3 * number + rng.normal(0, 1, months)
        drained = pd.Series(wtd).rolling(3, min_periods=1).mean().to_numpy()
        gpp = np.clip(0.04 * par * evi + 0.1 * ta, 0, None)
        re = np.clip(1.2 + 0.12 * ta - 0.08 * drained - 0.02 * salinity, 0.1, None)
        sigma = 0.15 + 0.05 * gpp
        frames.append(
            pd.DataFrame(
                {
                    "site_id": site,
                    "time": time.strftime("%Y-%m-%d"),
                    "GPP": gpp + rng.normal(0, 0.1, months),
                    "RE": re + rng.normal(0, 0.1, months),
                    "NEE": re - gpp + rng.normal(0, sigma),
                    "TA": ta,
                    "PAR": par,
                    "EVI": evi,
                    "WTD": wtd,
                    "SALINITY": salinity,
                }
                | ({"NEE_RANDUNC": sigma} if uncertainty else {})
            )
        )
    return pd.concat(frames, ignore_index=True)


def write_marshes(folder, table=None):
    folder.mkdir(parents=True, exist_ok=True)
    meta = pd.DataFrame(
        [(s, lat, lon, "saltmarsh") for s, (lat, lon, *_) in MARSHES.items()],
        columns=["site_id", "lat", "lon", "ecosystem"],
    )
    meta.to_csv(folder / "sites.csv", index=False)
    (marsh_table() if table is None else table).to_csv(folder / "marshes.csv", index=False)
    return folder


FEATURES = ("TA", "PAR", "EVI", "WTD", "SALINITY")
QUICK = {"epochs": 8, "patience": 4, "hyperparameters": {"hidden": 8, "layers": 1}}


@pytest.fixture(scope="module")
def marshes(tmp_path_factory):
    return write_marshes(tmp_path_factory.mktemp("marshes") / "towers")


@pytest.fixture(scope="module")
def series(marshes):
    return tower_site_series(read_sites(marshes), FEATURES)


def test_tower_series_take_every_feature_from_the_tables(series):
    assert series.site_ids == sorted(MARSHES)
    assert series.times[0] == pd.Timestamp("2011-03-01")  # the first month of any tower
    assert series.times[-1] == pd.Timestamp("2019-06-01")  # US-Sav: 72 months from 2013-07
    assert series.feature_sources == ("tower",) * 5
    assert series.feature_units == ("degC", "as given", "1", "as given", "as given")
    us_sav = series.site_ids.index("US-Sav")
    # Months a tower did not measure are NaN, and no window through them is trainable.
    assert np.isnan(series.drivers[us_sav, 0]).all()
    assert np.isfinite(series.drivers[us_sav, 28]).all()  # 2013-07
    trainable = series.trainable(6)
    assert trainable[us_sav].sum() == 72 - 5
    k = series.targets.index("NEE")
    assert np.isfinite(series.uncertainty[..., k]).sum() == sum(m for *_, m in MARSHES.values())
    assert np.isnan(series.uncertainty[..., series.targets.index("GPP")]).all()


def test_a_feature_missing_at_one_tower_names_it(tmp_path):
    table = marsh_table()
    table.loc[table["site_id"] == "US-Plm", "WTD"] = np.nan
    data = read_sites(write_marshes(tmp_path / "towers", table))
    with pytest.raises(InvalidTowerDataError, match=r"site US-Plm \(marshes.csv\) has no WTD"):
        tower_site_series(data, FEATURES)
    with pytest.raises(
        InvalidTowerDataError, match="feature.s. DEPTH are not columns of the tower"
    ):
        tower_site_series(data, ("TA", "DEPTH"))


def test_temporal_split_keeps_every_test_month_out_of_training(series):
    before, after = split_months(series, 0.3)
    measured = np.isfinite(series.fluxes).any(axis=-1)
    for s in range(len(series.site_ids)):
        months = np.flatnonzero(measured[s])
        held = np.flatnonzero(np.isfinite(after.fluxes[s]).any(axis=-1))
        assert len(held) == round(0.3 * len(months))
        assert held.min() == months[len(months) - len(held)]  # the last months
        # No training window ends on or reaches into a held-out month.
        assert np.isnan(before.drivers[s, held.min() :]).all()
    learn = before.trainable(6)
    ends = np.arange(6 - 1, len(series.times))
    for s in range(len(series.site_ids)):
        cut = np.flatnonzero(np.isfinite(after.fluxes[s]).any(axis=-1)).min()
        assert (ends[learn[s]] < cut).all()


def test_noise_share_is_the_noise_over_the_error():
    observed = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = observed + np.array([0.2, -0.2, 0.2, -0.2])  # squared error 0.04 each
    sigma = np.array([0.1, 0.1, np.nan, 0.1])
    score = skill(observed, predicted, sigma)
    assert score["noise_share"] == pytest.approx(0.01 * 3 / (0.04 * 3))
    assert "noise_share" not in skill(observed, predicted)


def test_one_tower_alone_is_a_temporal_study(series):
    config = TrainConfig(features=FEATURES, cv="temporal", memory=3, folds=2, **QUICK)
    fitted = train_ensemble(series.subset(["US-Mar"]), config, name="t", ecosystem="saltmarsh")
    # No other tower: the domain compares its windows a year or more apart.
    assert np.isfinite(fitted.model.card.domain.threshold)
    assert fitted.model.card.domain.threshold > 0


def test_uncertainty_weights_favour_precise_months():
    sigma = np.array([[0.1, np.nan], [0.2, np.nan], [np.nan, np.nan], [0.4, np.nan]])
    weights = uncertainty_weights(sigma).numpy()
    assert weights[0, 0] > weights[1, 0] > weights[3, 0]
    # Within a flux: a median of 1, like a flux without uncertainty, so none outweighs another.
    assert np.median(weights[[0, 1, 3], 0]) == pytest.approx(1.0)
    assert weights[2, 0] == 1.0
    np.testing.assert_array_equal(weights[:, 1], 1.0)  # a flux without uncertainty: unweighted


def test_temporal_ensemble_scores_the_held_out_months_only(series):
    config = TrainConfig(features=FEATURES, cv="temporal", memory=3, folds=2, **QUICK)
    fitted = train_ensemble(series, config, name="t", ecosystem="saltmarsh")
    _, after = split_months(series, 0.3)
    np.testing.assert_array_equal(np.isfinite(fitted.observed), np.isfinite(after.fluxes))
    assert len(fitted.model.members) == 2
    assert fitted.folds == [[site] for site in sorted(MARSHES)]  # scored tower by tower
    # Held-out predictions only: none for the months the members learned from.
    assert not np.isfinite(fitted.predictions[~np.isfinite(after.fluxes).all(axis=-1)]).any()
    card = fitted.model.card
    assert card.cv_scheme.startswith("temporal: each tower's last 30% of months held out")
    assert card.members[0].held_out_months["CA-Bay"] == "2016-10"  # 96 months, last 29 out
    assert card.training_period[1] < max(card.members[0].held_out_months.values())
    assert set(card.cv_towers["NEE"]) == set(MARSHES)
    assert 0 < card.cv_metrics["NEE"]["all"]["noise_share"] < 5
    assert card.cv_metrics["NEE"]["all"]["n"] == sum(round(0.3 * m) for *_, m in MARSHES.values())


def sweep_args(sites, out, *more):
    return [
        "sweep",
        "--sites",
        str(sites),
        "--out",
        str(out),
        "--features",
        ",".join(FEATURES),
        "--architectures",
        "lstm",
        "--memories",
        "3",
        "--nee-modes",
        "direct",
        "--epochs",
        "6",
        "--workers",
        "1",
        *more,
    ]


@pytest.mark.slow
def test_a_site_level_study_runs_with_no_cube(marshes, small_region, tmp_path):
    result = runner.invoke(app, sweep_args(marshes, tmp_path / "sweep", "--cv", "temporal"))
    assert result.exit_code == 0, result.output
    study = pd.read_csv(tmp_path / "sweep" / "study.csv")
    assert set(study["memory"]) == {1, 3} and set(study["flux"]) == {"GPP", "RE", "NEE"}
    for column in ("r2", "nse", "across_sites_r2", "seasonal_r2", "anomalies_r2", "noise_share"):
        assert column in study
    assert study.groupby("flux")["chosen"].sum().eq(1).all()  # one memory chosen per flux
    assert study["noise_share"].notna().sum() == 2  # NEE, at both memories: towers give σ
    towers = pd.read_csv(tmp_path / "sweep" / "towers.csv")
    assert set(towers["site_id"]) == set(MARSHES)
    assert (tmp_path / "sweep" / "skill_vs_memory.png").stat().st_size > 10_000

    # Train, explain, and the card says where each feature came from.
    models = tmp_path / "models"
    train = [
        "train",
        "--sites",
        str(marshes),
        "--out",
        str(models),
        "--features",
        ",".join(FEATURES),
        "--memory",
        "3",
        "--cv",
        "loso",
        "--epochs",
        "3",
    ]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    card = json.loads((models / "model-saltmarsh" / "card.json").read_text())
    assert card["feature_sources"] == dict.fromkeys(FEATURES, "tower")
    assert card["feature_units"]["PAR"] == "as given" and card["feature_units"]["TA"] == "degC"
    assert card["towers"]["US-Sav"]["file"] == "marshes.csv"
    folds = pd.read_csv(models / "model-folds.csv")
    assert len(folds) == 3 * 5 and set(folds["towers"]) == set(MARSHES)  # loso: one each
    per_tower = pd.read_csv(models / "model-towers.csv")
    assert set(per_tower["site_id"]) == set(MARSHES)
    explain = [
        "explain",
        "--sites",
        str(marshes),
        "--model",
        str(models / "model-saltmarsh"),
        "--out",
        str(tmp_path / "explain"),
        "--windows",
        "20",
        "--background",
        "20",
        "--samples",
        "4",
        "--no-null",
        "--features",
        "WTD,TA",
    ]
    result = runner.invoke(app, explain)
    assert result.exit_code == 0, result.output
    importance = pd.read_csv(tmp_path / "explain" / "importance.csv")
    assert set(importance["feature"]) == {"WTD", "TA"}
    memory = pd.read_csv(tmp_path / "explain" / "memory.csv")
    assert set(memory["target"]) == {"GPP", "RE", "NEE"}

    # predict refuses a model whose features the cube lacks, naming them.
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    predict = ["predict", "--cube", str(inputs.cube), "--mask", str(inputs.mask)]
    predict += ["--model", str(models / "model-saltmarsh"), "--out", str(tmp_path / "m.zarr")]
    result = runner.invoke(app, predict)
    assert result.exit_code == 2
    assert "missing driver variable(s) PAR, WTD, SALINITY" in " ".join(result.output.split())


def test_explaining_a_model_of_cube_features_needs_the_cube():
    from tests.conftest import untrained_model
    from upscale.api.explain import _explained_config
    from upscale.errors import InvalidConfigError

    card = untrained_model("saltmarsh").card.model_copy(update={"feature_sources": {"TA": "tower"}})
    with pytest.raises(
        InvalidConfigError, match="reads LAI, FAPAR.* from a driver cube; pass --cube"
    ):
        _explained_config(card, "m", None)
    assert _explained_config(card, "m", "cube.zarr").site_drivers == ("TA",)


def test_a_temporal_split_too_short_for_one_tower_is_refused(marshes, tmp_path):
    result = runner.invoke(
        app,
        sweep_args(
            marshes,
            tmp_path / "sweep",
            "--cv",
            "temporal",
            "--test-fraction",
            "0.5",
            "--memories",
            "36",
        ),
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "site US-Plm: holding out its last 50% of 60 measured months leaves 30" in text
    assert not (tmp_path / "sweep" / "study.csv").exists()


def test_series_round_trip_with_sources_and_uncertainty(series, tmp_path):
    loaded = SiteSeries.load(series.save(tmp_path / "s.npz"))
    assert loaded.feature_sources == series.feature_sources
    np.testing.assert_array_equal(loaded.uncertainty, series.uncertainty)


def test_uncertainty_column_names():
    assert uncertainty_name("NEE", "RANDUNC") == "NEE_RANDUNC"
    assert uncertainty_name("GPP", "JOINTUNC") == "GPP_JOINTUNC"


@pytest.fixture(scope="module")
def two_real_towers(tmp_path_factory):
    """A site folder of two real towers, each file with its own drivers (../shared/data)."""
    import shutil

    from tests.conftest import shared_file

    folder = tmp_path_factory.mktemp("real") / "towers"
    folder.mkdir()
    for name in (
        "FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv",
        "AMF_US-Tw3_BASE_HH_5-5_2014.csv",
    ):
        shutil.copy(shared_file(name), folder / name)
    # Neither is a wetland: the ecosystem only groups them into one study here.
    (folder / "sites.csv").write_text(
        "site_id,lat,lon,ecosystem\nUS-AR1,36.4267,-99.42,saltmarsh\n"
        "US-Tw3,38.1159,-121.6467,saltmarsh\n"
    )
    return folder


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("cv", ["temporal", "loso"])
def test_a_two_tower_study_of_real_files_with_no_cube(two_real_towers, cv, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--sites", str(two_real_towers), "--out", str(out), "--cv", cv]
    args += ["--architectures", "lstm,transformer", "--memories", "2,3", "--nee-modes", "direct"]
    args += ["--epochs", "5", "--workers", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # The features are the drivers both towers measured, each in its own file.
    assert "features are the drivers every tower measured: TA, SW_IN, VPD" in result.output
    study = pd.read_csv(out / "study.csv")
    assert len(study) == 2 * 3 * 3  # architectures x memories (1 added) x fluxes
    assert set(study["architecture"]) == {"lstm", "transformer"}
    assert study.groupby(["architecture", "flux"])["chosen"].sum().eq(1).all()
    assert np.isfinite(study["nse"]).all()
    # Only US-AR1's FLUXNET file gives a random uncertainty: NEE has a noise ceiling.
    assert study.loc[study["flux"] == "NEE", "noise_share"].notna().all()
    towers = pd.read_csv(out / "towers.csv")
    assert set(towers["site_id"]) == {"US-AR1", "US-Tw3"}
    assert (out / "skill_vs_memory.png").stat().st_size > 10_000


def test_uncertainty_weights_change_what_the_members_learn(series):
    config = TrainConfig(features=FEATURES, cv="temporal", memory=2, folds=2, **QUICK)
    plain = train_ensemble(series, config, name="t", ecosystem="saltmarsh")
    weighted = config.model_copy(update={"weight_by_uncertainty": True})
    fitted = train_ensemble(series, weighted, name="t", ecosystem="saltmarsh")
    assert fitted.model.card.train_config["weight_by_uncertainty"] is True
    k = series.targets.index("NEE")
    held = np.isfinite(fitted.observed[..., k])
    assert np.isfinite(fitted.predictions[..., k][held]).all()
    assert not np.allclose(fitted.predictions[..., k][held], plain.predictions[..., k][held])
