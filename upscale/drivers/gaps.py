"""Cloud gaps in optical drivers: filled, flagged and counted, never silently passed on.

Optical products (LAI, FAPAR, NDVI, EVI, LST) miss months under persistent cloud. A short
gap is bridged by linear interpolation in time; a long one takes the pixel's own
climatology for that calendar month. Every filled value is flagged in ``FILLED`` (the share
of the pixel-month's optical drivers that were filled, a feature the models read), and the
share of missing months per pixel is kept as ``<VAR>_gap_fraction``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

OPTICAL: tuple[str, ...] = ("LAI", "FAPAR", "NDVI", "EVI", "LST_DAY", "LST_NIGHT")
"""Drivers from optical sensors, the ones clouds leave gaps in."""

FILLED = "FILLED"
"""Cube variable: share of the pixel-month's optical drivers that were filled (0..1)."""

GAP_FRACTION_SUFFIX = "_gap_fraction"


def gap_fraction_name(variable: str) -> str:
    """Name of the variable holding the share of missing months of ``variable``."""
    return f"{variable}{GAP_FRACTION_SUFFIX}"


def fill_gaps(
    cube: xr.Dataset,
    *,
    variables: Sequence[str] | None = None,
    max_interpolated: int = 2,
) -> xr.Dataset:
    """Fill the gaps of optical drivers and record where and how much was filled.

    Parameters
    ----------
    cube
        Monthly drivers ``(time, y, x)``; NaN marks a missing value.
    variables
        Drivers to fill (default: the optical ones the cube has).
    max_interpolated
        Gaps of at most this many consecutive months are interpolated linearly; longer
        ones take the pixel's mean of that calendar month over the other years.

    Returns
    -------
    xarray.Dataset
        The cube with the gaps filled, ``FILLED`` ``(time, y, x)`` and one
        ``<VAR>_gap_fraction`` ``(y, x)`` per filled driver.

    Notes
    -----
    A calendar month never observed at a pixel in any year has no climatology; such gaps
    are bridged linearly whatever their length (and flagged like the others). Pixels with
    no observation at all stay NaN, so that ``predict`` names them if they are wetland.
    """
    names = [v for v in (variables or OPTICAL) if v in cube.data_vars]
    if not names:
        return cube
    out = cube.copy()
    filled_count = xr.zeros_like(cube[names[0]], dtype="float32")
    months = cube["time"].dt.month
    for name in names:
        values = cube[name]
        missing = values.isnull()
        interpolated = _bridge(values, max_interpolated)
        climatology = values.groupby(months).mean("time")
        by_month = climatology.sel(month=months).drop_vars("month")
        # A calendar month never observed at a pixel has no climatology: bridge it too.
        result = _bridge(interpolated.fillna(by_month), None)
        out[name] = result.astype(values.dtype)
        out[name].attrs = values.attrs
        filled_count = filled_count + (missing & result.notnull())
        fraction = missing.mean("time").astype("float32")
        fraction.attrs = {
            "long_name": f"share of months with {name} missing before gap filling",
            "units": "1",
        }
        out[gap_fraction_name(name)] = fraction
    flag = (filled_count / len(names)).astype("float32")
    flag.attrs = {
        "long_name": "share of the optical drivers of the pixel-month filled from other months",
        "units": "1",
        "comment": f"filled: {', '.join(names)}; gaps of up to {max_interpolated} months "
        "interpolated linearly, longer ones from the pixel's calendar-month climatology",
    }
    out[FILLED] = flag
    out.attrs["gap_filling"] = flag.attrs["comment"]
    return out


def _bridge(values: xr.DataArray, max_months: int | None) -> xr.DataArray:
    """Bridge runs of at most ``max_months`` missing months (None: any), linearly inside."""
    if max_months is not None and max_months < 1:
        return values
    if values.chunks:  # interpolation needs whole series (filling may have split them)
        values = values.chunk({"time": -1})
    # Months differ in length, so the limit is in months (index steps), not days.
    steps = values.assign_coords(time=np.arange(values.sizes["time"]))
    gap = None if max_months is None else max_months + 1
    bridged = steps.interpolate_na("time", method="linear", max_gap=gap)
    # Before the first and after the last observation there is nothing to interpolate
    # towards: hold the nearest observation, over as short a run.
    seen = steps.notnull()
    leading = seen.cumsum("time") == 0
    trailing = (
        seen.isel(time=slice(None, None, -1)).cumsum("time").isel(time=slice(None, None, -1)) == 0
    )
    held = bridged.where(~trailing, bridged.ffill("time", limit=max_months))
    held = held.where(~leading, held.bfill("time", limit=max_months))
    return held.assign_coords(time=values["time"])


def gap_summary(cube: xr.Dataset, where: xr.DataArray | None = None) -> dict[str, float]:
    """Mean gap fraction per driver (0..1), for reports and the maps' provenance.

    Parameters
    ----------
    cube
        A gap-filled cube (with ``<VAR>_gap_fraction``).
    where
        Pixels to average over (e.g. the wetland); pixels never observed (sea, gap
        fraction 1) are always left out.
    """
    summary = {}
    for name in cube.data_vars:
        if not str(name).endswith(GAP_FRACTION_SUFFIX):
            continue
        fraction = cube[name]
        keep = fraction < 1 if where is None else (fraction < 1) & where
        summary[str(name).removesuffix(GAP_FRACTION_SUFFIX)] = round(
            float(fraction.where(keep).mean()), 4
        )
    return summary
