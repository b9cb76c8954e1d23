"""The embedded demo region: a deterministic coastal wetland with a known flux truth.

The region sits on the real south-west coast of Florida (Ten Thousand Islands to Cape Sable,
home of the US-Skr mangrove tower), with mangroves along the shore and saltmarsh behind
them. Drivers are synthetic but climatologically plausible; the fluxes come from a
process-based truth with memory, so the demo can show that models recover it:

* GPP is light-use efficiency: ``eps * FAPAR * PAR * f(TA) * f(VPD) * f(W)``, where the water
  availability ``W`` is an exponentially weighted mean of the last 6 months of precipitation
  (memory of about 2 months).
* RE is Lloyd-Taylor on air temperature, fed by an exponentially weighted mean of the last
  12 months of GPP (memory of about 4 months): RE remembers longer than GPP.
* A smooth field that no satellite sees (standing for porewater salinity and nutrients)
  scales eps and the base respiration by up to +-8 %, so towers differ in ways the drivers do
  not explain, as real towers do.
* NEE = RE - GPP. The towers measure NEE with noise; RE is estimated with noise and tower GPP
  is ``RE - NEE``, as in night-time partitioning. Records have random gaps, low-QC months
  and different lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from rasterio.features import shapes

from upscale.io.durable import refuse_overwrite
from upscale.io.stores import write_store
from upscale.schema import (
    DRIVERS,
    ECOSYSTEM_CODES,
    ECOSYSTEMS,
    FLUXES,
    WETLAND,
    WETLAND_FRACTION,
)
from upscale.towers.fluxnet import write_fluxnet_monthly
from upscale.towers.sites import write_sites_table

# Approximate SW Florida shoreline (lon, lat), north-west to south-east; sea lies to the SW.
COASTLINE = (
    (-81.80, 26.05),
    (-81.74, 25.93),
    (-81.62, 25.87),
    (-81.47, 25.80),
    (-81.36, 25.70),
    (-81.27, 25.56),
    (-81.20, 25.42),
    (-81.16, 25.28),
    (-81.10, 25.14),
    (-80.95, 25.10),
)

# Named wetland regions of the demo (lon/lat polygons).
REGIONS = {
    "Ten Thousand Islands": ((-81.85, 26.0), (-81.3, 26.0), (-81.3, 25.72), (-81.85, 25.72)),
    "Lostmans River": ((-81.5, 25.72), (-81.0, 25.72), (-81.0, 25.45), (-81.5, 25.45)),
    "Cape Sable": ((-81.45, 25.45), (-81.0, 25.45), (-81.0, 25.15), (-81.45, 25.15)),
}

# Ecosystem parameters of the truth: light-use efficiency (gC MJ-1), base respiration at
# 25 degC (gC m-2 d-1), respiration per unit of remembered GPP, and LAI range (m2 m-2).
_TRUTH = {
    "mangrove": {"eps": 1.6, "r0": 0.8, "k": 0.45, "lai": (3.0, 1.0)},
    "saltmarsh": {"eps": 2.1, "r0": 0.6, "k": 0.40, "lai": (1.0, 2.0)},
}
_WATER_MEMORY = 2.0  # months, e-folding of the precipitation memory of GPP
_CARBON_MEMORY = 4.0  # months, e-folding of the GPP memory of RE
_SPIN_UP = 24  # months generated before the start so memory is full from the first month


@dataclass(frozen=True)
class DemoSpec:
    """Size and seed of a demo region.

    Parameters
    ----------
    ny, nx
        Grid size in pixels over the fixed lon/lat box of the region.
    start
        First month, ``YYYY-MM``.
    years
        Length of the record.
    n_mangrove_sites, n_saltmarsh_sites
        Number of towers in each ecosystem.
    seed
        Seed of every random draw: the same spec gives the same region, bit for bit.
    bounds
        West, south, east, north of the region (degrees).
    process
        Process model of the truth, a key of
        [`PROCESS_MODELS`][upscale.demo_region.PROCESS_MODELS]: ``light_use`` (the demo's)
        or ``salinity``, another structure with longer memories, to check that a model's
        skill is not tuned to one truth.
    """

    ny: int = 64
    nx: int = 84
    start: str = "2010-01"
    years: int = 12
    n_mangrove_sites: int = 9
    n_saltmarsh_sites: int = 7
    seed: int = 20260
    bounds: tuple[float, float, float, float] = (-81.9, 25.1, -80.75, 26.0)
    process: str = "light_use"

    def __post_init__(self) -> None:
        if self.process not in PROCESS_MODELS:
            raise ValueError(
                f"unknown process model {self.process!r}; choose one of {', '.join(PROCESS_MODELS)}"
            )


@dataclass(frozen=True)
class DemoRegion:
    """A generated demo region, in memory.

    Attributes
    ----------
    cube
        Monthly drivers ``(time, y, x)`` with canonical names, units and CRS.
    mask
        ``wetland`` codes and ``wetland_fraction`` on the cube's grid.
    truth
        True GPP, RE and NEE (gC m-2 d-1) on wetland pixels, NaN elsewhere.
    sites
        ``site_id, lat, lon, ecosystem`` of the towers.
    tower_records
        Monthly tower records per site: GPP, RE, NEE with noise, gaps and ``NEE_QC``, and
        the site drivers TA, SW_IN, VPD, PRECIP.
    regions
        Named regions (``name`` column), EPSG:4326.
    """

    cube: xr.Dataset
    mask: xr.Dataset
    truth: xr.Dataset
    sites: pd.DataFrame
    tower_records: dict[str, pd.DataFrame]
    regions: gpd.GeoDataFrame


def _unit_grid(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions scaled to [0, 1] along each axis, for the smooth fields."""
    return np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")


def _smooth_field(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, waves: int = 6):
    """Return a smooth random field in [-1, 1] from a few low-frequency waves."""
    field = np.zeros_like(yy)
    for _ in range(waves):
        ky, kx = rng.uniform(-3, 3, size=2)
        field += np.cos(2 * np.pi * (ky * yy + kx * xx) + rng.uniform(0, 2 * np.pi))
    return field / np.abs(field).max()


def _weighted_memory(series: np.ndarray, efold: float, lags: int) -> np.ndarray:
    """Exponentially weighted mean over the current and ``lags - 1`` previous months."""
    weights = np.exp(-np.arange(lags) / efold)
    weights /= weights.sum()
    out = np.zeros_like(series)
    for lag, weight in enumerate(weights):
        out[lags:] += weight * series[lags - lag : len(series) - lag]
    out[:lags] = np.nan  # inside the spin-up, cut before returning
    return out


def _grid(spec: DemoSpec) -> tuple[np.ndarray, np.ndarray]:
    west, south, east, north = spec.bounds
    dx, dy = (east - west) / spec.nx, (north - south) / spec.ny
    x = west + dx * (np.arange(spec.nx) + 0.5)
    y = north - dy * (np.arange(spec.ny) + 0.5)
    return y, x


def _wetland_classes(spec: DemoSpec, rng: np.random.Generator, y, x):
    """Mangrove band along the shore, saltmarsh behind it, with ragged edges."""
    lon, lat = np.meshgrid(x, y)
    km_per_deg_lon = 111.32 * np.cos(np.deg2rad(lat.mean()))
    coast = shapely.LineString([(lo * km_per_deg_lon, la * 111.32) for lo, la in COASTLINE])
    points = shapely.points(lon * km_per_deg_lon, lat * 111.32)
    distance = shapely.distance(points, coast)
    # Land lies north-east of the shore: close the shoreline through the north-east.
    (east, north), (west, _) = COASTLINE[-1], COASTLINE[0]
    land = shapely.Polygon([*COASTLINE, (east + 1, north), (east + 1, 27.0), (west - 1, 27.0)])
    on_land = shapely.contains_xy(land, lon, lat)
    inland_km = np.where(on_land, distance, -distance)
    yy, xx = _unit_grid(spec.ny, spec.nx)
    ragged = 3.0 * _smooth_field(rng, yy, xx)
    patchy = _smooth_field(rng, yy, xx, waves=10)
    wetland = np.zeros(lat.shape, dtype="uint8")
    pixel_km = (x[1] - x[0]) * km_per_deg_lon
    wetland[(inland_km > -0.5 * pixel_km) & (inland_km < 12 + ragged)] = 1
    marsh = (inland_km >= 12 + ragged) & (inland_km < 22 + ragged) & (patchy > -0.5)
    wetland[marsh] = 2
    shore = np.clip(inland_km / pixel_km + 0.5, 0.0, 1.0)
    fraction = np.where(wetland > 0, shore * (0.85 + 0.15 * patchy), 0.0).astype("float32")
    wetland[fraction <= 0.05] = 0
    return wetland, np.where(wetland > 0, fraction, 0.0).astype("float32"), inland_km


def _drivers(spec: DemoSpec, rng, wetland, inland_km, n_months: int) -> dict[str, np.ndarray]:
    """Monthly drivers (time incl. spin-up, y, x) with seasons, anomalies and gradients."""
    ny, nx = wetland.shape
    yy, xx = _unit_grid(ny, nx)
    month = (np.arange(n_months) % 12)[:, None, None]
    season_t = np.cos(2 * np.pi * (month - 6.5) / 12)  # warmest in July
    season_sw = np.cos(2 * np.pi * (month - 4.5) / 12)  # sunniest in May
    wet = np.clip(np.cos(2 * np.pi * (month - 7.5) / 12), 0, None) ** 1.5  # Jun-Oct rains

    def anomaly(scale: float, rho: float = 0.6) -> np.ndarray:
        """Regional AR(1) monthly anomaly with a weak spatial modulation."""
        series = np.zeros(n_months)
        for t in range(1, n_months):
            series[t] = rho * series[t - 1] + rng.normal(0, scale)
        return series[:, None, None] * (1 + 0.3 * _smooth_field(rng, yy, xx)[None])

    def noise(scale: float) -> np.ndarray:
        return rng.normal(0, scale, size=(n_months, ny, nx))

    inland = np.clip(inland_km, 0, 40)[None] / 40
    ta = 24.0 + 5.0 * season_t + 1.0 * inland + 0.8 * _smooth_field(rng, yy, xx)[None]
    ta = ta + anomaly(0.8) + noise(0.3)
    precip_anomaly = anomaly(0.6, rho=0.4)
    precip = (1.2 + 6.5 * wet) * (1 + 0.2 * _smooth_field(rng, yy, xx)[None])
    precip = np.clip(precip * np.exp(precip_anomaly) + noise(0.3), 0, None)
    sw = 205 + 55 * season_sw - 25 * precip_anomaly + anomaly(6) + noise(5)
    es = 6.112 * np.exp(17.67 * ta / (ta + 243.5))
    rh = np.clip(0.70 + 0.08 * wet + 0.04 * precip_anomaly + noise(0.02), 0.4, 0.95)
    vpd = es * (1 - rh)

    # Greenness follows warmth and recent water, so LAI carries its own memory.
    water = _weighted_memory(np.log1p(precip), 2.0, 4)
    water[:4] = water[4]
    favour = 0.5 + 0.3 * season_t + 0.4 * (water - np.nanmean(water))
    green = np.clip(_weighted_memory(favour, 1.5, 3), 0, 1.2)
    green[:3] = green[3]
    base = np.full(wetland.shape, 0.8)
    amplitude = np.full(wetland.shape, 0.8)
    for name, params in _TRUTH.items():
        is_eco = wetland == ECOSYSTEM_CODES[name]
        base[is_eco], amplitude[is_eco] = params["lai"]
    base = base * (1 + 0.15 * _smooth_field(rng, yy, xx))
    lai = np.clip(base[None] + amplitude[None] * green + noise(0.12), 0.05, None)
    fapar = np.clip(0.95 * (1 - np.exp(-0.5 * lai)) + noise(0.01), 0, 1)
    ndvi = np.clip(0.1 + 0.78 * (1 - np.exp(-0.6 * lai)) + noise(0.015), -1, 1)
    evi = np.clip(0.62 * ndvi - 0.03 + noise(0.015), -1, 1)
    lst_day = ta + 2.0 + 0.02 * (sw - 200) + 1.5 * (1 - ndvi) + noise(0.6)
    lst_night = ta - 3.5 + noise(0.5)
    return {
        "LAI": lai,
        "FAPAR": fapar,
        "NDVI": ndvi,
        "EVI": evi,
        "LST_DAY": lst_day,
        "LST_NIGHT": lst_night,
        "TA": ta,
        "SW_IN": sw,
        "VPD": vpd,
        "PRECIP": precip,
    }


def truth_fluxes(
    drivers: dict[str, np.ndarray], wetland: np.ndarray, unobserved: np.ndarray
) -> dict[str, np.ndarray]:
    """Process-based GPP, RE and NEE (gC m-2 d-1) from drivers ``(time, y, x)``.

    Parameters
    ----------
    drivers
        Canonical drivers whose first months are spin-up: memory is incomplete (NaN) in
        the first 12, and the caller cuts the whole spin-up (``_SPIN_UP`` months).
    wetland
        Ecosystem codes ``(y, x)``; pixels that are not wetland get NaN.
    unobserved
        Site quality in [-1, 1] ``(y, x)`` that scales eps and base respiration by 8 %.
    """
    par = 0.0864 * 0.48 * drivers["SW_IN"]  # MJ m-2 d-1 of PAR
    f_temperature = np.exp(-(((drivers["TA"] - 28.0) / 12.0) ** 2))
    f_vpd = 1.0 / (1.0 + drivers["VPD"] / 25.0)
    water = _weighted_memory(drivers["PRECIP"], _WATER_MEMORY, 6)
    f_water = 0.35 + 0.65 * (1 - np.exp(-water / 2.5))
    lloyd_taylor = np.exp(308.56 * (1 / (298.15 - 227.13) - 1 / (drivers["TA"] + 273.15 - 227.13)))
    gpp = np.full(drivers["TA"].shape, np.nan)
    re = np.full(drivers["TA"].shape, np.nan)
    for name, params in _TRUTH.items():
        is_eco = wetland == ECOSYSTEM_CODES[name]
        quality = 1 + 0.08 * unobserved
        eps = params["eps"] * quality
        gpp_eco = eps * drivers["FAPAR"] * par * f_temperature * f_vpd * f_water
        remembered = _weighted_memory(gpp_eco, _CARBON_MEMORY, 12)
        re_eco = (params["r0"] * quality + params["k"] * remembered) * lloyd_taylor
        gpp[:, is_eco] = gpp_eco[:, is_eco]
        re[:, is_eco] = re_eco[:, is_eco]
    return {"GPP": gpp, "RE": re, "NEE": re - gpp}


def salinity_fluxes(
    drivers: dict[str, np.ndarray], wetland: np.ndarray, unobserved: np.ndarray
) -> dict[str, np.ndarray]:
    """Another truth: salinity-stressed canopy light use and litter-fed Q10 respiration.

    A process structure unlike [`truth_fluxes`][upscale.demo_region.truth_fluxes], with longer
    memories, for testing models on a second truth:

    * porewater salinity builds up with evaporative demand and is flushed by rain: an
      exponentially weighted mean (e-folding 5 months) over 12 months of
      ``VPD / 10 - log(1 + PRECIP)``; it stresses GPP through a logistic curve of its
      standardised value, so that dry spells, not only the seasons, shape GPP;
    * GPP is ``eps * (1 - exp(-0.6 LAI)) * PAR * f(TA) * f(salinity)``: the canopy's light
      capture from LAI rather than FAPAR, an optimum near 30 degC;
    * RE is ``(r0 + k * litter) * 2 ** ((TA - 25) / 10)``, damped by up to 30 % when the last
      2 months were wet (flooded soils), where litter is an exponentially weighted mean
      (e-folding 6 months) over 12 months of GPP.

    Parameters are those of ``truth_fluxes`` (first 24 months are spin-up).
    """
    par = 0.0864 * 0.48 * drivers["SW_IN"]
    f_temperature = np.exp(-(((drivers["TA"] - 30.0) / 10.0) ** 2))
    demand = drivers["VPD"] / 10.0 - np.log1p(drivers["PRECIP"])
    salinity = _weighted_memory(demand, 5.0, 12)
    stress = (salinity - np.nanmean(salinity)) / np.nanstd(salinity)
    f_salinity = 1.0 / (1.0 + np.exp(2.0 * stress))
    flooded = np.tanh(_weighted_memory(drivers["PRECIP"], 1.0, 2) / 8.0)
    q10 = 2.0 ** ((drivers["TA"] - 25.0) / 10.0)
    gpp = np.full(drivers["TA"].shape, np.nan)
    re = np.full(drivers["TA"].shape, np.nan)
    for name, params in _TRUTH.items():
        is_eco = wetland == ECOSYSTEM_CODES[name]
        quality = 1 + 0.08 * unobserved
        canopy = 1 - np.exp(-0.6 * drivers["LAI"])
        gpp_eco = 1.4 * params["eps"] * quality * canopy * par * f_temperature * f_salinity
        litter = _weighted_memory(gpp_eco, 6.0, 12)
        re_eco = (params["r0"] * quality + params["k"] * litter) * q10 * (1 - 0.3 * flooded)
        gpp[:, is_eco] = gpp_eco[:, is_eco]
        re[:, is_eco] = re_eco[:, is_eco]
    return {"GPP": gpp, "RE": re, "NEE": re - gpp}


PROCESS_MODELS = {"light_use": truth_fluxes, "salinity": salinity_fluxes}
"""Process models of a generated region's truth, by name (``DemoSpec.process``)."""


def _place_sites(spec: DemoSpec, rng, wetland, y, x) -> pd.DataFrame:
    """Spread towers over each ecosystem's pixels by farthest-point sampling."""
    rows = []
    counts = {"mangrove": spec.n_mangrove_sites, "saltmarsh": spec.n_saltmarsh_sites}
    for name, count in counts.items():
        iy, ix = np.nonzero(wetland == ECOSYSTEM_CODES[name])
        if len(iy) < count:
            raise ValueError(f"demo grid too small for {count} {name} sites")
        chosen = [int(rng.integers(len(iy)))]
        for _ in range(count - 1):
            d = np.min([(iy - iy[c]) ** 2 + (ix - ix[c]) ** 2 for c in chosen], axis=0)
            chosen.append(int(np.argmax(d)))
        prefix = "Mg" if name == "mangrove" else "Sm"
        for number, c in enumerate(chosen, start=1):
            rows.append(
                {
                    "site_id": f"ZZ-{prefix}{number}",
                    "lat": round(float(y[iy[c]]), 5),
                    "lon": round(float(x[ix[c]]), 5),
                    "ecosystem": name,
                    "iy": int(iy[c]),
                    "ix": int(ix[c]),
                }
            )
    return pd.DataFrame(rows)


def _tower_record(rng, site, times, truth, drivers) -> pd.DataFrame:
    """Noisy, gappy monthly record of one tower, as a flux network would publish it."""
    iy, ix = site["iy"], site["ix"]
    n = len(times)
    nee = truth["NEE"][:, iy, ix] + rng.normal(0, 0.25, n)
    re = truth["RE"][:, iy, ix] * (1 + rng.normal(0, 0.05, n))
    record = pd.DataFrame(
        {
            "NEE": nee,
            "RE": re,
            "GPP": re - nee,
            "NEE_QC": np.clip(rng.beta(8, 1.5, n), 0, 1),
            "TA": drivers["TA"][:, iy, ix] + rng.normal(0, 0.2, n),
            "SW_IN": drivers["SW_IN"][:, iy, ix] * (1 + rng.normal(0, 0.03, n)),
            "VPD": drivers["VPD"][:, iy, ix] * (1 + rng.normal(0, 0.05, n)),
            "PRECIP": drivers["PRECIP"][:, iy, ix] * np.exp(rng.normal(0, 0.15, n)),
        },
        index=pd.Index(times, name="time"),
    )
    gaps = rng.random(n) < 0.06
    if rng.random() < 0.5:  # an instrument failure of a few months
        start = int(rng.integers(0, n - 8))
        gaps[start : start + int(rng.integers(3, 8))] = True
    record.loc[gaps, ["NEE", "RE", "GPP"]] = np.nan
    first = int(rng.integers(0, max(1, n // 4)))
    last = n - int(rng.integers(0, max(1, n // 5)))
    return record.iloc[first:last]


def make_demo_region(spec: DemoSpec | None = None) -> DemoRegion:
    """Generate the demo region in memory.

    Parameters
    ----------
    spec
        Grid size, period, number of towers and seed; defaults to the shipped demo
        (64 x 84 pixels of about 1.4 km, 2010-2021, 9 mangrove and 7 saltmarsh towers).

    Returns
    -------
    DemoRegion
        Cube, mask, truth, towers and regions; identical for identical specs.
    """
    spec = spec or DemoSpec()
    rng = np.random.default_rng(spec.seed)
    y, x = _grid(spec)
    wetland, fraction, inland_km = _wetland_classes(spec, rng, y, x)
    n_months = 12 * spec.years
    drivers = _drivers(spec, rng, wetland, inland_km, n_months + _SPIN_UP)
    yy, xx = _unit_grid(spec.ny, spec.nx)
    fluxes = PROCESS_MODELS[spec.process](drivers, wetland, _smooth_field(rng, yy, xx, waves=8))
    drivers = {k: v[_SPIN_UP:].astype("float32") for k, v in drivers.items()}
    fluxes = {k: v[_SPIN_UP:].astype("float32") for k, v in fluxes.items()}
    times = pd.date_range(spec.start, periods=n_months, freq="MS")
    coords = {"time": times, "y": y, "x": x}
    dims = ("time", "y", "x")

    cube = xr.Dataset({k: (dims, v, DRIVERS[k].attrs()) for k, v in drivers.items()}, coords=coords)
    cube.attrs = {
        "title": "upscale demo region: south-west Florida coast (synthetic drivers)",
        "source": f"upscale.demo_region.make_demo_region(seed={spec.seed})",
        "Conventions": "CF-1.8",
    }
    mask = xr.Dataset(
        {
            WETLAND: (
                ("y", "x"),
                wetland,
                {
                    "flag_values": list(ECOSYSTEMS),
                    "flag_meanings": " ".join(ECOSYSTEMS.values()),
                    "long_name": "wetland ecosystem (0 none)",
                },
            ),
            WETLAND_FRACTION: (
                ("y", "x"),
                fraction,
                {"units": "1", "long_name": "wetland cover fraction"},
            ),
        },
        coords={"y": y, "x": x},
    )
    truth = xr.Dataset({k: (dims, v, FLUXES[k].attrs()) for k, v in fluxes.items()}, coords=coords)
    truth.attrs["title"] = "upscale demo region: process-based flux truth"
    cube, mask, truth = (ds.rio.write_crs("EPSG:4326") for ds in (cube, mask, truth))

    sites = _place_sites(spec, rng, wetland, y, x)
    records = {
        site["site_id"]: _tower_record(rng, site, times, fluxes, drivers)
        for _, site in sites.iterrows()
    }
    regions = gpd.GeoDataFrame(
        {"name": list(REGIONS)},
        geometry=[shapely.Polygon(ring) for ring in REGIONS.values()],
        crs="EPSG:4326",
    )
    return DemoRegion(
        cube=cube,
        mask=mask,
        truth=truth,
        sites=sites[["site_id", "lat", "lon", "ecosystem"]].set_index("site_id"),
        tower_records=records,
        regions=regions,
    )


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo region's inputs were written."""

    cube: Path
    mask: Path
    truth: Path
    sites: Path
    regions: Path
    wetlands: Path


def wetland_polygons(mask: xr.Dataset) -> gpd.GeoDataFrame:
    """Turn the mask's wetland pixels into polygons with an ``ecosystem`` column.

    Users bring wetlands as vector inventories more often than as grids; the demo ships its
    own as one, so that ``upscale mask`` can be tried on it.
    """
    codes = mask[WETLAND].values.astype("int32")
    pieces = [
        (shapely.geometry.shape(geometry), ECOSYSTEMS[int(code)])
        for geometry, code in shapes(codes, mask=codes > 0, transform=mask.rio.transform())
    ]
    return gpd.GeoDataFrame(
        {"ecosystem": [name for _, name in pieces]},
        geometry=[geometry for geometry, _ in pieces],
        crs=mask.rio.crs,
    ).dissolve("ecosystem", as_index=False)


def write_demo_region(
    region: DemoRegion, folder: str | Path, *, overwrite: bool = False
) -> DemoPaths:
    """Write a demo region as a user would bring it: Zarr cubes, FLUXNET files, GeoJSON.

    Parameters
    ----------
    region
        Output of [`make_demo_region`][upscale.demo_region.make_demo_region].
    folder
        Destination; ``cube.zarr``, ``mask.zarr``, ``truth.zarr``, ``sites/``,
        ``regions.geojson`` and ``wetlands.gpkg`` (the mask's wetland pixels as polygons) are
        written inside.
    overwrite
        Replace existing files.
    """
    folder = Path(folder)
    paths = DemoPaths(
        cube=folder / "cube.zarr",
        mask=folder / "mask.zarr",
        truth=folder / "truth.zarr",
        sites=folder / "sites",
        regions=folder / "regions.geojson",
        wetlands=folder / "wetlands.gpkg",
    )
    refuse_overwrite([paths.sites], overwrite=overwrite)
    tile = {"time": -1, "y": 32, "x": 32}
    write_store(region.cube.chunk(tile), paths.cube, overwrite=overwrite)
    write_store(region.mask, paths.mask, overwrite=overwrite)
    write_store(region.truth.chunk(tile), paths.truth, overwrite=overwrite)
    paths.sites.mkdir(parents=True, exist_ok=True)
    for stale in paths.sites.glob("*.csv"):
        stale.unlink()
    for site_id, record in region.tower_records.items():
        write_fluxnet_monthly(site_id, record, paths.sites)
    write_sites_table(region.sites, paths.sites)
    region.regions.to_file(paths.regions, driver="GeoJSON")
    wetland_polygons(region.mask).to_file(paths.wetlands)
    return paths
