import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.errors import InvalidConfigError, InvalidTowerDataError
from upscale.learn.config import make_train_config
from upscale.learn.samples import SiteSeries, driver_agreement, with_site_drivers
from upscale.towers.tidy import read_site_drivers

TIMES = pd.date_range("2015-01", periods=12, freq="MS")


def two_towers():
    rng = np.random.default_rng(0)
    drivers = rng.normal(20, 3, size=(2, 12, 2)).astype("float32")
    return SiteSeries(
        site_ids=["A", "B"],
        ecosystems=["mangrove", "mangrove"],
        times=TIMES,
        features=["TA", "NDVI"],
        targets=["GPP"],
        drivers=drivers,
        fluxes=np.ones((2, 12, 1), "float32"),
    )


def measured_from(series, ta_offset):
    index = pd.MultiIndex.from_product([series.site_ids, TIMES], names=["site_id", "time"])
    ta = series.drivers[:, :, 0].reshape(-1) - ta_offset
    table = pd.DataFrame({"TA": ta}, index=index)
    table.loc[("B", TIMES[:3]), "TA"] = np.nan  # tower B measured from April only
    return table


def test_agreement_is_the_bias_of_the_cube_against_the_tower():
    series = two_towers()
    table = driver_agreement(series, measured_from(series, ta_offset=1.5)).set_index("site_id")
    assert list(table["driver"]) == ["TA", "TA"]  # NDVI: the towers have none
    assert table.loc["A", "n"] == 12 and table.loc["B", "n"] == 9
    np.testing.assert_allclose(table["bias"], 1.5, rtol=1e-5)
    np.testing.assert_allclose(table["rmse"], 1.5, rtol=1e-5)
    np.testing.assert_allclose(table["r"], 1.0, rtol=1e-6)
    assert (table["units"] == "degC").all()


def test_site_drivers_replace_the_measured_months_only():
    series = two_towers()
    swapped = with_site_drivers(series, measured_from(series, ta_offset=1.5), ["TA"])
    np.testing.assert_allclose(swapped.drivers[0, :, 0], series.drivers[0, :, 0] - 1.5, rtol=1e-6)
    np.testing.assert_array_equal(swapped.drivers[1, :3, 0], series.drivers[1, :3, 0])
    np.testing.assert_array_equal(swapped.drivers[..., 1], series.drivers[..., 1])  # NDVI kept
    with pytest.raises(InvalidTowerDataError, match="site A has no NDVI of its own"):
        with_site_drivers(series, measured_from(series, 0.0), ["NDVI"])
    with pytest.raises(InvalidTowerDataError, match="site driver VPD is not among the features"):
        with_site_drivers(series, measured_from(series, 0.0), ["VPD"])


def test_site_drivers_must_be_features():
    with pytest.raises(InvalidConfigError, match=r"site_drivers \['VPD'\] must also be features"):
        make_train_config({"features": ["TA"], "site_drivers": ["VPD"]})


def test_point_extractions_are_read_monthly(tmp_path):
    days = pd.date_range("2015-01-01", "2015-02-28", freq="8D")
    table = pd.DataFrame(
        {"site_id": "A", "time": days, "NDVI": np.where(days.month == 1, 0.4, 0.6)}
    )
    table.loc[1, "NDVI"] = -9999
    table.to_csv(tmp_path / "modis.csv", index=False)
    monthly = read_site_drivers(tmp_path / "modis.csv")
    assert list(monthly.columns) == ["site_id", "time", "NDVI"]
    np.testing.assert_allclose(monthly["NDVI"], [0.4, 0.6])
    # A column the schema does not know is a driver of its own, in the units given.
    table.rename(columns={"NDVI": "ndvi_250m"}).to_csv(tmp_path / "own.csv", index=False)
    np.testing.assert_allclose(read_site_drivers(tmp_path / "own.csv")["ndvi_250m"], [0.4, 0.6])
    table.rename(columns={"NDVI": "GPP"}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(
        InvalidTowerDataError, match=r"bad.csv: a site-driver table has .* no fluxes"
    ):
        read_site_drivers(tmp_path / "bad.csv")


def test_train_with_tower_drivers_reports_the_agreement(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    pixels = small_region.cube["NDVI"].sel(
        x=small_region.sites["lon"].to_xarray(),
        y=small_region.sites["lat"].to_xarray(),
        method="nearest",
    )
    extraction = pixels.to_dataframe().reset_index()[["site_id", "time", "NDVI"]]
    extraction["NDVI"] += 0.02  # a MODIS subset a little greener than the cube's pixel
    extraction.to_csv(tmp_path / "modis.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--sites",
            str(inputs.sites),
            "--cube",
            str(inputs.cube),
            "--out",
            str(tmp_path / "models"),
            "--name",
            "t",
            "--epochs",
            "2",
            "--folds",
            "3",
            "--site-drivers",
            "TA,NDVI",
            "--site-drivers-table",
            str(tmp_path / "modis.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cube drivers at the towers" in " ".join(result.output.split())
    agreement = pd.read_csv(tmp_path / "models" / "t-drivers.csv")
    assert set(agreement["driver"]) >= {"TA", "VPD", "SW_IN", "PRECIP", "NDVI"}
    ndvi = agreement[agreement["driver"] == "NDVI"]
    np.testing.assert_allclose(ndvi["bias"], -0.02, atol=1e-4)
    assert "site_drivers:\n- TA\n- NDVI" in (tmp_path / "models" / "t.yaml").read_text()


def test_site_drivers_in_wrong_units_are_refused(tmp_path):
    table = pd.DataFrame(
        {"site_id": "A", "time": ["2015-01-15", "2015-02-15"], "TA": [296.0, 298.0]}
    )
    table.to_csv(tmp_path / "kelvin.csv", index=False)
    with pytest.raises(
        InvalidTowerDataError, match="kelvin.csv: driver TA ranges 296..298, outside the plausible"
    ):
        read_site_drivers(tmp_path / "kelvin.csv")
