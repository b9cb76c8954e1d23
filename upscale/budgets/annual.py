"""Monthly and annual amounts of flux maps (gC m-2 per month or year), in the valid period."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
import xarray as xr

from upscale.errors import InvalidMapsError
from upscale.io.exports import Layer
from upscale.schema import (
    ANNUAL_FLUX_UNITS,
    EXTRAPOLATED,
    FLUXES,
    MONTHLY_FLUX_UNITS,
    spread_attrs,
    spread_name,
)

ExportPeriod = Literal["annual", "monthly"]
"""The time steps of exported layers: annual totals or monthly means."""


def valid_period(maps: xr.Dataset) -> xr.Dataset:
    """Months from the first full model window on (``valid_from`` attribute), lazily."""
    start = maps.attrs.get("valid_from")
    return maps.sel(time=slice(start, None)) if start else maps


def annual_totals(maps: xr.Dataset) -> xr.Dataset:
    """Sum monthly mean fluxes (gC m-2 d-1) and their spreads to annual totals (gC m-2 yr-1).

    Each month's mean daily flux is multiplied by its number of days. Only calendar years
    whose twelve months all lie in the valid period are kept, so a year is never a
    silent partial sum. Spreads (``GPP_std``...) are summed the same way, which is the
    spread of the annual total when the members' errors are fully correlated between
    months: an upper bound.

    Parameters
    ----------
    maps
        Maps with monthly flux variables ``(time, y, x)`` and optionally their spreads.

    Returns
    -------
    xarray.Dataset
        Flux and spread variables ``(year, y, x)``, lazy when the maps are.

    Raises
    ------
    InvalidMapsError
        When the maps hold no complete year.
    """
    names = [n for flux in FLUXES for n in (flux, spread_name(flux)) if n in maps]
    fluxes = valid_period(maps)[names]
    times = pd.DatetimeIndex(fluxes["time"].values)
    months_per_year = pd.Series(times.month, index=times.year).groupby(level=0).nunique()
    years = months_per_year.index[months_per_year == 12]
    if len(years) == 0:
        raise InvalidMapsError(
            f"the maps hold no complete calendar year in their valid period "
            f"{times[0]:%Y-%m}..{times[-1]:%Y-%m}; annual totals need all twelve months"
        )
    fluxes = fluxes.sel(time=fluxes["time"].dt.year.isin(years))
    totals = (fluxes * fluxes["time"].dt.days_in_month).groupby("time.year").sum(skipna=False)
    for flux in FLUXES:
        if flux in totals:
            totals[flux].attrs = FLUXES[flux].attrs() | {"units": ANNUAL_FLUX_UNITS}
        if spread_name(flux) in totals:
            totals[spread_name(flux)].attrs = spread_attrs(flux) | {
                "units": ANNUAL_FLUX_UNITS,
                "comment": "Monthly spreads summed: errors taken as fully correlated in time.",
            }
    return totals


def monthly_amounts(maps: xr.Dataset) -> xr.Dataset:
    """Monthly mean fluxes (gC m-2 d-1) and spreads times days: gC m-2 per month.

    Only months of the valid period are kept (see
    [`valid_period`][upscale.budgets.annual.valid_period]), lazily.
    """
    names = [n for flux in FLUXES for n in (flux, spread_name(flux)) if n in maps]
    fluxes = valid_period(maps)[names]
    amounts = fluxes * fluxes["time"].dt.days_in_month
    for name in names:
        amounts[name].attrs = maps[name].attrs | {"units": MONTHLY_FLUX_UNITS}
    return amounts


def export_layers(
    maps: xr.Dataset, periods: Sequence[ExportPeriod] = ("annual",)
) -> dict[str, Layer]:
    """Return the layers an export writes, one file each, by name: totals, means and shares.

    Parameters
    ----------
    maps
        Output of [`flux_maps`][upscale.engine.tiles.flux_maps], as written and reopened.
    periods
        ``annual``: one band per complete year of each flux and its spread (``GPP_std``...),
        totals in gC m-2 yr-1 ([`annual_totals`][upscale.budgets.annual.annual_totals]), layers
        ``<VAR>_annual``. ``monthly``: one band per month of the valid period, in gC m-2 d-1,
        layers ``<VAR>_monthly``. The share of months outside the towers' domain is one
        layer, ``extrapolated_fraction``, whatever the periods.

    Returns
    -------
    dict of str to Layer
        Lazy bands and their labels (``GPP 2012 total``, ``GPP 2012-03 mean``) by layer
        name, for a writer such as [`export_maps`][upscale.io.exports.export_maps].
    """
    layers: dict[str, Layer] = {}
    if "annual" in periods:
        totals = annual_totals(maps)
        for name in totals.data_vars:
            labels = [f"{name} {year} total" for year in totals["year"].values]
            layers[f"{name}_annual"] = (totals[name], labels)
    if "monthly" in periods:
        monthly = valid_period(maps)
        for name in (n for flux in FLUXES for n in (flux, spread_name(flux)) if n in maps):
            labels = [f"{name} {t:%Y-%m} mean" for t in monthly.indexes["time"]]
            layers[f"{name}_monthly"] = (monthly[name], labels)
    if EXTRAPOLATED.name in maps:
        months = valid_period(maps).indexes["time"]
        label = f"{EXTRAPOLATED.name} {months[0]:%Y-%m}..{months[-1]:%Y-%m}"
        layers[EXTRAPOLATED.name] = (maps[EXTRAPOLATED.name].expand_dims(band=1), [label])
    return layers
