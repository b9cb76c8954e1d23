"""AmeriFlux BASE ingest: PI fluxes, qualifiers, drivers, partitioning, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import shared_file
from upscale.errors import InvalidTowerDataError
from upscale.towers.ameriflux import read_ameriflux, read_base_steps
from upscale.towers.monthly import UMOL_CO2_TO_GC_PER_DAY
from upscale.towers.sites import read_sites, write_sites_table

TW3 = "AMF_US-Tw3_BASE_HH_5-5_2014.csv"


def write_base(folder: Path, name: str, table: pd.DataFrame, step: str = "30min") -> Path:
    """Write a BASE file: two # lines, a blank line, the header, -9999 for NaN."""
    start = table.index
    out = table.copy()
    out.insert(0, "TIMESTAMP_END", (start + pd.Timedelta(step)).strftime("%Y%m%d%H%M"))
    out.insert(0, "TIMESTAMP_START", start.strftime("%Y%m%d%H%M"))
    path = folder / name
    with path.open("w") as f:
        f.write("# Site: US-Xyz\n# Version: 1-1\n\n")
        out.to_csv(f, index=False, na_rep="-9999")
    return path


def base_table(start: str = "2015-01-01", days: int = 59, step: str = "30min") -> pd.DataFrame:
    """Two months of half-hours with constant PI fluxes and two TA sensors."""
    index = pd.date_range(start, periods=days * pd.Timedelta("1D") // pd.Timedelta(step), freq=step)
    n = len(index)
    return pd.DataFrame(
        {
            "FC": np.where(np.arange(n) % 4 == 0, np.nan, -2.0),  # 75 % measured
            "FC_PI_F": np.full(n, -2.0),
            "GPP_PI_F": np.full(n, 5.0),
            "RECO_PI_F": np.full(n, 3.0),
            "TA_1_1_1": np.where(np.arange(n) % 2 == 0, np.nan, 10.0),
            "TA_1_2_1": np.full(n, 12.0),
            "SW_IN": np.full(n, 200.0),
            "PPFD_IN": np.full(n, 400.0),
            "VPD_PI": np.full(n, 6.0),
            "P": np.full(n, 0.1),
        },
        index=index,
    )


def test_pi_fluxes_units_qualifiers_and_drivers(tmp_path):
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", base_table())
    monthly, methods = read_ameriflux(path)
    assert list(monthly.index) == list(pd.date_range("2015-01-01", periods=2, freq="MS"))
    np.testing.assert_allclose(monthly["GPP"], 5.0 * UMOL_CO2_TO_GC_PER_DAY)
    np.testing.assert_allclose(monthly["RE"], 3.0 * UMOL_CO2_TO_GC_PER_DAY)
    np.testing.assert_allclose(monthly["NEE"], -2.0 * UMOL_CO2_TO_GC_PER_DAY)
    np.testing.assert_allclose(monthly["NEE_QC"], 0.75)
    np.testing.assert_allclose(monthly["TA"], 12.0)  # the sensor with most values
    np.testing.assert_allclose(monthly["VPD"], 6.0)
    np.testing.assert_allclose(monthly["PRECIP"], 0.1 * 48)
    np.testing.assert_allclose(monthly["PPFD_IN"], 400.0)
    assert methods["GPP_method"] == "GPP_PI_F (PI partitioning)"
    assert methods["NEE_method"] == "FC_PI_F (PI gap-filled)"


def test_measured_fc_under_the_coverage_rule(tmp_path):
    table = base_table().drop(columns=["FC_PI_F"])
    table.loc["2015-02-01":, "FC"] = np.nan  # February: nothing measured
    table.loc["2015-02-01":"2015-02-05", "FC"] = -2.0  # 5 days: under min_coverage
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", table)
    monthly, methods = read_ameriflux(path, qc_min=0.0)
    assert monthly.loc["2015-01", "NEE"].item() == pytest.approx(-2.0 * UMOL_CO2_TO_GC_PER_DAY)
    assert np.isnan(monthly.loc["2015-02", "NEE"].item())
    assert methods["NEE_method"] == "FC measured"


def test_read_sites_takes_base_files_with_sources_and_units(tmp_path):
    write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1_2015.csv", base_table())
    write_sites_table(
        pd.DataFrame(
            {"site_id": ["US-Xyz"], "lat": [25.0], "lon": [-81.0], "ecosystem": ["mangrove"]}
        ),
        tmp_path,
    )
    sites = read_sites(tmp_path)
    assert {"PPFD_IN", "TA", "VPD"} <= set(sites.fluxes.columns)
    assert sites.units == {"PPFD_IN": "umol m-2 s-1"}
    row = sites.sources.loc["US-Xyz"]
    assert row["format"] == "AmeriFlux BASE"
    assert row["file"] == "AMF_US-Xyz_BASE_HH_1-1_2015.csv"
    assert row["RE_method"] == "RECO_PI_F (PI partitioning)"


# ----------------------------------------------------------------------------- bad input


def test_error_days_long_gap(tmp_path):
    table = base_table().drop(pd.date_range("2015-01-10", "2015-01-13", freq="30min"))
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", table)
    with pytest.raises(
        InvalidTowerDataError,
        match=r"AMF_US-Xyz_BASE_HH_1-1\.csv: 1 timestamp gap.*from 2015-01-10 00:00 to "
        r"2015-01-13 00:00 \(3\.0 days\).*continuous",
    ):
        read_ameriflux(path)


def test_error_duplicated_half_hours(tmp_path):
    table = base_table()
    table = pd.concat([table, table.iloc[[10, 11]]]).sort_index()
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", table)
    with pytest.raises(
        InvalidTowerDataError, match=r"HH_1-1\.csv: duplicated half-hours \(2, the first"
    ):
        read_ameriflux(path)


def test_error_hourly_rows_named_hh(tmp_path):
    path = write_base(
        tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", base_table(step="60min"), step="60min"
    )
    with pytest.raises(
        InvalidTowerDataError, match=r"60 minutes long but the name says HH.*name the file HR"
    ):
        read_ameriflux(path)


def test_error_no_flux_column(tmp_path):
    table = base_table().drop(columns=["FC", "FC_PI_F"])
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", table)
    with pytest.raises(
        InvalidTowerDataError, match=r"HH_1-1\.csv: no CO2 flux column \(FC, NEE_PI_F"
    ):
        read_ameriflux(path)


def test_error_bad_base_name(tmp_path):
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_DD_1-1.csv", base_table())
    with pytest.raises(InvalidTowerDataError, match=r"not an AmeriFlux BASE file name.*<HH\|HR>"):
        read_ameriflux(path)


def test_error_without_hesseflux_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "hesseflux", None)
    table = base_table().drop(columns=["GPP_PI_F", "RECO_PI_F"])
    path = write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", table)
    with pytest.raises(
        InvalidTowerDataError, match=r"HH_1-1\.csv.*pip install 'upscale\[partition\]'"
    ):
        read_ameriflux(path)


# --------------------------------------------------------------------------- the real year


@pytest.mark.shared_data
def test_real_base_year_matches_an_independent_monthly_mean():
    path = shared_file(TW3)
    monthly, methods = read_ameriflux(path, qc_min=0.0)
    raw = pd.read_csv(path, comment="#", na_values=[-9999], dtype={"TIMESTAMP_START": str})
    raw.index = pd.to_datetime(raw["TIMESTAMP_START"], format="%Y%m%d%H%M")
    expected = raw[["GPP_PI_F", "RECO_PI_F", "FC_PI_F"]].resample("MS").mean() * 1.0378
    assert len(monthly) == 12
    for name, column in (("GPP", "GPP_PI_F"), ("RE", "RECO_PI_F"), ("NEE", "FC_PI_F")):
        np.testing.assert_allclose(monthly[name], expected[column], rtol=0.01, atol=1e-6)
    assert methods["NEE_method"] == "FC_PI_F (PI gap-filled)"
    # The tower's meteorology: Delta summers are warm and bright, VPD from VPD_PI in hPa.
    assert 20 < monthly.loc["2014-07", "TA"].item() < 30
    assert 250 < monthly.loc["2014-06", "SW_IN"].item() < 400
    assert monthly["VPD"].max() < 40
    assert "PRECIP" not in monthly  # P is -9999 throughout this file: no driver


@pytest.mark.shared_data
def test_real_year_night_time_partitioning_against_the_pi(capsys):
    pytest.importorskip("hesseflux")
    from upscale.towers.partition import partition_night_time

    path = shared_file(TW3)
    steps = read_base_steps(path).values
    parts = partition_night_time(steps[["FC", "TA", "SW_IN", "VPD", "USTAR"]], source=TW3)
    ours = parts["GPP"].resample("MS").mean()
    pi = steps["GPP"].resample("MS").mean()
    r2 = 1 - ((ours - pi) ** 2).sum() / ((pi - pi.mean()) ** 2).sum()
    with capsys.disabled():
        print(f"\nhesseflux night-time GPP vs GPP_PI_F, monthly R2 (1 - SSE/SST): {r2:.3f}")
    assert r2 > 0.9  # measured 0.969 on US-Tw3 2014
