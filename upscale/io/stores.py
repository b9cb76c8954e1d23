"""Open, check and write gridded stores: driver cubes, wetland masks and output maps.

Cubes are Zarr v3 (NetCDF is also read) with dims ``(time, y, x)`` and a CRS carried by
rioxarray's ``spatial_ref`` grid mapping. Every gridded input, ingest sources included, is
read by `open_gridded`, which puts it on one canonical grid (`to_canonical_grid`). Writes go
to a temporary sibling and are renamed into place at the end, so a crash leaves either the
previous complete store or none.
"""

from __future__ import annotations

import functools
import shutil
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import dask
import numpy as np
import pyproj
import rasterio.errors
import rioxarray
import xarray as xr
import zarr.codecs

from upscale.errors import (
    GridMappingWarning,
    InvalidCubeError,
    InvalidMapsError,
    InvalidMaskError,
    OutputNotWritableError,
    UpscaleError,
)
from upscale.io.durable import ResumeRecord, output_lock, staged
from upscale.options import OPTIONS
from upscale.progress import Advance
from upscale.schema import (
    DEFAULT_FEATURES,
    ECOSYSTEMS,
    FLUXES,
    SPATIAL_DIMS,
    WETLAND,
    WETLAND_FRACTION,
    cover_name,
    validate_cube,
)

StoreKind = Literal["cube", "mask", "maps", "source"]
"""What a store is opened as: a driver cube, a wetland mask, maps, or an ingest source."""

_KINDS: dict[StoreKind, tuple[type[UpscaleError], str]] = {
    "cube": (InvalidCubeError, "pass the path of a Zarr or NetCDF driver cube"),
    "mask": (InvalidMaskError, "pass a wetland mask on the cube's grid"),
    "maps": (InvalidMapsError, "pass a maps store written by `upscale predict`"),
    "source": (InvalidCubeError, "check the source's path in the ingest config"),
}
"""Each kind of store: the error its problems raise, and the fix a missing path names."""

DIM_ALIASES = {
    "lat": "y",
    "latitude": "y",
    "lon": "x",
    "longitude": "x",
    "valid_time": "time",  # ERA5 from the Climate Data Store
}
"""Dimension names read as the canonical ``y``, ``x`` and ``time``."""

_GEOGRAPHIC_DIMS = {"lat", "latitude", "lon", "longitude"}

RASTER_BANDS = "band_data"
"""Variable holding a GeoTIFF's bands ``(band, y, x)`` once opened (rioxarray's xarray name)."""

_RASTER_SUFFIXES = {".tif", ".tiff"}

Grid = TypeVar("Grid", xr.Dataset, xr.DataArray)


def open_gridded(path: str | Path, *, kind: StoreKind) -> xr.Dataset:
    """Open a Zarr store, NetCDF file or GeoTIFF lazily, on the canonical grid.

    Every gridded input is read here, so a cube, a mask, maps and an ingest source all end
    up on the same grid, and a problem raises the error of what was being opened.

    Parameters
    ----------
    path
        Zarr v3 store (a ``.zarr`` folder, or any folder with a ``zarr.json``), GeoTIFF
        (``.tif``, ``.tiff``) or NetCDF file.
    kind
        What the path should hold; it picks the error raised and the fix it names.

    Returns
    -------
    xarray.Dataset
        Dask-backed, its grid mapping decoded, put on the grid of
        [`to_canonical_grid`][upscale.io.stores.to_canonical_grid]. A GeoTIFF's bands are the
        variable [`RASTER_BANDS`][upscale.io.stores.RASTER_BANDS], nodata read as NaN and scale
        factors applied.

    Raises
    ------
    InvalidCubeError
        For a cube or an ingest source that does not exist or cannot be read.
    InvalidMaskError
        For such a mask.
    InvalidMapsError
        For such maps.

    See Also
    --------
    open_cube, open_mask, open_maps : The readers that check what they opened.
    """
    path = Path(path)
    error, fix = _KINDS[kind]
    if not path.exists():
        raise error(f"{path}: no such file or store; {fix}")
    try:
        ds = _open_lazily(path)
    except (ValueError, OSError, rasterio.errors.RasterioError) as err:
        raise error(f"{path}: not a readable Zarr store, NetCDF file or GeoTIFF ({err})") from None
    return to_canonical_grid(ds, str(path))


def _open_lazily(path: Path) -> xr.Dataset:
    """Open a path as its suffix or contents say, with dask arrays and CF decoding."""
    if path.suffix.lower() in _RASTER_SUFFIXES:
        bands = rioxarray.open_rasterio(path, chunks={}, mask_and_scale=True)
        return bands.to_dataset(name=RASTER_BANDS)
    if path.suffix.lower() == ".zarr" or (path / "zarr.json").exists():
        return xr.open_zarr(path, consolidated=False, decode_coords="all")
    return xr.open_dataset(path, chunks={}, decode_coords="all")


_CRS_ATTRS = ("crs_wkt", "spatial_ref")
"""Attributes of a CF grid-mapping variable holding the CRS as WKT (CF's, then GDAL's)."""


def _grid_mapping_crs(var: xr.DataArray) -> pyproj.CRS | None:
    """Return the CRS a CF grid-mapping variable states (WKT or CF parameters), or None."""
    try:
        for attr in _CRS_ATTRS:
            if attr in var.attrs:
                return pyproj.CRS.from_user_input(var.attrs[attr])
        if "grid_mapping_name" in var.attrs:
            return pyproj.CRS.from_cf(var.attrs)
    except pyproj.exceptions.CRSError:
        pass
    return None


def _link_grid_mapping(grid: Grid, source: str) -> Grid:
    """Use the CRS of a grid-mapping variable that no data variable names.

    ``to_zarr(encoding=...)`` replaces the encoding that held each variable's
    ``grid_mapping``: the ``spatial_ref`` (or CF ``crs``) variable is stored, but nothing
    points at it, so rioxarray finds no CRS. Such a variable is made the grid's
    ``spatial_ref`` again, with a note naming it.
    """
    if grid.rio.crs is not None:
        return grid
    variables = grid.variables if isinstance(grid, xr.Dataset) else grid.coords
    found = {
        name: crs
        for name, var in variables.items()
        if var.ndim == 0 and (crs := _grid_mapping_crs(var)) is not None
    }
    if not found:
        return grid
    # rioxarray's name first, then CF's usual one: a store may carry both, the same CRS.
    name = min(found, key=lambda n: (n != "spatial_ref", n != "crs", str(n)))
    crs = found[name]
    kept = {k: v for k, v in grid[name].attrs.items() if k == "GeoTransform"}
    grid = grid.drop_vars(name).rio.write_crs(crs.to_wkt(), grid_mapping_name="spatial_ref")
    grid["spatial_ref"].attrs.update(kept)
    authority = crs.to_authority()
    warnings.warn(
        f"{source}: no variable names its grid mapping '{name}' (a grid_mapping attribute "
        f"lost, e.g. by to_zarr(encoding=...)); using its CRS "
        f"{':'.join(authority) if authority else crs.name}",
        GridMappingWarning,
        stacklevel=5,  # the caller of open_cube, open_mask...
    )
    return grid


def to_canonical_grid(grid: Grid, source: str) -> Grid:
    """Put a dataset or array on the canonical grid: ``y``/``x``, north up, -180..180, a CRS.

    Parameters
    ----------
    grid
        Dataset or array on any regular grid, lazy or not.
    source
        How a warning names it (its path).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        The same values with the dims of [`DIM_ALIASES`][upscale.io.stores.DIM_ALIASES] renamed,
        ``y`` descending (north up), ``x`` ascending, and rioxarray's ``spatial_ref`` CRS
        where one is known.

    Notes
    -----
    A CRS in a grid-mapping variable that no data variable names is used, with a
    `GridMappingWarning`. Grids with lat/lon dims and no CRS are EPSG:4326. Longitudes east
    of 180 (a 0-360 grid) are moved to -180..180, where regions, towers and masks are, and
    ``x`` re-sorted, unless that breaks the grid's regular spacing: a regional grid across
    180 E keeps its 0-360 longitudes, the only regular ones. When anything moved, the
    stored affine transform is recomputed, as GeoTIFFs and GIS read it.
    """
    grid = _link_grid_mapping(grid, source)
    geographic = bool(_GEOGRAPHIC_DIMS & set(grid.dims))
    grid = grid.rename(
        {d: to for d in grid.dims if (to := DIM_ALIASES.get(str(d))) and to not in grid.dims}
    )
    if grid.rio.crs is None and geographic:
        grid = grid.rio.write_crs("EPSG:4326")
    crs = grid.rio.crs
    moved = False
    if "x" in grid.dims and crs is not None and crs.is_geographic and float(grid["x"].max()) > 180:
        shifted = grid.assign_coords(x=(grid["x"] + 180) % 360 - 180)
        if not shifted.indexes["x"].is_monotonic_increasing:
            shifted = shifted.sortby("x")
        if _evenly_spaced(shifted["x"].values):
            grid, moved = shifted, True
    if "y" in grid.dims and grid.sizes["y"] > 1 and grid["y"][0] < grid["y"][-1]:
        grid, moved = grid.isel(y=slice(None, None, -1)), True
    if "x" in grid.dims and grid.sizes["x"] > 1 and grid["x"][0] > grid["x"][-1]:
        grid, moved = grid.isel(x=slice(None, None, -1)), True
    if moved and crs is not None and min(grid.sizes.get(d, 1) for d in ("y", "x")) > 1:
        # The stored transform describes the grid as it was; GeoTIFFs and GIS would read it.
        # (A grid one pixel wide has no step to recompute it from: its transform stays.)
        grid = grid.rio.write_transform(grid.rio.transform(recalc=True))
    return grid


def _evenly_spaced(values: np.ndarray) -> bool:
    """Whether coordinates keep one step, to a tenth of it (float32 rounding stays within)."""
    steps = np.diff(values.astype("float64"))
    if len(steps) < 2:
        return True
    step = float(np.median(steps))
    return bool(np.all(np.abs(steps - step) <= 0.1 * abs(step)))


def open_cube(
    path: str | Path,
    features: Iterable[str] = DEFAULT_FEATURES,
    *,
    tile: int | None = None,
) -> xr.Dataset:
    """Open a driver cube lazily and validate it against the schema.

    Parameters
    ----------
    path
        Zarr v3 store or NetCDF file with monthly drivers.
    features
        Driver variables that must be present with canonical units.
    tile
        Spatial chunk size; by default the store's own chunks, or the ``tile`` option
        ([`set_options`][upscale.options.set_options], 256) where those are larger (an
        unchunked NetCDF file would otherwise be one tile). The whole time axis is always
        one chunk, as the engine needs every month of a pixel at once.

    Returns
    -------
    xarray.Dataset
        Dask-backed dataset with dims ``(time, y, x)`` and a CRS.

    Raises
    ------
    InvalidCubeError
        When the cube breaks the contract (see [`validate_cube`][upscale.schema.validate_cube]).
    """
    path = Path(path)
    ds = open_gridded(path, kind="cube")
    validate_cube(ds, features, source=str(path))
    if tile is None:
        default = OPTIONS["tile"]
        try:
            largest = max(max(ds.chunksizes.get(d, (ds.sizes[d],))) for d in SPATIAL_DIMS)
        except ValueError:  # variables stored with chunks of their own: one grid of tiles
            largest = default + 1
        tile = default if largest > default else None
    chunks = {"time": -1} if tile is None else {"time": -1, "y": tile, "x": tile}
    return ds.chunk(chunks)


def open_mask(path: str | Path, cube: xr.Dataset | None = None) -> xr.Dataset:
    """Open a wetland mask and check it lies on the cube's grid.

    Parameters
    ----------
    path
        GeoTIFF (band 1 is ``wetland``) or Zarr/NetCDF store with an integer ``wetland``
        variable (0 none, 1 mangrove, 2 saltmarsh) and optionally ``wetland_fraction``.
    cube
        When given, the mask must have the same CRS and coordinates as this cube.

    Returns
    -------
    xarray.Dataset
        ``wetland`` (and ``wetland_fraction``, 1 on wetland pixels when absent; and each
        ecosystem's ``<ecosystem>_fraction`` when the store has it), dims ``(y, x)``,
        chunked like the cube when one is given.

    Raises
    ------
    InvalidMaskError
        When the mask has no ``wetland`` variable, unknown codes, or another grid.
    """
    path = Path(path)
    ds = open_gridded(path, kind="mask")
    if RASTER_BANDS in ds:
        ds = _wetland_band(ds[RASTER_BANDS].isel(band=0, drop=True)).to_dataset(name=WETLAND)
    if WETLAND not in ds:
        raise InvalidMaskError(f"{path}: no '{WETLAND}' variable; it holds {list(ds.data_vars)}")
    # The source's own attributes (a GeoTIFF band's scale_factor, add_offset...) would clash
    # with the encoding of the maps the mask travels into.
    wetland = ds[WETLAND].load().drop_attrs()
    codes = set(np.unique(wetland.values).tolist()) - {0}
    unknown = {c for c in codes if c not in ECOSYSTEMS}
    if unknown:
        nodata = "; store no wetland as 0, not NaN" if any(c != c for c in unknown) else ""
        raise InvalidMaskError(
            f"{path}: '{WETLAND}' has codes {sorted(unknown)}; allowed are 0 (none) and "
            + ", ".join(f"{c} ({n})" for c, n in ECOSYSTEMS.items())
            + nodata
        )
    if WETLAND_FRACTION in ds:
        fraction = ds[WETLAND_FRACTION].load().drop_attrs().where(wetland > 0, 0.0)
        fraction = fraction.astype("float32")
        bad = ~((fraction >= 0) & (fraction <= 1))  # NaN fails both
        if bool(bad.any()):
            raise InvalidMaskError(
                f"{path}: '{WETLAND_FRACTION}' has {int(bad.sum())} wetland pixel(s) that are "
                "NaN or outside 0..1; give a cover fraction (not a percentage) on every "
                "wetland pixel"
            )
    else:
        fraction = (wetland > 0).astype("float32")
    codes = sorted(ECOSYSTEMS)
    mask = xr.Dataset(
        {
            WETLAND: wetland.astype("uint8").assign_attrs(
                long_name="dominant wetland ecosystem of the pixel",
                flag_values=[0, *codes],
                flag_meanings=" ".join(["none", *(ECOSYSTEMS[c] for c in codes)]),
            ),
            WETLAND_FRACTION: fraction.assign_attrs(_cover_attrs("wetland")),
        }
    )
    for ecosystem in ECOSYSTEMS.values():
        name = cover_name(ecosystem)
        if name in ds:  # each ecosystem's own cover, from `upscale mask`
            cover = ds[name].load().drop_attrs().where(wetland > 0, 0.0).astype("float32")
            mask[name] = cover.assign_attrs(_cover_attrs(ecosystem))
    if cube is not None:
        _check_same_grid(mask, cube, path)
        mask = mask.assign_coords(x=cube["x"], y=cube["y"])
        if cube.chunks:
            mask = mask.chunk({d: cube.chunksizes[d] for d in SPATIAL_DIMS})
    crs = ds.rio.crs or (cube.rio.crs if cube is not None else None)
    if crs is None:
        raise InvalidMaskError(
            f"{path}: the mask has no CRS; write one into it (e.g. rioxarray's "
            "rio.write_crs), or use lat/lon coordinates, which are read as EPSG:4326"
        )
    return mask.rio.write_crs(crs)


def _wetland_band(band: xr.DataArray) -> xr.DataArray:
    """Return a GeoTIFF mask's band as classes: its nodata means no wetland, not a class."""
    if band.rio.encoded_nodata is not None:
        band = band.fillna(0)
    stored = np.dtype(band.encoding.get("dtype", band.dtype))
    # Back to the integer classes the file stores (masking made them float).
    return band.astype(stored) if np.issubdtype(stored, np.integer) else band


def _cover_attrs(what: str) -> dict[str, str]:
    return {"long_name": f"share of the pixel's area covered by {what}", "units": "1"}


def _check_same_grid(mask: xr.Dataset, cube: xr.Dataset, path: Path) -> None:
    fix = "rebuild it on the cube's grid (e.g. rioxarray's reproject_match)"
    if mask.rio.crs is not None and cube.rio.crs is not None and mask.rio.crs != cube.rio.crs:
        raise InvalidMaskError(
            f"{path}: mask CRS {mask.rio.crs} differs from the cube's {cube.rio.crs}; {fix}"
        )
    shape = tuple(mask.sizes[d] for d in SPATIAL_DIMS)
    expected = tuple(cube.sizes[d] for d in SPATIAL_DIMS)
    if shape != expected:
        raise InvalidMaskError(
            f"{path}: mask grid is {shape} (y, x), the cube's is {expected}; {fix}"
        )
    for dim in SPATIAL_DIMS:
        step = abs(float(cube[dim][1] - cube[dim][0])) if cube.sizes[dim] > 1 else 1.0
        if not np.allclose(mask[dim].values, cube[dim].values, atol=1e-3 * step, rtol=0):
            raise InvalidMaskError(f"{path}: mask {dim} coordinates differ from the cube's; {fix}")


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """Zarr v3 encoding per variable that keeps the CRS link (see NOTES.md)."""
    encoding = {}
    for name, var in ds.data_vars.items():
        if name == "spatial_ref":
            continue
        enc: dict = {"compressors": (zarr.codecs.ZstdCodec(level=3),)}
        if "grid_mapping" in var.encoding or "spatial_ref" in ds.coords:
            enc["grid_mapping"] = "spatial_ref"
        if np.issubdtype(var.dtype, np.floating):
            enc["_FillValue"] = np.nan
        encoding[name] = enc
    return encoding


COMPLETE = "upscale_complete"
"""Store attribute written last: a store without it was interrupted."""

_TILES_SUFFIX = ".tiles"
"""Sibling folder of a partial store recording its finished tiles (kept outside Zarr)."""


def write_store(
    ds: xr.Dataset,
    path: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: Advance | None = None,
) -> Path:
    """Write a dataset to a Zarr v3 store atomically, keeping its CRS.

    The dataset (lazy or not) is written to ``<path>.partial``, marked complete, and
    renamed into place ([`staged`][upscale.io.durable.staged]), so a crash never leaves a
    half-written store under ``path``. The store's lock
    ([`output_lock`][upscale.io.durable.output_lock]) is held throughout: a second run writing
    the same store is refused.

    Parameters
    ----------
    ds
        Dataset with rioxarray's ``spatial_ref`` coordinate; dask arrays compute as they are
        written, chunk by chunk.
    path
        Destination ``.zarr`` folder.
    overwrite
        Replace an existing store; without it an existing store raises.
    resume
        Write by rows of spatial chunks, recording each finished row beside the partial
        store; a run killed at any point and started again with the same dataset
        writes only the missing rows. The dataset must be chunked in ``y`` and ``x``.
    progress
        Called with (rows written, rows in all) when resuming, first with the rows an
        earlier run left, then from a watcher thread as rows finish (every 0.25 s).

    Returns
    -------
    pathlib.Path
        The written store, as ``path`` was given.
    """
    given = Path(path)
    path = given.absolute()  # dask workers resolve paths in folders of their own
    with output_lock(path):  # inside it, no other run writes this store or its row records
        if path.exists() and not path.is_dir():
            raise OutputNotWritableError(
                f"{path} is a file, not a Zarr store; choose another destination, or remove it"
            )
        ds = ds.drop_encoding()
        for name in ds.data_vars:
            if "spatial_ref" in ds.coords:
                ds[name].attrs.pop("grid_mapping", None)
        with staged(path, overwrite=overwrite, resume=resume) as partial:
            if resume:
                _write_tiles(ds, partial, progress)
            else:
                encoding = _encoding(ds)
                ds.to_zarr(partial, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
            group = zarr.open_group(partial, mode="r+")
            group.attrs[COMPLETE] = True
        # The row records go after the swap, so a run killed before it finds its rows done.
        shutil.rmtree(_tiles_folder(partial), ignore_errors=True)
    return given


def _row_record(ds: xr.Dataset, partial: Path) -> ResumeRecord:
    """Return the record of a resumable write: its plan, and its rows written, beside it."""
    tiles = _tiles_folder(partial)
    plan = {
        "sizes": dict(ds.sizes),
        "chunks": {d: list(ds.chunks[d]) for d in ("y", "x")},
        "variables": sorted(map(str, ds.data_vars)),
        "attrs": {k: str(v) for k, v in ds.attrs.items() if k not in {"created", "command"}},
    }
    return ResumeRecord(tiles / "plan.json", plan, parts=tiles)


def _write_tiles(
    ds: xr.Dataset,
    partial: Path,
    progress: Advance | None,
) -> None:
    """Write a lazy dataset into ``partial`` by rows of spatial chunks, resumably.

    Every row still to write is in one dask graph; a task after each row's write records
    it, so a killed run leaves exactly the rows it finished recorded.
    """
    if not ds.chunks or not {"y", "x"} <= set(ds.chunks):
        raise ValueError("a resumable write needs a dataset chunked in y and x")
    record = _row_record(ds, partial)
    if not partial.exists() or not record.resumes():
        # An interrupted run of something else, or records left after a swap: start over,
        # records first, so that no record outlives the rows it stands for.
        record.clear()
        shutil.rmtree(partial, ignore_errors=True)
        ds.to_zarr(
            partial,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=_encoding(ds),
            compute=False,
        )
        record.start()  # last: the template is complete
    elsewhere = [v for v in ds.variables if not {"y", "x"} & set(ds[v].dims)]
    # One row of spatial chunks per region write: xarray's per-call overhead made single
    # tiles 40 % slower on the demo, and a row's tiles still compute in parallel.
    width = slice(0, ds.sizes["x"])
    rows = [{"y": y, "x": width} for y in _chunk_slices(ds.chunks["y"])]
    done = record.finished()
    todo = [row for row in rows if _tile_name(row) not in done]
    # All rows in one graph, each followed by the task that records it: no barrier
    # between rows leaves a thread idle, and a row is recorded as soon as it is stored.
    records = [
        dask.delayed(_record_row)(
            ds.drop_vars(elsewhere)  # time and spatial_ref: written with the template
            .isel(row)
            .to_zarr(partial, region=row, compute=False, consolidated=False),
            functools.partial(record.mark, _tile_name(row)),
        )
        for row in todo
    ]
    with _watch_rows(record, len(rows), progress):
        dask.compute(*records)


def _record_row(stored: None, mark: Callable[[], None]) -> None:
    """Mark a row of chunks as written; ``stored`` is the row's write, done before."""
    mark()


@contextmanager
def _watch_rows(record: ResumeRecord, total: int, progress: Advance | None) -> Iterator[None]:
    """Report the rows recorded while the block runs, on any dask scheduler."""
    if progress is None:
        yield
        return

    def written() -> int:
        return len(record.finished())

    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.25):
            progress(written(), total)

    progress(written(), total)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()
    progress(written(), total)


def _tiles_folder(partial: Path) -> Path:
    return partial.with_name(partial.name + _TILES_SUFFIX)


def _chunk_slices(chunks: tuple[int, ...]) -> list[slice]:
    edges = np.cumsum((0, *chunks))
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _tile_name(tile: dict[str, slice]) -> str:
    return f"y{tile['y'].start}_x{tile['x'].start}"


def open_store(path: str | Path, *, kind: StoreKind = "cube") -> xr.Dataset:
    """Open a complete store written by `write_store`, on the canonical grid.

    Parameters
    ----------
    path
        The store: a cube, truth, a mask, maps.
    kind
        What it holds, which picks the error a problem raises: a `InvalidCubeError` for a cube (the
        default, also for truth and other gridded stores), a `InvalidMaskError` for a mask, a
        `InvalidMapsError` for maps.

    Raises
    ------
    InvalidCubeError, InvalidMaskError, InvalidMapsError
        When the store is missing, unreadable, or was not finished (``kind`` picks which).
    """
    path = Path(path)
    ds = open_gridded(path, kind=kind)
    if not ds.attrs.get(COMPLETE):
        error, _ = _KINDS[kind]
        raise error(
            f"{path}: an incomplete store (its writing was interrupted); run the command "
            "that writes it again: it finishes the missing parts"
        )
    return ds


def open_maps(path: str | Path) -> xr.Dataset:
    """Open a ``maps.zarr`` written by ``predict``, checking it is one.

    Raises
    ------
    InvalidMapsError
        When the store is missing, unreadable or unfinished, or lacks the flux variables,
        the mask or the time axis.
    """
    maps = open_store(path, kind="maps")
    needed = [*FLUXES, WETLAND, WETLAND_FRACTION, "time"]
    missing = [name for name in needed if name not in maps.variables]
    if missing:
        raise InvalidMapsError(
            f"{path}: not a maps store written by `upscale predict` (no {', '.join(missing)})"
        )
    return maps
