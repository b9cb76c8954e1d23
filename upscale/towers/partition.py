"""Night-time partitioning of half-hourly NEE into GPP and RE with hesseflux (optional extra).

Towers whose files carry no partitioned fluxes (an AmeriFlux BASE file without ``GPP_PI_F``
and ``RECO_PI_F``) get them here, by the chain of Papale et al. (2006) and Reichstein et al.
(2005) as hesseflux implements it: u* filtering of night-time fluxes, MDS gap filling of NEE,
and a temperature regression of night-time NEE (Lloyd and Taylor 1994) that gives RE at every
step, GPP = RE - NEE. Install with ``pip install 'upscale[partition]'``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd

from upscale.errors import InvalidTowerDataError
from upscale.towers.monthly import MISSING

METHOD = "hesseflux night-time partitioning (Reichstein et al. 2005) of FC"
"""How ``SiteData.sources`` names the GPP and RE this module makes."""

NEE_METHOD = "FC u*-filtered and MDS gap-filled by hesseflux"
"""How ``SiteData.sources`` names the NEE this module fills."""

REQUIRED = ("FC", "TA", "SW_IN", "VPD", "USTAR")
"""Half-hourly columns the chain needs (µmol m-2 s-1, degC, W m-2, hPa, m s-1)."""

_UNDEF = MISSING  # hesseflux marks missing values with a number, never NaN
_DAY_SW_IN = 10.0  # W m-2: hesseflux's own day/night threshold
_ZERO_CELSIUS = 273.15


def partition_night_time(steps: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Partition measured half-hourly NEE into GPP and RE, and gap-fill NEE.

    Parameters
    ----------
    steps
        Regular (half-)hourly DatetimeIndex covering at least one year; columns ``FC``
        (measured NEE, µmol CO2 m-2 s-1, NaN where missing), ``TA`` (degC), ``SW_IN``
        (W m-2), ``VPD`` (hPa) and ``USTAR`` (m s-1).
    source
        The file the steps come from, named in errors.

    Returns
    -------
    pandas.DataFrame
        Same index; ``GPP``, ``RE`` and ``NEE`` (u*-filtered, MDS gap-filled), µmol CO2
        m-2 s-1, NaN where the chain could not give a value.

    Raises
    ------
    InvalidTowerDataError
        When hesseflux is not installed, a column is missing, or the steps cover less than
        a year (the u* threshold needs a year of nights).

    Notes
    -----
    The u* filter flags night-time fluxes below the threshold (Papale et al. 2006, one
    threshold per year). The regression of RE on temperature is fitted to measured,
    u*-filtered night-time NEE only, never to gap-filled values, so RE is not a model of a
    model; GPP = RE - NEE then uses the gap-filled NEE so that GPP has no gaps where NEE has
    none.
    """
    hesseflux = _import_hesseflux(source)
    missing = [c for c in REQUIRED if c not in steps or steps[c].isna().all()]
    if missing:
        raise InvalidTowerDataError(
            f"{source}: night-time partitioning needs {', '.join(REQUIRED)}, and "
            f"{', '.join(missing)} is missing or empty; give a file with the PI's GPP_PI_F "
            "and RECO_PI_F, or with these measurements"
        )
    if steps.index[-1] - steps.index[0] < pd.Timedelta(days=364):
        raise InvalidTowerDataError(
            f"{source}: night-time partitioning needs at least a year of half-hours (the u* "
            f"threshold is estimated per year); the file covers {steps.index[0]:%Y-%m-%d} to "
            f"{steps.index[-1]:%Y-%m-%d}"
        )
    frame = steps[list(REQUIRED)].astype(float)
    isday = _is_day(frame["SW_IN"])
    data = frame.fillna(_UNDEF)
    missing_flag = frame.isna().astype(int)
    with _quiet_numpy_aliases():
        _, ustar_flag = hesseflux.ustarfilter(
            data[["FC", "USTAR", "TA"]],
            flag=missing_flag[["FC", "USTAR", "TA"]],
            isday=isday,
            undef=_UNDEF,
        )
        low_ustar = np.asarray(ustar_flag) > 0
        measured = missing_flag["FC"].to_numpy().astype(bool) | low_ustar
        fill_flag = missing_flag[["SW_IN", "TA", "VPD", "FC"]].copy()
        fill_flag["FC"] = measured.astype(int)
        filled, _ = hesseflux.gapfill(
            data[["SW_IN", "TA", "VPD", "FC"]], flag=fill_flag, undef=_UNDEF
        )
        nee = filled["FC"].where(filled["FC"] != _UNDEF)
        # RE needs temperature at every step: the MDS-filled TA where TA has gaps.
        kelvin = filled["TA"].where(filled["TA"] != _UNDEF) + _ZERO_CELSIUS
        inputs = pd.DataFrame({"FC": data["FC"], "TA": kelvin.fillna(_UNDEF)}, frame.index)
        flags = pd.DataFrame({"FC": measured.astype(int), "TA": kelvin.isna().astype(int)})
        flags.index = frame.index
        parts = hesseflux.nee2gpp(
            inputs, flag=flags, isday=isday, undef=_UNDEF, method="reichstein"
        )
    re = parts["RECO"].where(parts["RECO"] != _UNDEF)
    return pd.DataFrame({"GPP": re - nee, "RE": re, "NEE": nee}, index=frame.index)


def _is_day(sw_in: pd.Series) -> np.ndarray:
    """Day where SW_IN passes hesseflux's threshold; gaps take the mean of their month's hour.

    A missing SW_IN would otherwise count as night and put daytime fluxes in the respiration
    fit.
    """
    index = pd.DatetimeIndex(sw_in.index)
    typical = sw_in.groupby([index.year, index.month, index.hour]).transform("mean")
    # A writable copy: hesseflux assigns into it.
    return np.array(sw_in.fillna(typical).fillna(0.0) > _DAY_SW_IN, dtype=bool)


def _import_hesseflux(source: str):  # noqa: ANN202 - the module, typed by hesseflux
    try:
        import hesseflux
    except ImportError:
        raise InvalidTowerDataError(
            f"{source}: has no partitioned fluxes (GPP_PI_F, RECO_PI_F), and partitioning its "
            "NEE needs hesseflux: pip install 'upscale[partition]'"
        ) from None
    return hesseflux


@contextlib.contextmanager
def _quiet_numpy_aliases() -> Iterator[None]:
    """Lend hesseflux the ``np.int``/``np.float`` aliases NumPy 1.24 removed, then take them back.

    hesseflux 5.0's Reichstein regression still spells them; without the aliases it fails on
    any current NumPy. Its fits also warn on every window with too few nights, which says
    nothing a user can act on.
    """
    added = [name for name in ("int", "float") if name not in np.__dict__]
    for name in added:
        setattr(np, name, {"int": int, "float": float}[name])
    to_numpy = pd.Series.to_numpy

    def writable(self: pd.Series, *args: object, **kwargs: object) -> np.ndarray:
        array = to_numpy(self, *args, **kwargs)
        with contextlib.suppress(ValueError):
            array.flags.writeable = True
        return array

    pd.Series.to_numpy = writable
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        pd.Series.to_numpy = to_numpy
        for name in added:
            delattr(np, name)
