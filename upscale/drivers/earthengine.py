"""Earth Engine as an ingestion step: monthly driver images, fetched tile by tile into Zarr.

Each canonical driver has a recipe: the collection, its bands, QC mask, scale factor and unit
conversion, and how a month is composited. A month's image stacks the recipes of the requested
drivers; [`fetch_cube`][upscale.drivers.earthengine.fetch_cube] asks ``computePixels`` for it one
tile and block of months at a time on the user's target grid, retries quota errors with exponential
back-off, records every finished block, and resumes from there after a crash. For regions too large
to download, [`export_tasks`][upscale.drivers.earthengine.export_tasks] writes the same images to
Cloud Storage or Drive as GeoTIFFs that ``upscale ingest`` reads.

Nothing here prints or stores credentials: authentication is Earth Engine's own
(``earthengine authenticate`` or a service-account key file), and only the project id and
the collections used go into the cube's provenance.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS

from upscale.drivers.blocks import Block, FetchPlan, fetch_blocks
from upscale.errors import FetchFailedError
from upscale.grid import TargetGrid
from upscale.progress import Advance

NODATA = -9999.0
"""Value masked pixels are unmasked to on the server, and turned back into NaN here."""

RETRYABLE = ("429", "too many requests", "quota", "rate limit", "503", "unavailable", "deadline")
"""Fragments of Earth Engine error messages that mean: try again later."""


def _ee():
    """Import earthengine-api where used, naming the package when it is missing."""
    try:
        import ee
    except ImportError:  # pragma: no cover - a declared dependency
        raise FetchFailedError("Earth Engine needs the earthengine-api package") from None
    return ee


@dataclass(frozen=True)
class Recipe:
    """How one canonical driver is made from an Earth Engine collection for one month.

    Attributes
    ----------
    collection
        Asset id of the image collection.
    band
        Band holding the values (a second band may serve as QC).
    scale, offset
        Canonical = raw x scale + offset (MODIS scale factors, Kelvin to Celsius).
    qc_band, qc_mask
        QC band and the bits that must be zero, or the highest acceptable value when
        ``qc_max`` is set (MOD13 SummaryQA).
    per_day
        The band is a monthly accumulation: divide by the month's days (and ``scale``
        converts units, e.g. metres to millimetres).
    """

    collection: str
    band: str
    scale: float = 1.0
    offset: float = 0.0
    qc_band: str | None = None
    qc_mask: int | None = None
    qc_max: int | None = None
    per_day: bool = False

    def month(self, start: pd.Timestamp, days: int) -> Any:
        """Return the month's mean image of this driver in canonical units (an ``ee.Image``)."""
        ee = _ee()
        end = start + pd.offsets.MonthBegin(1)

        def clean(image: Any) -> Any:
            value = image.select(self.band).multiply(self.scale).add(self.offset)
            if self.qc_band is not None:
                qc = image.select(self.qc_band)
                good = (
                    qc.lte(self.qc_max)
                    if self.qc_max is not None
                    else qc.bitwiseAnd(self.qc_mask).eq(0)
                )
                value = value.updateMask(good)
            return value

        collection = ee.ImageCollection(self.collection).filterDate(
            start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
        )
        # A month without images (before a collection starts) is a masked band, not an
        # image without bands that would fail the whole request.
        empty = ee.Image.constant(0).updateMask(0).rename(self.band)
        image = ee.Image(ee.Algorithms.If(collection.size(), collection.map(clean).mean(), empty))
        if self.collection == ERA5_LAND:
            image = _fill_coast(image)
        return image.divide(days) if self.per_day else image


ERA5_LAND = "ECMWF/ERA5_LAND/MONTHLY_AGGR"

COAST_FILL_METRES = 30_000
"""ERA5-Land masks the sea; coastal wetland takes the mean of land cells this close."""


def _fill_coast(image: Any) -> Any:
    """Fill ERA5-Land's sea mask near the coast from the neighbouring land cells."""
    return image.unmask(image.focalMean(COAST_FILL_METRES, "circle", "meters"))


RECIPES: dict[str, Recipe] = {
    "LAI": Recipe("MODIS/061/MCD15A3H", "Lai", 0.1, qc_band="FparLai_QC", qc_mask=0b1),
    "FAPAR": Recipe("MODIS/061/MCD15A3H", "Fpar", 0.01, qc_band="FparLai_QC", qc_mask=0b1),
    "NDVI": Recipe("MODIS/061/MOD13A1", "NDVI", 0.0001, qc_band="SummaryQA", qc_max=1),
    "EVI": Recipe("MODIS/061/MOD13A1", "EVI", 0.0001, qc_band="SummaryQA", qc_max=1),
    # MOD11A2 QC bits 0-1: 00 good quality; anything else is left out.
    "LST_DAY": Recipe(
        "MODIS/061/MOD11A2", "LST_Day_1km", 0.02, -273.15, qc_band="QC_Day", qc_mask=0b11
    ),
    "LST_NIGHT": Recipe(
        "MODIS/061/MOD11A2", "LST_Night_1km", 0.02, -273.15, qc_band="QC_Night", qc_mask=0b11
    ),
    "TA": Recipe(ERA5_LAND, "temperature_2m", offset=-273.15),
    # Monthly sums: J m-2 per month to W m-2, and m per month to mm d-1.
    "SW_IN": Recipe(ERA5_LAND, "surface_solar_radiation_downwards_sum", 1 / 86400, per_day=True),
    "PRECIP": Recipe(ERA5_LAND, "total_precipitation_sum", 1000.0, per_day=True),
}
"""Canonical driver -> recipe. VPD is derived from ERA5-Land temperature and dew point."""

EE_DRIVERS: tuple[str, ...] = (*RECIPES, "VPD")
"""Canonical drivers `fetch` can build from Earth Engine: every recipe, plus VPD derived."""


def vpd_month(start: pd.Timestamp) -> Any:
    """Vapour pressure deficit (hPa) from ERA5-Land monthly 2 m temperature and dew point.

    Tetens' saturation vapour pressure at the air temperature minus that at the dew point.
    Computed from monthly means, it underestimates the mean of hourly deficits where days
    are much drier than nights; the cube's ``VPD`` comment says so.
    """
    ee = _ee()
    end = start + pd.offsets.MonthBegin(1)
    bands = ["temperature_2m", "dewpoint_temperature_2m"]
    collection = ee.ImageCollection(ERA5_LAND).filterDate(
        start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    )
    empty = ee.Image.constant([0, 0]).rename(bands).updateMask(0)
    month = ee.Image(ee.Algorithms.If(collection.size(), collection.first(), empty))

    def saturation(band: str) -> Any:
        celsius = month.select(band).subtract(273.15)
        return celsius.multiply(17.27).divide(celsius.add(237.3)).exp().multiply(6.1078)

    deficit = saturation("temperature_2m").subtract(saturation("dewpoint_temperature_2m"))
    return _fill_coast(deficit)


def month_image(variables: Sequence[str], start: pd.Timestamp) -> Any:
    """One month's drivers as one float image, bands named ``<VAR>``, masked pixels NODATA."""
    ee = _ee()
    days = int(start.days_in_month)
    bands = [
        (vpd_month(start) if name == "VPD" else RECIPES[name].month(start, days)).rename(name)
        for name in variables
    ]
    return ee.Image.cat(bands).toFloat().unmask(NODATA)


def months_image(variables: Sequence[str], months: Sequence[pd.Timestamp]) -> Any:
    """Several months' drivers as one image, bands ``<VAR>_<YYYY-MM>`` (one request)."""
    ee = _ee()
    images = [
        month_image(variables, start).rename([f"{v}_{start:%Y-%m}" for v in variables])
        for start in months
    ]
    return ee.Image.cat(images)


SAMPLE_SCALES: dict[str, float] = {
    "LAI": 500.0,
    "FAPAR": 500.0,
    "NDVI": 500.0,
    "EVI": 500.0,
    "LST_DAY": 1000.0,
    "LST_NIGHT": 1000.0,
    "TA": 11_132.0,
    "SW_IN": 11_132.0,
    "PRECIP": 11_132.0,
    "VPD": 11_132.0,
}
"""Native pixel size (m) of each driver's collection: where `fetch_points` samples it.

Composites lose their collection's projection, and Earth Engine computes at the scale it
is asked for: a MODIS band sampled at ERA5's 11 km would be a coarse pyramid mean, and
ERA5 sampled at 500 m would cost the coast fill's focal mean 500 times over."""


def points_collection(meta: pd.DataFrame) -> Any:
    """Return the towers as an ``ee.FeatureCollection`` of points with a ``site_id`` property.

    Parameters
    ----------
    meta
        ``lat``/``lon`` (degrees WGS84) indexed by ``site_id``.
    """
    ee = _ee()
    return ee.FeatureCollection(
        [
            ee.Feature(ee.Geometry.Point([float(lon), float(lat)]), {"site_id": str(site)})
            for site, lat, lon in meta[["lat", "lon"]].itertuples()
        ]
    )


def points_expression(
    meta: pd.DataFrame,
    variables: Sequence[str],
    months: Sequence[pd.Timestamp],
    *,
    scale: float | None = None,
) -> Any:
    """Drivers of several months at the towers, as one ``ee.FeatureCollection``.

    Each tower gets a property ``<VAR>_<YYYY-MM>`` per driver and month (masked values
    unmasked to NODATA), sampled from the pixel under it at ``scale`` metres, or at each
    driver's own [`SAMPLE_SCALES`][upscale.drivers.earthengine.SAMPLE_SCALES]: one
    ``reduceRegions`` per scale, chained, so that one request brings all.
    """
    ee = _ee()
    image = months_image(variables, months)
    scales: dict[float, list[str]] = {}
    for name in variables:
        scales.setdefault(scale or SAMPLE_SCALES[name], []).append(name)
    features = points_collection(meta)
    for metres, names in sorted(scales.items()):
        bands = [f"{v}_{start:%Y-%m}" for start in months for v in names]
        # forEach names each output after its band, whatever the number of bands (a
        # single band's output would otherwise be named "first").
        features = image.select(bands).reduceRegions(
            collection=features, reducer=ee.Reducer.first().forEach(bands), scale=metres
        )
    return features


def fetch_points(
    meta: pd.DataFrame,
    period: tuple[str, str],
    *,
    variables: Sequence[str] = EE_DRIVERS,
    scale: float | None = None,
    months_per_request: int = 12,
    compute_features: Callable[[dict[str, Any]], pd.DataFrame] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Advance | None = None,
) -> pd.DataFrame:
    """Monthly drivers at the towers from Earth Engine, as a tidy table.

    The same recipes as [`fetch_cube`][upscale.drivers.earthengine.fetch_cube], sampled at the
    towers' points instead of downloaded on a grid: one ``computeFeatures`` request per
    block of months, retried like a tile.

    Parameters
    ----------
    meta
        ``lat``/``lon`` (degrees WGS84) indexed by ``site_id``
        ([`read_sites_table`][upscale.towers.sites.read_sites_table]).
    period
        First and last month, ``("YYYY-MM", "YYYY-MM")``.
    variables
        Canonical drivers (default: all of `EE_DRIVERS`), in the order of the columns.
    scale
        Sampling scale in metres for every driver; by default each driver's native one.
    months_per_request
        Months in one request.
    compute_features
        The request function (default ``ee.data.computeFeatures``; tests pass a fake).
    sleep
        Waits between retries.
    progress
        Called with (requests done, requests in all) after each request.

    Returns
    -------
    pandas.DataFrame
        ``site_id``, ``time`` (first of the month), then one column per driver in canonical
        units; rows by tower in ``meta``'s order, then month; NaN where the collection has
        no good value (masked, or before it starts).

    Raises
    ------
    FetchFailedError
        On an unknown driver or period, a refused request, or an answer that misses a tower.
    """
    ee = _ee()
    variables = list(variables)
    months = _months(period, variables)
    if scale is not None and not scale > 0:
        raise FetchFailedError(f"scale {scale}: give the sampling scale in metres, above 0")
    request = compute_features or ee.data.computeFeatures
    sites = [str(site) for site in meta.index]
    values = np.full((len(sites), len(months), len(variables)), np.nan, dtype="float64")
    blocks = range(0, len(months), months_per_request)
    for count, t in enumerate(blocks, start=1):
        starts = list(months[t : t + months_per_request])
        params = {
            "expression": points_expression(meta, variables, starts, scale=scale),
            "fileFormat": "PANDAS_DATAFRAME",
        }
        what = f"the drivers at {len(sites)} tower(s) for {starts[0]:%Y-%m}..{starts[-1]:%Y-%m}"
        answer = call_with_retries(lambda params=params: request(params), what=what, sleep=sleep)
        table = pd.DataFrame(answer)
        missing = sorted(set(sites) - set(table.get("site_id", pd.Series(dtype=str)).astype(str)))
        if missing:
            raise FetchFailedError(
                f"Earth Engine returned no values for site(s) {', '.join(missing)}"
            )
        table = table.assign(site_id=table["site_id"].astype(str)).set_index("site_id")
        table = table[~table.index.duplicated()].reindex(sites)
        for m, start in enumerate(starts):
            for v, name in enumerate(variables):
                band = f"{name}_{start:%Y-%m}"
                column = table[band] if band in table else pd.Series(np.nan, index=table.index)
                values[:, t + m, v] = pd.to_numeric(column, errors="coerce").to_numpy(float)
        if progress is not None:
            progress(count, len(blocks))
    values[values == NODATA] = np.nan
    index = pd.MultiIndex.from_product([pd.Index(sites, name="site_id"), months.rename("time")])
    flat = values.reshape(len(sites) * len(months), len(variables)).astype("float32")
    return pd.DataFrame(flat, index=index, columns=variables).reset_index()


def _months(period: tuple[str, str], variables: Sequence[str]) -> pd.DatetimeIndex:
    """Return the months of a fetch, after checking the period and the drivers asked for."""
    unknown = sorted(set(variables) - set(EE_DRIVERS))
    if unknown:
        raise FetchFailedError(
            f"no Earth Engine recipe for {unknown}; available: {list(EE_DRIVERS)}"
        )
    try:
        months = pd.date_range(period[0], period[1], freq="MS")
    except ValueError:
        raise FetchFailedError(f"period {period[0]}:{period[1]}: write months as YYYY-MM") from None
    if len(months) == 0:
        raise FetchFailedError(f"period {period[0]}:{period[1]} holds no month (is it reversed?)")
    return months


def pixel_grid(grid: TargetGrid, rows: slice, cols: slice) -> dict[str, Any]:
    """Return the ``grid`` of a computePixels request for a window of the target grid."""
    transform = grid.transform
    crs = CRS.from_user_input(grid.crs)
    code = crs.to_epsg()
    # Earth Engine takes EPSG codes by name; other CRSs (MODIS sinusoidal) as WKT.
    projection = {"crsCode": f"EPSG:{code}"} if code else {"crsWkt": crs.to_wkt()}
    return {
        "dimensions": {"width": cols.stop - cols.start, "height": rows.stop - rows.start},
        "affineTransform": {
            "scaleX": transform.a,
            "shearX": transform.b,
            "translateX": transform.c + cols.start * transform.a,
            "shearY": transform.d,
            "scaleY": transform.e,
            "translateY": transform.f + rows.start * transform.e,
        },
    } | projection


def _is_retryable(error: Exception) -> bool:
    text = str(error).lower()
    return any(fragment in text for fragment in RETRYABLE)


def call_with_retries(
    request: Callable[[], Any],
    *,
    what: str,
    retries: int = 6,
    base_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Run an Earth Engine request, waiting and retrying on quota and availability errors.

    Waits ``base_delay x 2**attempt`` seconds (with up to 50 % random jitter, so parallel
    runs do not retry in step) after each retryable failure.

    Raises
    ------
    FetchFailedError
        On a non-retryable error, or when the retries run out; the message names ``what``.
    """
    ee = _ee()
    for attempt in range(retries + 1):
        try:
            return request()
        except (ee.EEException, OSError) as err:  # OSError: the network, timeouts
            if isinstance(err, ee.EEException) and not _is_retryable(err):
                raise FetchFailedError(f"Earth Engine refused {what}: {err}") from None
            if attempt == retries:
                raise FetchFailedError(
                    f"Earth Engine kept refusing {what} after {retries} retries ({err}); "
                    "finished tiles are kept: run the same command later to resume"
                ) from None
            sleep(base_delay * 2**attempt * (1 + 0.5 * random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def fetch_cube(
    grid: TargetGrid,
    period: tuple[str, str],
    out: str | Path,
    *,
    variables: Sequence[str] = EE_DRIVERS,
    tile: int = 256,
    months_per_request: int = 6,
    compute_pixels: Callable[[dict[str, Any]], np.ndarray] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_interpolated: int | None = 2,
    provenance: dict[str, str] | None = None,
    progress: Advance | None = None,
) -> Path:
    """Download monthly drivers from Earth Engine into a canonical Zarr cube, resumably.

    Parameters
    ----------
    grid
        Target grid: CRS, bounds and resolution chosen by the user.
    period
        First and last month, ``("YYYY-MM", "YYYY-MM")``.
    out
        ``cube.zarr`` to write. Blocks go to ``<out>.fetching`` first, each recorded when
        complete; a re-run fetches only the blocks not recorded, then the cube is rechunked
        to whole time series and renamed into place (see
        [`fetch_blocks`][upscale.drivers.blocks.fetch_blocks]).
    variables
        Canonical drivers to fetch (default: all with a recipe, and VPD).
    tile, months_per_request
        Size of one request: ``tile x tile`` pixels x this many months x the drivers.
    compute_pixels
        The request function (default ``ee.data.computePixels``; tests pass a fake).
    sleep
        Waits between retries (tests pass a recorder).
    max_interpolated
        Fill cloud gaps of the optical drivers (see [`fill_gaps`][upscale.drivers.gaps.fill_gaps])
        with this longest interpolated run; None leaves them NaN.
    provenance
        Extra attributes for the cube (e.g. the project id); never credentials.
    progress
        Called with (blocks done, blocks in all) after each block.

    Returns
    -------
    pathlib.Path
        The written cube.
    """
    ee = _ee()
    months = _months(period, variables)
    plan = FetchPlan(grid, tuple(variables), months, tile, months_per_request)
    request = compute_pixels or ee.data.computePixels
    collections = sorted({RECIPES[v].collection for v in plan.variables if v in RECIPES})
    attrs = {
        "source": "Google Earth Engine",
        "collections": json.dumps(collections + ([ERA5_LAND] if "VPD" in plan.variables else [])),
    } | (provenance or {})
    return fetch_blocks(
        plan,
        out,
        lambda block: _fetch_block(plan, block, request, sleep),
        attrs=attrs,
        comments={"VPD": VPD_COMMENT},
        max_interpolated=max_interpolated,
        progress=progress,
    )


VPD_COMMENT = (
    "From ERA5-Land monthly mean temperature and dew point (Tetens): lower than the "
    "mean of hourly deficits where days are much drier than nights."
)


def _fetch_block(
    plan: FetchPlan,
    block: Block,
    request: Callable[[dict[str, Any]], np.ndarray],
    sleep: Callable[[float], None],
) -> dict[str, np.ndarray]:
    months, rows, cols = block
    starts = list(plan.months[months])
    params = {
        "expression": months_image(plan.variables, starts),
        "fileFormat": "NUMPY_NDARRAY",
        "grid": pixel_grid(plan.grid, rows, cols),
    }
    what = (
        f"rows {rows.start}-{rows.stop - 1}, columns {cols.start}-{cols.stop - 1} "
        f"of {starts[0]:%Y-%m}..{starts[-1]:%Y-%m}"
    )
    pixels = call_with_retries(lambda: request(params), what=what, sleep=sleep)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if pixels.shape != shape:
        raise FetchFailedError(
            f"Earth Engine returned {pixels.shape} pixels for {what}, expected {shape}"
        )
    out = {}
    for name in plan.variables:
        stack = np.stack([pixels[f"{name}_{start:%Y-%m}"] for start in starts]).astype("float32")
        out[name] = np.where(stack == NODATA, np.nan, stack)
    return out


def export_tasks(
    grid: TargetGrid,
    period: tuple[str, str],
    *,
    variables: Sequence[str] = EE_DRIVERS,
    bucket: str | None = None,
    drive_folder: str | None = None,
    prefix: str = "upscale",
) -> list[Any]:
    """One export task per month, to Cloud Storage or Drive, on the target grid.

    The tasks are created, not started; start them with ``task.start()`` (``upscale
    fetch --export-to`` does). Each writes ``<prefix>_<YYYY-MM>.tif`` with one band per
    driver, in the order of ``variables``, which ``upscale ingest`` reads as a stack.
    """
    ee = _ee()
    if (bucket is None) == (drive_folder is None):
        raise FetchFailedError("export to either a Cloud Storage bucket or a Drive folder")
    months = _months(period, variables)
    height, width = grid.shape
    t = grid.transform
    # One file per month: file dimensions are whole shards (256 px) covering the grid.
    side = int(np.ceil(max(height, width) / 256) * 256)
    tasks = []
    for start in months:
        options = {
            "image": month_image(variables, start),
            "description": f"upscale_{start:%Y-%m}",  # task names allow no slashes
            "fileNamePrefix": f"{prefix}_{start:%Y-%m}",
            "crs": grid.crs,
            "crsTransform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "dimensions": f"{width}x{height}",
            "fileFormat": "GeoTIFF",
            "formatOptions": {"noData": NODATA},
            "fileDimensions": side,
            "maxPixels": int(1e13),
        }
        if bucket is not None:
            tasks.append(ee.batch.Export.image.toCloudStorage(bucket=bucket, **options))
        else:
            tasks.append(ee.batch.Export.image.toDrive(folder=drive_folder, **options))
    return tasks


def initialize(
    project: str, *, service_account: str | None = None, key_file: str | Path | None = None
) -> None:
    """Authenticate and initialise Earth Engine with its own mechanisms.

    Parameters
    ----------
    project
        Google Cloud project with the Earth Engine API enabled.
    service_account, key_file
        A service account's e-mail and JSON key file; without them the credentials stored
        by ``earthengine authenticate`` are used.

    Raises
    ------
    FetchFailedError
        When Earth Engine cannot be initialised; the message says how to authenticate and
        never contains the key or a token.
    """
    ee = _ee()
    try:
        if key_file is not None:
            if service_account is None:
                raise FetchFailedError(
                    "a key file needs its service account e-mail (--service-account)"
                )
            credentials = ee.ServiceAccountCredentials(service_account, str(key_file))
            ee.Initialize(credentials, project=project)
        else:
            ee.Initialize(project=project)
    except FetchFailedError:
        raise
    except Exception as err:  # auth and network errors come in many types
        kind = type(err).__name__
        raise FetchFailedError(
            f"Earth Engine could not be initialised for project {project!r} ({kind}); "
            "run `earthengine authenticate`, or pass --service-account and --key-file"
        ) from None
