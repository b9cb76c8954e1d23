"""Benchmark: reading a 10-year half-hourly AmeriFlux BASE file to monthly tower values.

Builds a 10-year HH BASE file (175,200 rows): the real US-Tw3 year of ``../shared/data``
repeated with its timestamps shifted by 365 days each time (continuous, as BASE files are),
or, without ``../shared``, generated half-hours with the same columns. Times `read_sites` on
a folder holding it, with the PI's partitioned fluxes, and (when hesseflux is installed)
again with ``GPP_PI_F``/``RECO_PI_F`` removed so that NEE is partitioned by hesseflux. Prints
seconds and rows per second. The issue's target is seconds, not minutes, for the PI path.

Run: ``.venv/bin/python benchmarks/read_towers.py [--years 10] [--no-partition]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from upscale.towers.sites import read_sites, write_sites_table

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "AMF_US-Tw3_BASE_HH_5-5_2014.csv"
SITE = "US-Tw3"
YEAR_ROWS = 17520  # half-hours in a 365-day year


def one_year() -> pd.DataFrame:
    """The real year when ../shared is there, else a generated one with the same columns."""
    if REAL.exists():
        return pd.read_csv(REAL, comment="#", dtype={"TIMESTAMP_START": str, "TIMESTAMP_END": str})
    rng = np.random.default_rng(0)
    start = pd.date_range("2014-01-01", periods=YEAR_ROWS, freq="30min")
    day = np.sin(np.pi * ((start.hour + start.minute / 60 - 6) / 12).clip(0, 1))
    gpp = 10 * day + rng.normal(0, 1, YEAR_ROWS).clip(0)
    reco = np.full(YEAR_ROWS, 3.0)
    fc = np.where(rng.random(YEAR_ROWS) < 0.25, -9999.0, reco - gpp)
    return pd.DataFrame(
        {
            "TIMESTAMP_START": start.strftime("%Y%m%d%H%M"),
            "TIMESTAMP_END": (start + pd.Timedelta("30min")).strftime("%Y%m%d%H%M"),
            "FC": fc,
            "USTAR": rng.uniform(0.05, 0.6, YEAR_ROWS),
            "TA": 15 + 8 * day + rng.normal(0, 1, YEAR_ROWS),
            "SW_IN": 800 * day,
            "VPD_PI": 5 + 10 * day,
            "FC_PI_F": reco - gpp,
            "RECO_PI_F": reco,
            "GPP_PI_F": gpp,
        }
    )


def write_years(folder: Path, years: int, *, partitioned: bool) -> tuple[Path, int]:
    """Write a BASE file of ``years`` copies of the year, shifted by 365 days each."""
    year = one_year()
    if not partitioned:
        year = year.drop(columns=["GPP_PI_F", "RECO_PI_F"])
    start = pd.to_datetime(year["TIMESTAMP_START"], format="%Y%m%d%H%M")
    copies = []
    for k in range(years):
        shift = pd.Timedelta(days=365 * (k - years + 1))
        copy = year.copy()
        copy["TIMESTAMP_START"] = (start + shift).dt.strftime("%Y%m%d%H%M")
        copy["TIMESTAMP_END"] = (start + shift + pd.Timedelta("30min")).dt.strftime("%Y%m%d%H%M")
        copies.append(copy)
    table = pd.concat(copies, ignore_index=True)
    path = folder / f"AMF_{SITE}_BASE_HH_5-5.csv"
    with path.open("w") as f:
        f.write(f"# Site: {SITE}\n# Version: 5-5\n\n")
        table.to_csv(f, index=False)
    meta = pd.DataFrame(
        {"site_id": [SITE], "lat": [38.1159], "lon": [-121.6467], "ecosystem": ["saltmarsh"]}
    )
    write_sites_table(meta, folder)
    return path, len(table)


def timed(folder: Path, rows: int, label: str) -> None:
    began = time.perf_counter()
    sites = read_sites(folder)
    seconds = time.perf_counter() - began
    months = int(sites.fluxes["GPP"].notna().sum())
    method = sites.sources.loc[SITE, "GPP_method"]
    print(
        f"{label}: {seconds:.2f} s, {rows / seconds:,.0f} rows/s, {months} months of GPP ({method})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--no-partition", action="store_true", help="skip the hesseflux path")
    args = parser.parse_args()
    source = "the real US-Tw3 year repeated" if REAL.exists() else "generated half-hours"
    print(f"{args.years}-year HH BASE file from {source}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pi"
        folder.mkdir()
        _, rows = write_years(folder, args.years, partitioned=True)
        timed(folder, rows, "PI fluxes")
        if args.no_partition or importlib.util.find_spec("hesseflux") is None:
            print("hesseflux path skipped (pip install 'upscale[partition]')")
            return
        folder = Path(tmp) / "hesseflux"
        folder.mkdir()
        _, rows = write_years(folder, args.years, partitioned=False)
        timed(folder, rows, "hesseflux partitioning")


if __name__ == "__main__":
    main()
