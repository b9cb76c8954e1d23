"""Drivers from open STAC catalogues (Planetary Computer, Earth Search, a static catalogue).

Each canonical driver has a [`StacRecipe`][upscale.drivers.stac_recipes.StacRecipe]: the collection,
the asset holding the values, its scale factor and offset, its fill values and valid range, and
the QC asset with the bits that must be zero (MODIS QC) or the highest acceptable value. A
block of the target grid and months is read from the items of the collection over it:

- raster assets (COGs, as MODIS on Planetary Computer) are loaded lazily with odc-stac onto
  the block's [`GeoBox`](https://odc-geo.readthedocs.io) (nearest native pixel, so that a
  value and its QC stay paired), one time step per day of acquisition;
- Zarr assets (ERA5 on Planetary Computer: hourly fields, one item per month) are opened with
  xarray as the item says (``xarray:open_kwargs``), clipped to the block, and regridded once
  composited (the same [`regrid`][upscale.drivers.ingest.regrid] as local files).

Fill values, out-of-range values and QC-flagged observations become NaN; the monthly composite
is the mean of the valid observations of each month
([`monthly_means`][upscale.drivers.ingest.monthly_means]), and a month without any is a gap
for [`fill_gaps`][upscale.drivers.gaps.fill_gaps], as on the Earth Engine path.
[`fetch_stac_cube`][upscale.drivers.stac.fetch_stac_cube] writes the cube block by block
([`fetch_blocks`][upscale.drivers.blocks.fetch_blocks]): staged, resumable, gap-filled.

odc-stac, pystac-client and planetary-computer are the optional extra ``upscale[stac]``,
imported where used. Item URLs are signed (``planetary_computer.sign_inplace``) only when
the catalogue is Planetary Computer's.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import xarray as xr
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_bounds

from upscale.drivers.blocks import Block, FetchPlan, fetch_blocks
from upscale.drivers.ingest import clip_to, monthly_means, regrid
from upscale.drivers.stac_recipes import (
    PLANETARY_COMPUTER,
    PLANETARY_COMPUTER_RECIPES,
    STAC_DRIVERS,
    StacRecipe,
)
from upscale.errors import FetchFailedError
from upscale.grid import TargetGrid
from upscale.io.stores import to_canonical_grid
from upscale.progress import Advance

_PLANETARY_COMPUTER_HOST = "planetarycomputer.microsoft.com"


def _import(module: str) -> Any:
    """Import a package of the ``stac`` extra, naming the extra when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FetchFailedError(
            f"reading STAC catalogues needs {module.split('.')[0]} (odc-stac, pystac-client, "
            "planetary-computer): pip install 'upscale[stac]'"
        ) from None


VPD_COMMENT = (
    "Mean over the month of each observation's deficit (Tetens) from air temperature and dew point."
)


def tetens_hpa(celsius: xr.DataArray) -> xr.DataArray:
    """Saturation vapour pressure (hPa) at a temperature (degC), Tetens' formula."""
    return 6.1078 * np.exp(17.27 * celsius / (celsius + 237.3))


def is_planetary_computer(url: str) -> bool:
    """Whether a catalogue URL is Planetary Computer's (its item URLs need signing)."""
    return urlparse(url).hostname == _PLANETARY_COMPUTER_HOST


def url_signer(url: str) -> Callable[[Any], Any] | None:
    """Return what signs the items of a catalogue: Planetary Computer's, or None (no signing)."""
    if not is_planetary_computer(url):
        return None
    return _import("planetary_computer").sign_inplace


def open_catalog(url: str | Path) -> Any:
    """Open a STAC API or static catalogue, signing Planetary Computer's items.

    Raises
    ------
    FetchFailedError
        When the catalogue cannot be read.
    """
    client = _import("pystac_client")
    url = str(url)
    try:
        with warnings.catch_warnings():  # a static catalogue advertises no conformance
            warnings.simplefilter("ignore")
            return client.Client.open(url, modifier=url_signer(url))
    except Exception as err:  # network, JSON and STAC errors come in many types
        raise FetchFailedError(
            f"STAC catalogue {url}: cannot be opened ({type(err).__name__}: {err}); check the "
            "URL (a STAC API or a static catalog.json)"
        ) from None


def item_time(item: Any) -> pd.Timestamp:
    """Return the time an item counts for: its datetime, or the start of its range."""
    when = item.datetime or item.common_metadata.start_datetime
    return pd.Timestamp(when).tz_localize(None) if when.tzinfo else pd.Timestamp(when)


def find_items(
    catalog: Any, collection: str, grid: TargetGrid, months: pd.DatetimeIndex
) -> list[Any]:
    """Items of a collection over the grid whose time falls in the months, in time order.

    A STAC API is searched; a static catalogue is walked.

    Raises
    ------
    FetchFailedError
        When the catalogue has no such collection, or no item of it over the grid and months.
    """
    bbox = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    start, end = months[0], months[-1] + pd.offsets.MonthBegin(1)
    with warnings.catch_warnings():  # pystac-client warns that a static catalogue is no API
        warnings.simplefilter("ignore")
        if catalog.conforms_to("ITEM_SEARCH"):
            search = catalog.search(
                collections=[collection],
                bbox=list(bbox),
                datetime=f"{start:%Y-%m-%d}/{end - pd.Timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}",
            )
            candidates = list(search.items())
        else:
            candidates = _walk(catalog, collection, bbox)
    items = sorted((item for item in candidates if start <= item_time(item) < end), key=item_time)
    if not items:
        raise FetchFailedError(
            f"STAC collection {collection!r} has no item over {tuple(round(v, 4) for v in bbox)} "
            f"(lon/lat) in {months[0]:%Y-%m}..{months[-1]:%Y-%m}; check the region, the period "
            "and the collection's extent"
        )
    return items


def _walk(catalog: Any, collection: str, bbox: Sequence[float]) -> list[Any]:
    """Items of a static catalogue's collection over a lon/lat bbox, asset links made absolute."""
    children = {child.id: child for child in catalog.get_children()}
    if collection not in children:
        raise FetchFailedError(
            f"STAC catalogue {catalog.self_href}: no collection {collection!r}; it has "
            f"{sorted(children)}. Give the recipe's collection as the catalogue names it"
        )
    items = [i for i in children[collection].get_items(recursive=True) if _overlaps(i, bbox)]
    for item in items:
        item.make_asset_hrefs_absolute()
    return items


def _overlaps(item: Any, bbox: Sequence[float]) -> bool:
    """Whether an item's bbox (2D, or 3D with heights) overlaps a lon/lat bbox."""
    if item.bbox is None:
        return True
    half = len(item.bbox) // 2
    (west, south), (east, north) = item.bbox[:2], item.bbox[half : half + 2]
    return west < bbox[2] and east > bbox[0] and south < bbox[3] and north > bbox[1]


def canonical_values(recipe: StacRecipe, bands: Mapping[str, xr.DataArray]) -> xr.DataArray:
    """One observation per time step in canonical units: NaN where fill, out of range or bad QC.

    Parameters
    ----------
    recipe
        The driver's recipe.
    bands
        Raw values of the recipe's assets (floats; NaN where nothing was read).
    """

    def value(asset: str) -> xr.DataArray:
        raw = bands[asset]
        good = raw.notnull()
        for fill in recipe.fill:
            good &= raw != fill
        if recipe.valid_range is not None:
            low, high = recipe.valid_range
            good &= (raw >= low) & (raw <= high)
        return (raw * recipe.scale + recipe.offset).where(good)

    out = value(recipe.asset)
    if recipe.dewpoint is not None:
        out = tetens_hpa(out) - tetens_hpa(value(recipe.dewpoint))
    if recipe.qc_asset is not None:
        qc = bands[recipe.qc_asset]
        if recipe.qc_max is not None:
            good = qc <= recipe.qc_max
        else:
            good = qc.notnull() & ((qc.fillna(0).astype("int64") & recipe.qc_mask) == 0)
        out = out.where(good)
    return out.astype("float32")


def geobox(grid: TargetGrid) -> Any:
    """Return the odc-geo ``GeoBox`` of a target grid (same shape, transform and CRS)."""
    geometry = _import("odc.geo.geobox")
    return geometry.GeoBox(grid.shape, grid.transform, grid.crs)


def _load_raster(
    recipe: StacRecipe, items: Sequence[Any], grid: TargetGrid, tile: int
) -> dict[str, xr.DataArray]:
    """Raw bands of raster items on the grid, lazily, one step per day of acquisition."""
    odc_stac = _import("odc.stac")
    try:
        data = odc_stac.load(
            items,
            bands=recipe.assets,
            geobox=geobox(grid),
            groupby="solar_day",  # the tiles of one acquisition, mosaicked
            resampling="nearest",  # a value keeps its own QC
            dtype="float32",
            chunks={"y": tile, "x": tile},
        )
    except (ValueError, KeyError) as err:
        raise FetchFailedError(
            f"STAC collection {recipe.collection!r}: cannot load assets {recipe.assets} ({err})"
        ) from None
    bands = {}
    spatial = [d for d in data.dims if d != "time"]  # odc names them latitude/longitude on lon/lat
    data = data.rename(dict(zip(spatial, ("y", "x"), strict=True)))
    for name in recipe.assets:
        band = data[name]
        nodata = band.attrs.get("nodata")
        if nodata is not None and not np.isnan(nodata):  # where no item covers the grid
            band = band.where(band != nodata)
        bands[name] = band
    return bands


def _time_dim(array: xr.DataArray, source: str) -> xr.DataArray:
    """Name a store's time dim ``time`` (ERA5 stores call it ``time0``/``time1``)."""
    times = [d for d in array.dims if np.issubdtype(array[d].dtype, np.datetime64)]
    if len(times) != 1:
        raise FetchFailedError(f"{source}: expected one time dim, found {times or 'none'}")
    return array.rename({times[0]: "time"}) if times[0] != "time" else array


def _load_zarr(recipe: StacRecipe, items: Sequence[Any], grid: TargetGrid) -> xr.DataArray:
    """Return a Zarr recipe's observations around the grid, canonical, on the store's grid."""
    steps = []
    for item in items:
        if not all(asset in item.assets for asset in recipe.assets):
            continue  # ERA5 items hold either analysis or forecast variables
        bands = {}
        for asset in recipe.assets:
            link = item.assets[asset]
            options = {"engine": "zarr", "chunks": {}} | link.extra_fields.get(
                "xarray:open_kwargs", {}
            )
            name = recipe.variable or asset
            try:
                store = xr.open_dataset(link.href, **options)
            except (OSError, ValueError, KeyError) as err:
                raise FetchFailedError(f"{link.href}: cannot be opened ({err})") from None
            if name not in store.data_vars:
                raise FetchFailedError(
                    f"{link.href}: no variable {name!r}; it has {list(store.data_vars)}"
                )
            array = _time_dim(to_canonical_grid(store[name], link.href), link.href)
            bands[asset] = clip_to(array, grid, link.href).astype("float32")
        steps.append(canonical_values(recipe, bands))
    if not steps:
        raise FetchFailedError(
            f"STAC collection {recipe.collection!r}: no item has the assets {recipe.assets}"
        )
    return xr.concat(steps, dim="time").sortby("time")


def composite(
    recipe: StacRecipe,
    items: Sequence[Any],
    grid: TargetGrid,
    months: pd.DatetimeIndex,
    *,
    tile: int = 256,
) -> xr.DataArray:
    """Monthly composites of one driver on the grid: the mean of each month's valid values.

    Parameters
    ----------
    recipe
        The driver's recipe.
    items
        The collection's items over the grid and months (see
        [`find_items`][upscale.drivers.stac.find_items]).
    grid
        Target grid (or a block of it).
    months
        Months to composite, stamped on the first; a month without valid values is NaN.
    tile
        Dask chunk size of raster loads.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` float32 in canonical units; lazy for raster recipes.
    """
    inside = [item for item in items if months[0] <= item_time(item) < months[-1] + _MONTH]
    period = (f"{months[0]:%Y-%m}", f"{months[-1]:%Y-%m}")
    template = grid.template()
    if not inside:
        empty = np.full((len(months), *grid.shape), np.nan, dtype="float32")
        return xr.DataArray(
            empty, dims=("time", "y", "x"), coords={"time": months} | dict(template.coords)
        )
    if recipe.format == "zarr":
        monthly = monthly_means(_load_zarr(recipe, inside, grid), period)
        return regrid(monthly.compute(), grid).assign_coords(time=months)
    values = canonical_values(recipe, _load_raster(recipe, inside, grid, tile))
    monthly = monthly_means(values, period).astype("float32")
    return monthly.assign_coords(time=months, y=template["y"], x=template["x"])


_MONTH = pd.offsets.MonthBegin(1)


class StacBlocks:
    """Reads blocks of a fetch plan from a catalogue: the block fetcher of `fetch_blocks`.

    Items are found once per collection for the whole plan, then each block loads the
    items of its months over its window.
    """

    def __init__(self, catalog: str | Path, recipes: Mapping[str, StacRecipe], plan: FetchPlan):
        self.url = str(catalog)
        self.catalog = open_catalog(catalog)
        self.recipes = dict(recipes)
        self.plan = plan
        self._items: dict[str, list[Any]] = {}

    def items(self, collection: str) -> list[Any]:
        """Return the collection's items over the plan's grid and months (searched once)."""
        if collection not in self._items:
            self._items[collection] = find_items(
                self.catalog, collection, self.plan.grid, self.plan.months
            )
        return self._items[collection]

    def __call__(self, block: Block) -> dict[str, np.ndarray]:
        """Return one block's monthly values per driver of the plan."""
        grid = self.plan.block_grid(block)
        months = self.plan.months[block[0]]
        out = {}
        with warnings.catch_warnings():
            # odc-stac's reader calls rasterio's reproject so that rasterio warns
            # "no geotransform" on every read not aligned with the target's pixels (MODIS's
            # sinusoidal grid: always). The values are right (tested against the demo's).
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            for name in self.plan.variables:
                recipe = self.recipes[name]
                out[name] = composite(
                    recipe, self.items(recipe.collection), grid, months, tile=self.plan.tile
                ).values
        return out

    def provenance(self) -> dict[str, str]:
        """Return the cube's attributes naming the catalogue and what was read from it."""
        used = {name: self.recipes[name] for name in self.plan.variables}
        return {
            "source": f"STAC catalogue {self.url}",
            "collections": json.dumps(sorted({r.collection for r in used.values()})),
            "stac_recipes": json.dumps(
                {name: r.model_dump(exclude_defaults=True) for name, r in used.items()}
            ),
        }


def stac_months(
    period: tuple[str, str], variables: Sequence[str], recipes: Mapping
) -> pd.DatetimeIndex:
    """Return the months of a fetch, after checking the period and that each driver has a recipe."""
    missing = sorted(set(variables) - set(recipes))
    if missing:
        raise FetchFailedError(
            f"no STAC recipe for {missing}; available: {sorted(recipes)} (add recipes in the "
            "stac section of an ingest config)"
        )
    try:
        months = pd.date_range(period[0], period[1], freq="MS")
    except ValueError:
        raise FetchFailedError(f"period {period[0]}:{period[1]}: write months as YYYY-MM") from None
    if len(months) == 0:
        raise FetchFailedError(f"period {period[0]}:{period[1]} holds no month (is it reversed?)")
    return months


def fetch_stac_cube(
    grid: TargetGrid,
    period: tuple[str, str],
    out: str | Path,
    *,
    catalog: str | Path = PLANETARY_COMPUTER,
    recipes: Mapping[str, StacRecipe] = PLANETARY_COMPUTER_RECIPES,
    variables: Sequence[str] = STAC_DRIVERS,
    tile: int = 256,
    months_per_request: int = 12,
    max_interpolated: int | None = 2,
    extra: Callable[[Block], Mapping[str, np.ndarray]] | None = None,
    extra_variables: Sequence[str] = (),
    provenance: Mapping[str, str] | None = None,
    progress: Advance | None = None,
) -> Path:
    """Read monthly drivers from a STAC catalogue into a canonical Zarr cube, resumably.

    Parameters
    ----------
    grid
        Target grid: CRS, bounds and resolution chosen by the user.
    period
        First and last month, ``("YYYY-MM", "YYYY-MM")``.
    out
        ``cube.zarr`` to write; blocks are staged in ``<out>.fetching`` and a re-run fetches
        only the blocks not recorded (see [`fetch_blocks`][upscale.drivers.blocks.fetch_blocks]).
    catalog
        STAC API URL or static catalogue (default: Planetary Computer, whose items are signed).
    recipes
        Recipe of each driver (default: Planetary Computer's collections).
    variables
        Canonical drivers to read.
    tile, months_per_request
        Size of one block: ``tile x tile`` pixels x this many months.
    max_interpolated
        Longest cloud gap interpolated (see [`fill_gaps`][upscale.drivers.gaps.fill_gaps]);
        None leaves gaps NaN.
    extra, extra_variables
        Drivers from elsewhere on the same grid (an ingest config's local sources): a block
        fetcher of ``extra_variables``.
    provenance
        More attributes for the cube.
    progress
        Called with (blocks done, blocks in all) after each block.

    Returns
    -------
    pathlib.Path
        The written cube.
    """
    months = stac_months(period, variables, recipes)
    plan = FetchPlan(grid, (*variables, *extra_variables), months, tile, months_per_request)
    reader = StacBlocks(
        catalog, recipes, FetchPlan(grid, tuple(variables), months, tile, months_per_request)
    )

    def fetch(block: Block) -> dict[str, np.ndarray]:
        values = reader(block)
        if extra is not None:
            values |= dict(extra(block))
        return values

    return fetch_blocks(
        plan,
        out,
        fetch,
        attrs=reader.provenance() | dict(provenance or {}),
        comments={"VPD": VPD_COMMENT} if "VPD" in variables and recipes["VPD"].dewpoint else {},
        max_interpolated=max_interpolated,
        progress=progress,
    )
