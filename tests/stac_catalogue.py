"""A static STAC catalogue of the demo region's drivers in the encodings of the real collections.

Planetary Computer's collections (their published item assets) carry MODIS 6.1 as one COG per
asset and item, in raw integers: ``modis-15A3H-061`` (``Lai_500m`` x 0.1 and ``Fpar_500m`` x
0.01 as uint8, 249-255 class codes and fill, ``FparLai_QC`` bit 0 = 0 good),
``modis-13A1-061`` (``500m_16_days_NDVI``/``EVI`` x 0.0001 as int16, fill -3000,
``500m_16_days_pixel_reliability`` 0 good, 1 marginal, 3 cloudy) and ``modis-11A2-061``
(``LST_Day_1km``/``LST_Night_1km`` Kelvin x 0.02 as uint16, fill 0, ``QC_Day``/``QC_Night``
bits 0-1 = 00 good); and ERA5 (``era5-pds``) as one Zarr store per variable and month of
hourly fields, analysis and forecast variables in separate items, with 0-360 longitudes.

Here the stores hold the demo's drivers on its own grid, so that a fetch has a known answer:
two observations per month whose mean is the demo's value (within the encoding's precision),
a few observations flagged bad by QC, a few pixel-months with both flagged (gaps), and a few
pixels carrying a class code (water) instead of a value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import rasterio
import xarray as xr
from rasterio.transform import from_origin

from upscale.drivers.gaps import OPTICAL

MODIS = {
    "modis-15A3H-061": {
        "Lai_500m": ("LAI", 0.1, 0.0, "uint8"),
        "Fpar_500m": ("FAPAR", 0.01, 0.0, "uint8"),
    },
    "modis-13A1-061": {
        "500m_16_days_NDVI": ("NDVI", 0.0001, 0.0, "int16"),
        "500m_16_days_EVI": ("EVI", 0.0001, 0.0, "int16"),
    },
    "modis-11A2-061": {
        "LST_Day_1km": ("LST_DAY", 0.02, -273.15, "uint16"),
        "LST_Night_1km": ("LST_NIGHT", 0.02, -273.15, "uint16"),
    },
}
"""Collection -> value asset -> (canonical driver, scale, offset, raw type)."""

QC = {
    # (asset, raw type, good, also good (other bits set), bad)
    "modis-15A3H-061": [("FparLai_QC", "uint8", 0, 0b00100000, 0b00000001)],
    "modis-13A1-061": [("500m_16_days_pixel_reliability", "int8", 0, 1, 3)],
    "modis-11A2-061": [
        ("QC_Day", "uint8", 0, 0b00000100, 0b00000010),
        ("QC_Night", "uint8", 0, 0b00000100, 0b00000010),
    ],
}

ERA5 = "era5-pds"
ANALYSIS = ("air_temperature_at_2_metres", "dew_point_temperature_at_2_metres")
FORECAST = (
    "integral_wrt_time_of_surface_direct_downwelling_shortwave_flux_in_air_1hour_Accumulation",
    "precipitation_amount_1hour_Accumulation",
)
DAYS = (3, 17)  # two observations a month


def encode(values: np.ndarray, scale: float, offset: float, dtype: str) -> np.ndarray:
    """Raw integers of canonical values, rounded as the product stores them."""
    return np.round((values - offset) / scale).astype(dtype)


def qc_flags(shape: tuple[int, ...], seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Which observations QC flags bad ``(month, obs, y, x)``, and the pixel-months with both."""
    rng = np.random.default_rng(seed)
    bad = rng.random(shape) < 0.08
    both = rng.random(shape[:1] + shape[2:]) < 0.03
    bad[:, 0][both] = bad[:, 1][both] = True
    return bad, bad.all(axis=1)


def _item(
    item_id: str, when: pd.Timestamp, bbox: list[float], grid: dict, properties: dict
) -> pystac.Item:
    west, south, east, north = bbox
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [east, south], [east, north], [west, north], [west, south]]
        ],
    }
    item = pystac.Item(item_id, geometry, bbox, when.to_pydatetime(), properties)
    item.stac_extensions += [
        "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ]
    item.properties |= {
        "proj:epsg": 4326,
        "proj:shape": grid["shape"],
        "proj:transform": grid["transform"],
    }
    return item


def write_catalogue(cube: xr.Dataset, folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Write the catalogue of a cube's drivers; return ``catalog.json`` and the gaps by driver.

    The gaps ``(time, y, x)`` are the pixel-months left without any valid observation (QC,
    class codes): the fetched optical drivers must be missing (then filled and flagged)
    exactly there.
    """
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    x, y = cube["x"].values, cube["y"].values
    dx, dy = float(x[1] - x[0]), float(y[0] - y[1])
    west, north = float(x[0]) - dx / 2, float(y[0]) + dy / 2
    transform = from_origin(west, north, dx, dy)
    bbox = [west, north - ny * dy, west + nx * dx, north]
    grid = {"shape": [ny, nx], "transform": list(transform)[:6]}
    months = pd.DatetimeIndex(cube["time"].values)
    catalog = pystac.Catalog("demo", "The demo region's drivers, encoded as the real collections")
    bad, gaps = qc_flags((len(months), len(DAYS), ny, nx))
    water = np.zeros((ny, nx), bool)
    water[0, :3] = True  # a class code (254, water) in the first observation of LAI/FAPAR
    missing = {name: gaps for name in OPTICAL}
    for name in ("LAI", "FAPAR"):
        missing[name] = gaps | (water[None] & bad[:, 1])

    for collection_id, assets in MODIS.items():
        collection = pystac.Collection(
            collection_id,
            collection_id,
            pystac.Extent.from_dict(
                {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[None, None]]}}
            ),
        )
        catalog.add_child(collection)
        for t, month in enumerate(months):
            for k, day in enumerate(DAYS):
                when = month + pd.Timedelta(days=day - 1)
                item = _item(f"{collection_id}-{when:%Y%m%d}", when, bbox, grid, {})
                files = folder / collection_id / f"{when:%Y%m%d}"
                files.mkdir(parents=True, exist_ok=True)
                for asset, (driver, scale, offset, dtype) in assets.items():
                    raw = encode(cube[driver].values[t], scale, offset, dtype)
                    if collection_id == "modis-15A3H-061" and k == 0:
                        raw[water] = 254
                    _write_cog(files / f"{asset}.tif", raw, transform)
                    item.add_asset(asset, _cog_asset(files / f"{asset}.tif", dtype, scale))
                for asset, dtype, good, also_good, flagged in QC[collection_id]:
                    flags = np.where(bad[t, k], flagged, np.where((t + k) % 2, also_good, good))
                    _write_cog(files / f"{asset}.tif", flags.astype(dtype), transform)
                    item.add_asset(asset, _cog_asset(files / f"{asset}.tif", dtype, None))
                collection.add_item(item)

    era5 = pystac.Collection(
        ERA5,
        ERA5,
        pystac.Extent.from_dict(
            {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}
        ),
    )
    catalog.add_child(era5)
    for t, month in enumerate(months):
        for kind, names in (("an", ANALYSIS), ("fc", FORECAST)):
            item = _item(f"era5-pds-{month:%Y%m}-{kind}", month, [-180, -90, 180, 90], grid, {})
            item.properties["era5:kind"] = kind
            for name, array in _era5_fields(cube, t, month, names).items():
                path = folder / ERA5 / f"{month:%Y%m}" / f"{name}.zarr"
                array.to_dataset(name=name).to_zarr(path, mode="w", consolidated=False)
                item.add_asset(
                    name,
                    pystac.Asset(
                        str(path),
                        media_type="application/vnd+zarr",
                        roles=["data"],
                        extra_fields={
                            "xarray:open_kwargs": {"engine": "zarr", "consolidated": False}
                        },
                    ),
                )
            era5.add_item(item)

    catalog.normalize_hrefs(str(folder))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json", missing


def _write_cog(path: Path, raw: np.ndarray, transform) -> None:
    profile = {
        "driver": "COG",
        "width": raw.shape[1],
        "height": raw.shape[0],
        "count": 1,
        "dtype": raw.dtype.name,
        "crs": "EPSG:4326",
        "transform": transform,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(raw, 1)


def _cog_asset(path: Path, dtype: str, scale: float | None) -> pystac.Asset:
    band = {"data_type": dtype} | ({"scale": scale} if scale is not None else {})
    return pystac.Asset(
        str(path),
        media_type=pystac.MediaType.COG,
        roles=["data"],
        extra_fields={"raster:bands": [band]},
    )


def inverse_tetens(hpa: np.ndarray) -> np.ndarray:
    """Dew point (degC) whose saturation vapour pressure (Tetens) is ``hpa``."""
    log = np.log(hpa / 6.1078)
    return 237.3 * log / (17.27 - log)


def tetens(celsius: np.ndarray) -> np.ndarray:
    return 6.1078 * np.exp(17.27 * celsius / (celsius + 237.3))


def _era5_fields(
    cube: xr.Dataset, t: int, month: pd.Timestamp, names: tuple[str, ...]
) -> dict[str, xr.DataArray]:
    """Two hourly steps of a month whose means (and mean deficit) are the demo's values."""
    spread = np.array([-1.0, 1.0])[:, None, None]
    ta = cube["TA"].values[t][None] + 0.5 * spread
    deficit = cube["VPD"].values[t][None] * np.ones_like(spread)
    dewpoint = inverse_tetens(tetens(ta) - deficit)
    fields = {
        "air_temperature_at_2_metres": ta + 273.15,
        "dew_point_temperature_at_2_metres": dewpoint + 273.15,
        # Hourly accumulations: J m-2 per hour and m per hour.
        FORECAST[0]: (cube["SW_IN"].values[t][None] + 20.0 * spread) * 3600.0,
        FORECAST[1]: cube["PRECIP"].values[t][None] * (1 + 0.5 * spread) / 24_000.0,
    }
    times = month + pd.to_timedelta([DAYS[0] * 24 - 12, DAYS[1] * 24 - 12], unit="h")
    coords = {"time0": times, "lat": cube["y"].values, "lon": cube["x"].values + 360.0}
    return {
        name: xr.DataArray(
            fields[name].astype("float32"), dims=("time0", "lat", "lon"), coords=coords
        )
        for name in names
    }
