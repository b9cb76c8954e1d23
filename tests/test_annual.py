import numpy as np
import pandas as pd
import pytest
import xarray as xr

from upscale.budgets.annual import annual_totals
from upscale.errors import InvalidMapsError


def constant_maps(start="2011-06", months=31, valid_from=None, value=1.0):
    times = pd.date_range(start, periods=months, freq="MS")
    data = np.full((months, 2, 3), value, dtype="float32")
    maps = xr.Dataset(
        {"GPP": (("time", "y", "x"), data)}, coords={"time": times, "y": [1, 0], "x": [0, 1, 2]}
    )
    if valid_from:
        maps.attrs["valid_from"] = valid_from
    return maps


def test_constant_flux_sums_to_days_in_year():
    totals = annual_totals(constant_maps(start="2011-01", months=24))
    assert list(totals["year"].values) == [2011, 2012]
    np.testing.assert_allclose(totals["GPP"].sel(year=2011), 365)
    np.testing.assert_allclose(totals["GPP"].sel(year=2012), 366)
    assert totals["GPP"].attrs["units"] == "gC m-2 yr-1"


def test_partial_years_are_dropped():
    totals = annual_totals(constant_maps(start="2011-06", months=31))  # to 2013-12
    assert list(totals["year"].values) == [2012, 2013]


def test_months_before_first_window_are_excluded():
    maps = constant_maps(start="2011-01", months=36, valid_from="2011-03-01")
    assert list(annual_totals(maps)["year"].values) == [2012, 2013]


def test_no_complete_year():
    with pytest.raises(InvalidMapsError, match=r"no complete calendar year in .* 2011-03..2011-12"):
        annual_totals(constant_maps(start="2011-03", months=10))
