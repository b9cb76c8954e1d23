"""FLUXNET and tidy tower ingest: formats, units, QC, coverage, errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from upscale.errors import InvalidTowerDataError
from upscale.schema import uncertainty_name
from upscale.towers.fluxnet import fluxnet_methods, read_fluxnet, write_fluxnet_monthly
from upscale.towers.monthly import UMOL_CO2_TO_GC_PER_DAY
from upscale.towers.sites import (
    TOWER_FORMATS,
    SiteData,
    TowerFormat,
    read_sites,
    register_tower_format,
    write_sites_table,
)
from upscale.towers.tidy import read_tidy

US_AR1 = "FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv"
FLUX_COLUMNS = ["GPP", "RE", "NEE"]


def write_csv(folder: Path, name: str, columns: dict) -> Path:
    """Write columns as a CSV with FLUXNET's -9999 for NaN."""
    path = folder / name
    pd.DataFrame(columns).to_csv(path, index=False, na_rep="-9999")
    return path


def steps(start: str, end: str, freq: str) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq=freq, inclusive="left")


# ----------------------------------------------------------------------------- real DD file


@pytest.fixture(scope="module")
def us_ar1() -> Path:
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / US_AR1
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data ships beside the project in CI only)")
    return path


def hand_monthly_mean(path: Path, month: str, column: str, qc_min: float = 0.5) -> float:
    """Mean of a daily column over one month (YYYYMM), read with the csv module."""
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["TIMESTAMP"].startswith(month)]
    qc = [float(r["NEE_VUT_REF_QC"]) for r in rows if float(r["NEE_VUT_REF_QC"]) != -9999]
    if sum(qc) / len(qc) < qc_min:
        return float("nan")
    values = [float(r[column]) for r in rows if float(r[column]) != -9999]
    return sum(values) / len(values)


@pytest.mark.shared_data
def test_real_dd_file_gives_48_months_matching_hand_means(us_ar1):
    monthly = read_fluxnet(us_ar1)
    assert list(monthly.index) == list(pd.date_range("2009-01-01", "2012-12-01", freq="MS"))
    assert monthly.index.name == "time"
    assert list(monthly.columns[:4]) == ["GPP", "RE", "NEE", "NEE_QC"]
    assert {"TA", "SW_IN", "VPD", "PRECIP"} <= set(monthly.columns)
    for month in ("2010-07", "2011-02", "2012-10"):
        yyyymm = month.replace("-", "")
        for name, column in (("GPP", "GPP_NT_VUT_REF"), ("NEE", "NEE_VUT_REF")):
            expected = hand_monthly_mean(us_ar1, yyyymm, column)
            assert monthly.loc[month, name].item() == pytest.approx(expected, rel=1e-9)
        assert monthly.loc[month, "TA"].item() == pytest.approx(
            hand_monthly_mean(us_ar1, yyyymm, "TA_F", qc_min=0), rel=1e-9
        )
    # DD fluxes are gC m-2 d-1 already: the hand means above apply no unit factor, and the
    # values stay in a grassland's range.
    assert 0 < monthly["GPP"].max() < 15
    assert monthly["GPP"].count() == 41  # 7 months fail QC at qc_min=0.5


@pytest.mark.shared_data
def test_real_dd_file_qc_filter_and_partitioning(us_ar1):
    default = read_fluxnet(us_ar1)
    # Early 2009 has no measured NEE (monthly QC 0): filtered at the default qc_min 0.5.
    assert default.loc["2009-01", "NEE_QC"].item() == 0
    assert default.loc["2009-01", FLUX_COLUMNS].isna().all(axis=None)
    # April 2012 has a QC fraction of about 0.557: kept at 0.5, dropped at 0.6.
    april = hand_monthly_mean(us_ar1, "201204", "NEE_VUT_REF_QC", qc_min=0)
    assert 0.5 < april < 0.6
    assert default.loc["2012-04", "NEE_QC"].item() == pytest.approx(april)
    assert default.loc["2012-04", FLUX_COLUMNS].notna().all(axis=None)
    strict = read_fluxnet(us_ar1, qc_min=0.6)
    assert strict.loc["2012-04", FLUX_COLUMNS].isna().all(axis=None)
    everything = read_fluxnet(us_ar1, qc_min=0)
    assert everything[FLUX_COLUMNS].notna().all(axis=None)
    assert strict["GPP"].count() < default["GPP"].count() < everything["GPP"].count() == 48

    dt = read_fluxnet(us_ar1, partitioning="DT")
    assert dt.loc["2010-07", "GPP"].item() == pytest.approx(
        hand_monthly_mean(us_ar1, "201007", "GPP_DT_VUT_REF")
    )
    assert dt.loc["2010-07", "RE"].item() == pytest.approx(
        hand_monthly_mean(us_ar1, "201007", "RECO_DT_VUT_REF")
    )
    assert dt.loc["2010-07", "GPP"].item() != pytest.approx(default.loc["2010-07", "GPP"].item())
    pd.testing.assert_series_equal(dt["NEE"], default["NEE"])


# ----------------------------------------------------------------------- generated formats


def test_umol_to_gc_factor():
    assert UMOL_CO2_TO_GC_PER_DAY == pytest.approx(1.0377504)


def test_hh_units_qc_flags_gaps_and_coverage(tmp_path):
    t = steps("2010-01-01", "2010-04-01", "30min")
    month = t.month
    i = np.arange(len(t))
    nee = np.where(i % 2 == 0, 1.0, 2.0)
    nee[(month == 1) & (i % 4 == 3)] = np.nan  # January: mean of 1, 2, 1 = 4/3
    march_gap = (month == 3) & (i % 10 < 6)  # March: 40 % of NEE valid
    nee[march_gap] = np.nan
    flags = np.select(
        [month == 1, month == 2], [np.array([0, 1, 2, 0])[i % 4], np.array([2, 3, 0, 2])[i % 4]], 0
    ).astype(float)
    flags[march_gap] = np.nan
    path = write_csv(
        tmp_path,
        "FLX_ZZ-Hhh_FLUXNET2015_FULLSET_HH_2010-2010_1-4.csv",
        {
            "TIMESTAMP_START": t.strftime("%Y%m%d%H%M"),
            "TIMESTAMP_END": (t + pd.Timedelta("30min")).strftime("%Y%m%d%H%M"),
            "TA_F": 20.0,
            "P_F": 0.1,
            "NEE_VUT_REF": nee,
            "NEE_VUT_REF_QC": flags,
            "GPP_NT_VUT_REF": 2.0,
            "RECO_NT_VUT_REF": 3.0,
        },
    )
    monthly = read_fluxnet(path)
    factor = 12.011e-6 * 86400
    jan, feb, mar = (monthly.loc[m] for m in ("2010-01-01", "2010-02-01", "2010-03-01"))
    assert jan["GPP"] == pytest.approx(2 * factor)
    assert jan["RE"] == pytest.approx(3 * factor)
    assert jan["NEE"] == pytest.approx(4 / 3 * factor)
    assert jan["NEE_QC"] == pytest.approx(0.75)  # flags 0 or 1
    assert feb["NEE_QC"] == pytest.approx(0.25)
    assert feb[FLUX_COLUMNS].isna().all()  # failed QC
    assert feb["TA"] == pytest.approx(20.0)  # drivers are not QC-filtered
    assert np.isnan(mar["NEE"])  # 40 % coverage < 50 %
    assert mar["GPP"] == pytest.approx(2 * factor)
    assert mar["NEE_QC"] == pytest.approx(1.0)
    assert monthly["PRECIP"].tolist() == pytest.approx([4.8] * 3)  # 0.1 mm per half-hour
    assert read_fluxnet(path, min_coverage=0.3).loc["2010-03-01", "NEE"] == pytest.approx(
        1.5 * factor
    )


def test_hr_units_precip_and_min_coverage(tmp_path):
    t = steps("2010-01-01", "2010-03-01", "h")
    gpp = np.full(len(t), 2.0)
    gpp[(t.month == 2) & (t.day > 10)] = np.nan  # February: 10 of 28 days
    path = write_csv(
        tmp_path,
        "FLX_ZZ-Hrr_FLUXNET2015_FULLSET_HR_2010-2010_1-4.csv",
        {
            "TIMESTAMP_START": t.strftime("%Y%m%d%H%M"),
            "P_F": 0.5,
            "NEE_VUT_REF": 1.0,
            "GPP_NT_VUT_REF": gpp,
            "RECO_NT_VUT_REF": 3.0,
        },
    )
    monthly = read_fluxnet(path)
    assert monthly["NEE"].tolist() == pytest.approx([1.0377504] * 2)
    assert monthly["PRECIP"].tolist() == pytest.approx([12.0, 12.0])  # 0.5 mm per hour
    assert monthly["NEE_QC"].isna().all()  # no QC column: unknown, not filtered
    assert monthly.loc["2010-01-01", "GPP"] == pytest.approx(2 * 1.0377504)
    assert np.isnan(monthly.loc["2010-02-01", "GPP"])
    assert read_fluxnet(path, min_coverage=0.3).loc["2010-02-01", "GPP"] == pytest.approx(
        2 * 1.0377504
    )


@pytest.mark.parametrize("exclusive_end", [False, True])
def test_ww_weeks_straddling_months_are_day_weighted(tmp_path, exclusive_end):
    start = pd.date_range("2010-01-01", periods=9, freq="7D")  # the 5th week is Jan 29 - Feb 4
    end = start + pd.Timedelta(days=7 if exclusive_end else 6)
    week = np.arange(9.0)
    path = write_csv(
        tmp_path,
        "FLX_ZZ-Www_FLUXNET2015_FULLSET_WW_2010-2010_1-4.csv",
        {
            "TIMESTAMP_START": start.strftime("%Y%m%d"),
            "TIMESTAMP_END": end.strftime("%Y%m%d"),
            "P_F": week,
            "NEE_VUT_REF": week,
            "NEE_VUT_REF_QC": 1.0,
            "GPP_NT_VUT_REF": week,
            "RECO_NT_VUT_REF": 2 * week,
        },
    )
    monthly = read_fluxnet(path)
    assert list(monthly.index) == list(pd.date_range("2010-01-01", "2010-03-01", freq="MS"))
    jan = (7 * (0 + 1 + 2 + 3) + 3 * 4) / 31  # not the mean of the weeks starting in January
    feb = (4 * 4 + 7 * (5 + 6 + 7) + 3 * 8) / 28
    assert monthly["GPP"].iloc[:2].tolist() == pytest.approx([jan, feb])
    assert monthly["RE"].iloc[:2].tolist() == pytest.approx([2 * jan, 2 * feb])
    assert monthly["PRECIP"].iloc[:2].tolist() == pytest.approx([jan, feb])  # mm d-1 already
    assert monthly.loc["2010-03-01", FLUX_COLUMNS].isna().all()  # 4 of 31 days


def test_mm_gaps_qc_fraction_and_drivers(tmp_path):
    months = pd.period_range("2010-01", "2010-12", freq="M")
    gpp = np.linspace(1, 12, 12)
    gpp[3] = np.nan
    qc = np.full(12, 0.9)
    qc[6] = 0.3
    path = write_csv(
        tmp_path,
        "FLX_ZZ-Mmm_FLUXNET2015_SUBSET_MM_2010-2010_1-4.csv",
        {
            "TIMESTAMP": months.strftime("%Y%m"),
            "TA_F": 25.0,
            "VPD_F": 8.0,
            "SW_IN_F": 200.0,
            "P_F": 3.5,
            "NEE_VUT_REF": -gpp / 2,
            "NEE_VUT_REF_QC": qc,
            "GPP_NT_VUT_REF": gpp,
            "RECO_NT_VUT_REF": gpp / 2,
        },
    )
    monthly = read_fluxnet(path)
    assert len(monthly) == 12
    assert monthly.loc["2010-01-01", "GPP"] == 1.0
    assert monthly.loc["2010-12-01", "GPP"] == 12.0
    assert np.isnan(monthly.loc["2010-04-01", "GPP"])  # -9999 in the file
    assert monthly.loc["2010-04-01", "NEE_QC"] == pytest.approx(0.9)
    assert monthly.loc["2010-07-01", FLUX_COLUMNS].isna().all()  # QC 0.3
    assert monthly["GPP"].count() == 10
    drivers = monthly[["TA", "VPD", "SW_IN", "PRECIP"]]
    assert (drivers == [25.0, 8.0, 200.0, 3.5]).all(axis=None)


def demo_monthly(seed: int = 0, start: str = "2011-03-01", periods: int = 18) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = periods
    re = rng.uniform(2, 6, n)
    nee = rng.normal(-1, 1, n)
    monthly = pd.DataFrame(
        {
            "NEE": nee,
            "RE": re,
            "GPP": re - nee,
            "NEE_QC": rng.uniform(0.6, 1, n),
            "GPP_DT": re - nee + 0.3,
            "RE_DT": re + 0.3,
            "TA": rng.normal(25, 3, n),
            "SW_IN": rng.uniform(100, 300, n),
            "VPD": rng.uniform(2, 20, n),
            "PRECIP": rng.gamma(2, 2, n),
        },
        index=pd.date_range(start, periods=n, freq="MS", name="time"),
    )
    monthly.iloc[4, :3] = np.nan
    return monthly


def test_write_fluxnet_monthly_round_trips(tmp_path):
    monthly = demo_monthly()
    path = write_fluxnet_monthly("ZZ-Mg1", monthly, tmp_path)
    assert path.name == "FLX_ZZ-Mg1_FLUXNET2015_SUBSET_MM_2011-2012_1-4.csv"
    header = path.read_text().splitlines()[0].split(",")
    assert header == [
        "TIMESTAMP",
        "NEE_VUT_REF",
        "NEE_VUT_REF_QC",
        "GPP_NT_VUT_REF",
        "RECO_NT_VUT_REF",
        "GPP_DT_VUT_REF",
        "RECO_DT_VUT_REF",
        "TA_F",
        "SW_IN_F",
        "VPD_F",
        "P_F",
    ]
    lines = path.read_text().splitlines()
    assert lines[1].startswith("201101,-9999,")  # whole years, gaps as -9999
    assert len(lines) == 1 + 24

    back = read_fluxnet(path)
    assert list(back.index) == list(pd.date_range("2011-01-01", "2012-12-01", freq="MS"))
    columns = ["GPP", "RE", "NEE", "NEE_QC", "TA", "SW_IN", "VPD", "PRECIP"]
    pd.testing.assert_frame_equal(
        back.loc[monthly.index, columns],
        monthly[columns].set_axis(monthly.index.as_unit("ns")),
        check_freq=False,
        rtol=1e-12,
    )
    assert back.drop(monthly.index)[columns].isna().all(axis=None)
    dt = read_fluxnet(path, partitioning="DT")
    np.testing.assert_allclose(dt.loc[monthly.index, "GPP"], monthly["GPP_DT"])
    np.testing.assert_allclose(dt.loc[monthly.index, "RE"], monthly["RE_DT"])


def test_write_fluxnet_monthly_writes_only_available_columns(tmp_path):
    monthly = demo_monthly()[["GPP", "RE", "NEE"]]
    path = write_fluxnet_monthly(
        "ZZ-Sm1", monthly, tmp_path, product="FLUXNET_FULLSET", version="3-5"
    )
    assert path.name == "FLX_ZZ-Sm1_FLUXNET_FULLSET_MM_2011-2012_3-5.csv"
    assert (
        path.read_text().splitlines()[0] == "TIMESTAMP,NEE_VUT_REF,GPP_NT_VUT_REF,RECO_NT_VUT_REF"
    )
    back = read_fluxnet(path)
    assert back["NEE_QC"].isna().all()
    np.testing.assert_allclose(back.loc[monthly.index, "GPP"], monthly["GPP"])


# -------------------------------------------------------------------------- tidy and folders


def write_tidy_daily(folder: Path, site: str = "ZZ-Tdy", name: str = "tidy.csv") -> Path:
    days = pd.date_range("2011-05-01", "2011-06-30", freq="D")
    gpp = np.where(days.month == 5, 4.0, 6.0)
    gpp[:10] = -9999  # missing: May's mean stays 4
    return write_csv(
        folder,
        name,
        {
            "site_id": site,
            "time": days.strftime("%Y-%m-%d"),
            "GPP": gpp,
            "NEE": -1.0,
            "TA": np.where(days.month == 5, 20.0, 24.0),
        },
    )


def test_read_tidy_aggregates_daily_rows_to_months(tmp_path):
    table = read_tidy(write_tidy_daily(tmp_path))
    assert list(table.columns) == ["site_id", "time", "GPP", "RE", "NEE", "TA"]
    assert table["time"].tolist() == [pd.Timestamp("2011-05-01"), pd.Timestamp("2011-06-01")]
    assert table["GPP"].tolist() == [4.0, 6.0]
    assert table["RE"].isna().all()
    assert table["TA"].tolist() == [20.0, 24.0]
    assert (table["site_id"] == "ZZ-Tdy").all()


@pytest.fixture
def site_folder(tmp_path) -> Path:
    """A folder with one FLUXNET tower, one tidy tower and sites.csv."""
    write_fluxnet_monthly("ZZ-Flx", demo_monthly(), tmp_path)
    write_tidy_daily(tmp_path)
    meta = pd.DataFrame(
        {"lat": [25.36, 25.9], "lon": [-81.08, -81.7], "ecosystem": ["mangrove", "saltmarsh"]},
        index=pd.Index(["ZZ-Flx", "ZZ-Tdy"], name="site_id"),
    )
    path = write_sites_table(meta, tmp_path)
    assert path.read_text().splitlines()[0] == "site_id,lat,lon,ecosystem"
    return tmp_path


def test_read_sites_joins_fluxnet_and_tidy_towers(site_folder):
    sites = read_sites(site_folder)
    assert isinstance(sites, SiteData)
    assert sites.meta.index.name == "site_id"
    assert list(sites.meta.index) == ["ZZ-Flx", "ZZ-Tdy"]
    assert sites.meta["ecosystem"].tolist() == ["mangrove", "saltmarsh"]
    assert sites.meta["lat"].tolist() == [25.36, 25.9]
    fluxes = sites.fluxes
    assert list(fluxes.columns[:5]) == ["site_id", "time", "GPP", "RE", "NEE"]
    assert {"TA", "NEE_QC"} <= set(fluxes.columns)
    assert pd.api.types.is_datetime64_any_dtype(fluxes["time"])
    assert (fluxes["time"].dt.day == 1).all()
    per_site = fluxes.groupby("site_id").size()
    assert per_site.to_dict() == {"ZZ-Flx": 24, "ZZ-Tdy": 2}
    tidy = fluxes[fluxes["site_id"] == "ZZ-Tdy"].set_index("time")
    assert tidy["GPP"].tolist() == [4.0, 6.0]
    flx = fluxes[fluxes["site_id"] == "ZZ-Flx"].set_index("time")
    expected = demo_monthly()
    np.testing.assert_allclose(flx.loc[expected.index, "NEE"], expected["NEE"])
    assert fluxes.equals(fluxes.sort_values(["site_id", "time"], ignore_index=True))


def test_read_sites_prefers_the_monthly_file_and_skips_auxiliary_products(site_folder):
    write_csv(
        site_folder,
        "FLX_ZZ-Flx_FLUXNET2015_ERAI_DD_1989-2014_1-4.csv",
        {"TIMESTAMP": ["19890101"], "TA_ERA": [1.0]},
    )
    write_csv(  # a DD file of the same tower: the MM file is read instead
        site_folder,
        "FLX_ZZ-Flx_FLUXNET2015_SUBSET_DD_2011-2011_1-4.csv",
        {"TIMESTAMP": ["20110101"], "NEE_VUT_REF": [99.0]},
    )
    fluxes = read_sites(site_folder).fluxes
    assert fluxes.loc[fluxes["site_id"] == "ZZ-Flx", "NEE"].max() < 10


# ----------------------------------------------------------------------------------- errors


def test_error_bad_file_name(tmp_path):
    path = write_csv(tmp_path, "FLX_US-Xyz_daily.csv", {"TIMESTAMP": ["20100101"]})
    with pytest.raises(
        InvalidTowerDataError, match=r"FLX_US-Xyz_daily\.csv.*FLX_<SITE>_<PRODUCT>_<RES>"
    ):
        read_fluxnet(path)


def test_error_annual_file(tmp_path):
    path = write_csv(tmp_path, "FLX_US-Xyz_FLUXNET2015_FULLSET_YY_2010-2011_1-4.csv", {"A": [1]})
    with pytest.raises(InvalidTowerDataError, match="YY_2010-2011_1-4.csv: annual"):
        read_fluxnet(path)


def test_error_missing_flux_columns_suggests_dt(tmp_path):
    path = write_csv(
        tmp_path,
        "FLX_US-Xyz_FLUXNET2015_FULLSET_DD_2010-2010_1-4.csv",
        {
            "TIMESTAMP": ["20100101"],
            "NEE_VUT_REF": [1.0],
            "GPP_DT_VUT_REF": [2.0],
            "RECO_DT_VUT_REF": [3.0],
        },
    )
    with pytest.raises(
        InvalidTowerDataError,
        match=r"FLX_US-Xyz.*GPP_NT_VUT_REF, RECO_NT_VUT_REF.*use --partitioning DT",
    ):
        read_fluxnet(path)
    assert read_fluxnet(path, partitioning="DT", min_coverage=0)["GPP"].item() == 2.0


def test_error_no_flux_columns_at_all(tmp_path):
    path = write_csv(
        tmp_path, "FLX_US-Xyz_FLUXNET2015_FULLSET_DD_2010-2010_1-4.csv", {"TIMESTAMP": ["20100101"]}
    )
    with pytest.raises(
        InvalidTowerDataError, match=r"FLX_US-Xyz.*missing flux column\(s\) GPP_NT_VUT_REF"
    ):
        read_fluxnet(path)


def test_error_no_valid_month(tmp_path):
    monthly = demo_monthly().assign(NEE_QC=0.1)
    path = write_fluxnet_monthly("ZZ-Bad", monthly, tmp_path)
    with pytest.raises(InvalidTowerDataError, match=r"FLX_ZZ-Bad.*no month keeps a valid flux"):
        read_fluxnet(path)


def rewrite_sites(folder: Path, text: str) -> None:
    (folder / "sites.csv").write_text(text)


def test_error_sites_table_missing_column(site_folder):
    rewrite_sites(site_folder, "site_id,lat,lon\nZZ-Flx,25,-81\nZZ-Tdy,25,-81\n")
    with pytest.raises(InvalidTowerDataError, match=r"sites\.csv: missing column\(s\) ecosystem"):
        read_sites(site_folder)


def test_error_sites_table_absent(site_folder):
    (site_folder / "sites.csv").unlink()
    with pytest.raises(InvalidTowerDataError, match=r"sites\.csv: missing"):
        read_sites(site_folder)


def test_error_unknown_ecosystem(site_folder):
    rewrite_sites(
        site_folder, "site_id,lat,lon,ecosystem\nZZ-Flx,25,-81,seagrass\nZZ-Tdy,25,-81,saltmarsh\n"
    )
    with pytest.raises(InvalidTowerDataError, match=r"ZZ-Flx \('seagrass'\).*mangrove, saltmarsh"):
        read_sites(site_folder)


def test_error_duplicated_site_id(site_folder):
    rewrite_sites(
        site_folder,
        "site_id,lat,lon,ecosystem\nZZ-Flx,25,-81,mangrove\nZZ-Tdy,25,-81,saltmarsh\n"
        "ZZ-Flx,26,-81,mangrove\n",
    )
    with pytest.raises(InvalidTowerDataError, match="ZZ-Flx listed more than once"):
        read_sites(site_folder)


def test_error_site_file_without_row(site_folder):
    write_fluxnet_monthly("ZZ-Xtr", demo_monthly(), site_folder)
    with pytest.raises(InvalidTowerDataError, match=r"no row for site\(s\) ZZ-Xtr \(FLX_ZZ-Xtr_"):
        read_sites(site_folder)


def test_error_site_row_without_file(site_folder):
    with (site_folder / "sites.csv").open("a") as f:
        f.write("ZZ-Mss,25,-81,mangrove\n")
    with pytest.raises(InvalidTowerDataError, match=r"no flux data for site\(s\) ZZ-Mss"):
        read_sites(site_folder)


def test_error_site_in_two_files(site_folder):
    write_tidy_daily(site_folder, site="ZZ-Flx", name="more.csv")
    with pytest.raises(
        InvalidTowerDataError, match=r"ZZ-Flx has data in both FLX_ZZ-Flx.*more\.csv"
    ):
        read_sites(site_folder)


def test_error_unparseable_fluxnet_name_in_folder(site_folder):
    write_csv(site_folder, "FLX_ZZ-Flx_monthly.csv", {"TIMESTAMP": ["201001"]})
    with pytest.raises(
        InvalidTowerDataError, match=r"FLX_ZZ-Flx_monthly\.csv: not a FLUXNET file name"
    ):
        read_sites(site_folder)


def test_error_csv_that_is_neither_fluxnet_nor_tidy(site_folder):
    write_csv(site_folder, "notes.csv", {"station": ["ZZ-Flx"], "date": ["2011-05-01"]})
    with pytest.raises(InvalidTowerDataError, match=r"notes\.csv: not a tidy site table"):
        read_sites(site_folder)


def test_error_tidy_without_fluxes_or_with_text(tmp_path):
    no_flux = write_csv(tmp_path, "a.csv", {"site_id": ["ZZ-Tdy"], "time": ["2011-05-01"]})
    with pytest.raises(InvalidTowerDataError, match=r"a\.csv: no flux column"):
        read_tidy(no_flux)
    text = write_csv(
        tmp_path, "b.csv", {"site_id": ["ZZ-Tdy"], "time": ["2011-05-01"], "GPP": ["low"]}
    )
    with pytest.raises(InvalidTowerDataError, match=r"b\.csv: column GPP has non-numeric values"):
        read_tidy(text)
    infinite = write_csv(
        tmp_path, "c.csv", {"site_id": ["ZZ-Tdy"], "time": ["2011-05-01"], "GPP": ["inf"]}
    )
    with pytest.raises(
        InvalidTowerDataError, match=r"c\.csv: column GPP has non-numeric values \(e\.g\. 'inf'\)"
    ):
        read_tidy(infinite)


@pytest.mark.parametrize("written", ["01/02/2011", "2/1/2011", "Feb 1 2011"])
def test_error_tidy_dates_that_are_not_iso(tmp_path, written):
    path = write_csv(tmp_path, "d.csv", {"site_id": ["ZZ-Tdy"], "time": [written], "GPP": [1.0]})
    with pytest.raises(
        InvalidTowerDataError,
        match=rf"d\.csv: column time has values that are not ISO dates \(e\.g\. '{written}'\)",
    ):
        read_tidy(path)


def test_tidy_iso_dates_with_or_without_day_and_hour(tmp_path):
    times = ["2011-05", "2011-05-03", "2011-06-01T12:00", "2011-06-02 00:30"]
    path = write_csv(tmp_path, "e.csv", {"site_id": "ZZ-Tdy", "time": times, "GPP": [1.0] * 4})
    assert read_tidy(path)["time"].tolist() == [pd.Timestamp("2011-05"), pd.Timestamp("2011-06")]


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (lambda m: m.assign(GPP=-m["GPP"]), r"flux GPP ranges -\d"),  # uptake sign on GPP
        (lambda m: m.assign(RE=m["RE"] * 1000), r"flux RE ranges \d+\.\.\d+"),  # mgC for gC
    ],
    ids=["gpp-negative", "re-scaled"],
)
def test_error_implausible_tower_fluxes(tmp_path, change, shown):
    write_fluxnet_monthly("ZZ-Flx", change(demo_monthly()), tmp_path)
    meta = pd.DataFrame(
        {"lat": [25.36], "lon": [-81.08], "ecosystem": ["mangrove"]},
        index=pd.Index(["ZZ-Flx"], name="site_id"),
    )
    write_sites_table(meta, tmp_path)
    with pytest.raises(
        InvalidTowerDataError, match=rf"site ZZ-Flx \(FLX_ZZ-Flx_.*\): {shown}.*signs"
    ):
        read_sites(tmp_path)


def test_error_sites_table_names_the_columns_it_has(tmp_path):
    (tmp_path / "sites.csv").write_text("Site_ID,Lat,Lon,Ecosystem\nZZ-Flx,25.3,-81.0,mangrove\n")
    with pytest.raises(
        InvalidTowerDataError, match="missing column.*lower case.*has Site_ID, Lat, Lon"
    ):
        read_sites(tmp_path)


# ------------------------------------------------------- other products, uncertainty, units


def test_fluxnet_ch4_hh_file_reads_its_own_columns(tmp_path):
    times = steps("2018-01-01", "2018-03-01", "30min")
    n = len(times)
    path = write_csv(
        tmp_path,
        "FLX_US-Xyz_FLUXNET-CH4_HH_2018-2018_1-1.csv",
        {
            "TIMESTAMP_START": times.strftime("%Y%m%d%H%M"),
            "TIMESTAMP_END": (times + pd.Timedelta("30min")).strftime("%Y%m%d%H%M"),
            "NEE": np.where(np.arange(n) % 3 == 0, np.nan, -1.0),  # raw: not read
            "NEE_F": np.full(n, -1.0),
            "GPP_NT": np.full(n, 4.0),
            "RECO_NT": np.full(n, 3.0),
            "GPP_DT": np.full(n, 4.5),
            "RECO_DT": np.full(n, 3.5),
            "TA_F": np.full(n, 20.0),
            "FCH4_F_RANDUNC": np.full(n, 9.0),  # the methane flux's: not a CO2 uncertainty
        },
    )
    monthly = read_fluxnet(path, partitioning="DT")
    assert len(monthly) == 2
    np.testing.assert_allclose(monthly["GPP"], 4.5 * UMOL_CO2_TO_GC_PER_DAY)
    np.testing.assert_allclose(monthly["RE"], 3.5 * UMOL_CO2_TO_GC_PER_DAY)
    np.testing.assert_allclose(monthly["NEE"], -1.0 * UMOL_CO2_TO_GC_PER_DAY)
    assert monthly["NEE_QC"].isna().all()
    assert not any(c.endswith("UNC") for c in monthly.columns)
    assert fluxnet_methods(path)["format"] == "FLUXNET-CH4"
    assert fluxnet_methods(path)["GPP_method"] == "GPP_NT"


@pytest.mark.parametrize(
    "name",
    [
        "AMF_US-Xyz_FLUXNET_FULLSET_DD_2015-2015_3-5.csv",
        "ICOSETC_BE-Xyz_FLUXNET_DD_L2.csv",
    ],
)
def test_network_prefixed_oneflux_file_with_uncertainty(tmp_path, name):
    days = steps("2015-01-01", "2015-03-01", "D")
    n = len(days)
    randunc = np.where(np.arange(n) % 2 == 0, 0.3, 0.4)
    path = write_csv(
        tmp_path,
        name,
        {
            "TIMESTAMP": days.strftime("%Y%m%d"),
            "NEE_VUT_REF": np.full(n, -1.5),
            "NEE_VUT_REF_QC": np.full(n, 0.9),
            "NEE_VUT_REF_RANDUNC": randunc,
            "NEE_VUT_REF_JOINTUNC": np.full(n, 0.5),
            "GPP_NT_VUT_REF": np.full(n, 6.0),
            "RECO_NT_VUT_REF": np.full(n, 4.5),
        },
    )
    monthly = read_fluxnet(path)
    np.testing.assert_allclose(monthly["NEE"], -1.5)
    january = randunc[:31]
    assert monthly.loc["2015-01", uncertainty_name("NEE", "RANDUNC")].item() == pytest.approx(
        np.sqrt((january**2).sum()) / 31
    )
    assert monthly.loc["2015-02", "NEE_JOINTUNC"].item() == pytest.approx(0.5 / np.sqrt(28))
    assert fluxnet_methods(path)["format"] == "ONEFlux"


@pytest.mark.shared_data
def test_real_dd_file_random_uncertainty_aggregates_as_independent_days(us_ar1):
    monthly = read_fluxnet(us_ar1, qc_min=0)
    with us_ar1.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["TIMESTAMP"].startswith("201107")]
    sigma = [float(r["NEE_VUT_REF_RANDUNC"]) for r in rows]
    sigma = [s for s in sigma if s != -9999]
    expected = sum(s * s for s in sigma) ** 0.5 / len(sigma)
    assert monthly.loc["2011-07", "NEE_RANDUNC"].item() == pytest.approx(expected, rel=1e-9)
    assert "NEE_JOINTUNC" not in monthly  # the SUBSET DD file has RANDUNC only
    assert (monthly["NEE_RANDUNC"].dropna() > 0).all()


def test_read_sites_reports_sources_of_fluxnet_and_tidy_towers(site_folder):
    sources = read_sites(site_folder).sources
    assert set(sources.columns) == {"file", "format", "GPP_method", "RE_method", "NEE_method"}
    fluxnet = sources[sources["format"] == "FLUXNET2015"]
    assert (fluxnet["GPP_method"] == "GPP_NT_VUT_REF").all()
    assert (sources.loc[sources["format"] == "tidy", "NEE_method"] == "NEE (tidy table)").all()


# ------------------------------------------------------------------ the tower format registry

TOY_NAME = re.compile(r"^TOY_(?P<site>[A-Za-z0-9]+-[A-Za-z0-9]+)\.csv$")


def toy_parse_name(path: Path) -> dict[str, str]:
    match = TOY_NAME.match(path.name)
    if match is None:
        raise InvalidTowerDataError(f"{path.name}: not a TOY_<SITE>.csv name")
    return {"site": match["site"], "res": "MM"}


def toy_read(
    path: Path, *, partitioning: str, qc_min: float, min_coverage: float
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Monthly ``month, gpp, re, nee`` columns, already in gC m-2 d-1."""
    table = pd.read_csv(path, dtype={"month": str})
    time = pd.DatetimeIndex(pd.to_datetime(table["month"], format="%Y-%m"), name="time")
    monthly = table[["gpp", "re", "nee"]].set_axis(FLUX_COLUMNS, axis=1).set_axis(time)
    methods = {"file": path.name, "format": "toy"}
    return monthly, methods | {f"{flux}_method": f"{flux.lower()} (toy)" for flux in FLUX_COLUMNS}


@pytest.fixture
def toy_format():
    """A tower format for TOY_<SITE>.csv files, registered for one test only."""
    before = list(TOWER_FORMATS)
    toy = register_tower_format(
        TowerFormat(
            name="toy",
            pattern="TOY_<SITE>.csv",
            claims=lambda name: name.startswith("TOY_"),
            parse_name=toy_parse_name,
            read=toy_read,
        )
    )
    yield toy
    del TOWER_FORMATS[toy.name]
    assert list(TOWER_FORMATS) == before


def test_read_sites_reads_a_registered_tower_format(tmp_path, toy_format):
    (tmp_path / "TOY_ZZ-Toy.csv").write_text(
        "month,gpp,re,nee\n2015-01,4.0,3.0,-1.0\n2015-02,5.0,3.5,-1.5\n"
    )
    meta = pd.DataFrame(
        {"lat": [25.3], "lon": [-81.0], "ecosystem": ["mangrove"]},
        index=pd.Index(["ZZ-Toy"], name="site_id"),
    )
    write_sites_table(meta, tmp_path)
    sites = read_sites(tmp_path)
    assert list(sites.meta.index) == ["ZZ-Toy"]
    assert sites.fluxes["GPP"].tolist() == [4.0, 5.0]
    assert sites.fluxes["time"].tolist() == [pd.Timestamp("2015-01-01"), pd.Timestamp("2015-02-01")]
    assert sites.sources.loc["ZZ-Toy", "format"] == "toy"
    assert sites.sources.loc["ZZ-Toy", "NEE_method"] == "nee (toy)"


def test_registered_tower_format_is_named_where_files_are_listed(tmp_path, toy_format):
    write_sites_table(
        pd.DataFrame(
            {"lat": [25.3], "lon": [-81.0], "ecosystem": ["mangrove"]},
            index=pd.Index(["ZZ-Toy"], name="site_id"),
        ),
        tmp_path,
    )
    with pytest.raises(
        InvalidTowerDataError, match=r"no flux files; add .*toy files \(TOY_<SITE>\.csv\)"
    ):
        read_sites(tmp_path)
    (tmp_path / "TOY_bad.csv").write_text("month,gpp,re,nee\n")
    with pytest.raises(InvalidTowerDataError, match="TOY_bad.csv: not a TOY_<SITE>.csv name"):
        read_sites(tmp_path)
    with pytest.raises(ValueError, match="'toy' is registered already"):
        register_tower_format(toy_format)


@pytest.mark.parametrize("res", ["DD", "MM"])
def test_error_half_hourly_rows_in_a_daily_or_monthly_file(tmp_path, res):
    times = steps("2015-01-01", "2015-01-03", "30min")
    path = write_csv(
        tmp_path,
        f"FLX_US-Xyz_FLUXNET2015_SUBSET_{res}_2015-2015_1-4.csv",
        {
            "TIMESTAMP": times.strftime("%Y%m%d%H%M"),
            "NEE_VUT_REF": np.full(len(times), -3.0),
            "GPP_NT_VUT_REF": np.full(len(times), 6.0),
            "RECO_NT_VUT_REF": np.full(len(times), 3.0),
        },
    )
    with pytest.raises(
        InvalidTowerDataError,
        match=rf"{res}_2015-2015_1-4\.csv: the rows look half-hourly in µmol m-2 s-1 "
        r"\(timestamps with a time of day.*name the file HH",
    ):
        read_fluxnet(path)


def test_error_several_rows_per_day_in_a_dd_file(tmp_path):
    days = np.repeat(steps("2015-01-01", "2015-01-03", "D").strftime("%Y%m%d"), 48)
    path = write_csv(
        tmp_path,
        "FLX_US-Xyz_FLUXNET2015_SUBSET_DD_2015-2015_1-4.csv",
        {
            "TIMESTAMP": days,
            "NEE_VUT_REF": np.full(len(days), -3.0),
            "GPP_NT_VUT_REF": np.full(len(days), 6.0),
            "RECO_NT_VUT_REF": np.full(len(days), 3.0),
        },
    )
    with pytest.raises(InvalidTowerDataError, match=r"look half-hourly.*48 rows on 20150101"):
        read_fluxnet(path)
