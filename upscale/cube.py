"""Open, check and write gridded stores: driver cubes, wetland masks and output maps.

Cubes are Zarr v3 (NetCDF is also read) with dims ``(time, y, x)`` and a CRS carried by
rioxarray's ``spatial_ref`` grid mapping. Writes go to a temporary sibling and are renamed
into place at the end, so a crash leaves either the previous complete store or none.
"""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import numpy as np
import pyproj
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr.codecs

from upscale.errors import (
    CubeError,
    GridMappingWarning,
    MapsError,
    MaskError,
    OutputExistsError,
    OutputWriteError,
)
from upscale.locking import output_lock
from upscale.options import OPTIONS
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

_DIM_ALIASES = {"lat": "y", "latitude": "y", "lon": "x", "longitude": "x"}
_GEOGRAPHIC_DIMS = {"lat", "latitude", "lon", "longitude"}


def _open_any(path: Path) -> xr.Dataset:
    """Open a Zarr store, NetCDF file or GeoTIFF lazily, with its grid mapping decoded."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or store")
    suffix = path.suffix.lower()
    try:
        if suffix in {".tif", ".tiff"}:
            band = rioxarray.open_rasterio(path, chunks={}, masked=False).isel(band=0, drop=True)
            nodata = band.rio.nodata
            if nodata is not None:  # nodata means no wetland, not an unknown class
                band = band.where(band != nodata, 0) if np.isfinite(nodata) else band.fillna(0)
            return band.to_dataset(name=WETLAND)
        if suffix == ".zarr" or (path / "zarr.json").exists():
            return xr.open_zarr(path, consolidated=False, decode_coords="all")
        return xr.open_dataset(path, chunks={}, decode_coords="all")
    except (ValueError, OSError) as err:
        raise ValueError(
            f"{path}: not a readable Zarr store, NetCDF file or GeoTIFF ({err})"
        ) from None


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


def _link_grid_mapping(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Use the CRS of a grid-mapping variable that no data variable names.

    ``to_zarr(encoding=...)`` replaces the encoding that held each variable's
    ``grid_mapping``: the ``spatial_ref`` (or CF ``crs``) variable is stored, but nothing
    points at it, so rioxarray finds no CRS. Such a variable is made the cube's
    ``spatial_ref`` again, with a note naming it.
    """
    if ds.rio.crs is not None:
        return ds
    found = {
        name: crs
        for name, var in ds.variables.items()
        if var.ndim == 0 and (crs := _grid_mapping_crs(var)) is not None
    }
    if not found:
        return ds
    # rioxarray's name first, then CF's usual one: a store may carry both, the same CRS.
    name = min(found, key=lambda n: (n != "spatial_ref", n != "crs", str(n)))
    crs = found[name]
    kept = {k: v for k, v in ds[name].attrs.items() if k == "GeoTransform"}
    ds = ds.drop_vars(name).rio.write_crs(crs.to_wkt(), grid_mapping_name="spatial_ref")
    ds["spatial_ref"].attrs.update(kept)
    authority = crs.to_authority()
    warnings.warn(
        f"{source}: no variable names its grid mapping '{name}' (a grid_mapping attribute "
        f"lost, e.g. by to_zarr(encoding=...)); using its CRS "
        f"{':'.join(authority) if authority else crs.name}",
        GridMappingWarning,
        stacklevel=4,
    )
    return ds


def _to_canonical_grid(ds: xr.Dataset, source: str = "store") -> xr.Dataset:
    """Rename lat/lon dims to y/x, north up and west to east, default lat/lon to EPSG:4326.

    A CRS in a grid-mapping variable that no data variable names is used, with a
    `GridMappingWarning`. Longitudes all east of 180 (a 0-360 grid) are moved to
    -180..180, where regions, towers and masks are; a grid across 180 E keeps its 0-360
    longitudes, the only regular ones.
    """
    ds = _link_grid_mapping(ds, source)
    geographic = bool(_GEOGRAPHIC_DIMS & set(ds.dims))
    ds = ds.rename({d: _DIM_ALIASES[d] for d in ds.dims if d in _DIM_ALIASES})
    if ds.rio.crs is None and geographic:
        ds = ds.rio.write_crs("EPSG:4326")
    moved = False
    if "y" in ds.dims and ds.sizes["y"] > 1 and ds["y"][0] < ds["y"][-1]:
        ds, moved = ds.isel(y=slice(None, None, -1)), True
    if "x" in ds.dims and ds.sizes["x"] > 1 and ds["x"][0] > ds["x"][-1]:
        ds, moved = ds.isel(x=slice(None, None, -1)), True
    crs = ds.rio.crs
    if "x" in ds.dims and crs is not None and crs.is_geographic and float(ds["x"].min()) > 180:
        ds, moved = ds.assign_coords(x=ds["x"] - 360), True
    if moved and crs is not None and min(ds.sizes.get(d, 1) for d in ("y", "x")) > 1:
        # The stored transform describes the grid as it was; GeoTIFFs and GIS would read it.
        # (A grid one pixel wide has no step to recompute it from: its transform stays.)
        ds = ds.rio.write_transform(ds.rio.transform(recalc=True))
    return ds


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
    CubeError
        When the cube breaks the contract (see [`validate_cube`][upscale.schema.validate_cube]).
    """
    path = Path(path)
    try:
        ds = _open_any(path)
    except FileNotFoundError as err:
        raise CubeError(f"{err}; pass the path of a Zarr or NetCDF driver cube") from None
    except ValueError as err:
        raise CubeError(str(err)) from None
    ds = _to_canonical_grid(ds, str(path))
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
    MaskError
        When the mask has no ``wetland`` variable, unknown codes, or another grid.
    """
    path = Path(path)
    try:
        ds = _to_canonical_grid(_open_any(path), str(path))
    except FileNotFoundError as err:
        raise MaskError(f"{err}; pass a wetland mask on the cube's grid") from None
    except ValueError as err:
        raise MaskError(str(err)) from None
    if WETLAND not in ds:
        raise MaskError(f"{path}: no '{WETLAND}' variable; it holds {list(ds.data_vars)}")
    # The source's own attributes (a GeoTIFF band's scale_factor, add_offset...) would clash
    # with the encoding of the maps the mask travels into.
    wetland = ds[WETLAND].load().drop_attrs()
    codes = set(np.unique(wetland.values).tolist()) - {0}
    unknown = {c for c in codes if c not in ECOSYSTEMS}
    if unknown:
        nodata = "; store no wetland as 0, not NaN" if any(c != c for c in unknown) else ""
        raise MaskError(
            f"{path}: '{WETLAND}' has codes {sorted(unknown)}; allowed are 0 (none) and "
            + ", ".join(f"{c} ({n})" for c, n in ECOSYSTEMS.items())
            + nodata
        )
    if WETLAND_FRACTION in ds:
        fraction = ds[WETLAND_FRACTION].load().drop_attrs().where(wetland > 0, 0.0)
        fraction = fraction.astype("float32")
        bad = ~((fraction >= 0) & (fraction <= 1))  # NaN fails both
        if bool(bad.any()):
            raise MaskError(
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
        raise MaskError(
            f"{path}: the mask has no CRS; write one into it (e.g. rioxarray's "
            "rio.write_crs), or use lat/lon coordinates, which are read as EPSG:4326"
        )
    return mask.rio.write_crs(crs)


def _cover_attrs(what: str) -> dict[str, str]:
    return {"long_name": f"share of the pixel's area covered by {what}", "units": "1"}


def _check_same_grid(mask: xr.Dataset, cube: xr.Dataset, path: Path) -> None:
    fix = "rebuild it on the cube's grid (e.g. rioxarray's reproject_match)"
    if mask.rio.crs is not None and cube.rio.crs is not None and mask.rio.crs != cube.rio.crs:
        raise MaskError(
            f"{path}: mask CRS {mask.rio.crs} differs from the cube's {cube.rio.crs}; {fix}"
        )
    shape = tuple(mask.sizes[d] for d in SPATIAL_DIMS)
    expected = tuple(cube.sizes[d] for d in SPATIAL_DIMS)
    if shape != expected:
        raise MaskError(f"{path}: mask grid is {shape} (y, x), the cube's is {expected}; {fix}")
    for dim in SPATIAL_DIMS:
        step = abs(float(cube[dim][1] - cube[dim][0])) if cube.sizes[dim] > 1 else 1.0
        if not np.allclose(mask[dim].values, cube[dim].values, atol=1e-3 * step, rtol=0):
            raise MaskError(f"{path}: mask {dim} coordinates differ from the cube's; {fix}")


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
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a dataset to a Zarr v3 store atomically, keeping its CRS.

    The dataset (lazy or not) is written to ``<path>.partial``, marked complete, and
    renamed into place, so a crash never leaves a half-written store under ``path``. The
    store's lock ([`output_lock`][upscale.locking.output_lock]) is held throughout: a second run
    writing the same store is refused.

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
    with output_lock(path):  # inside it, no other run writes this store
        if path.exists() and not path.is_dir():
            raise OutputWriteError(
                f"{path} is a file, not a Zarr store; choose another destination, or remove it"
            )
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{path} exists; pass --overwrite (overwrite=True) to replace it"
            )
        partial = path.with_name(path.name + ".partial")
        replaced = path.with_name(path.name + ".replaced")
        if replaced.exists():  # an earlier swap was killed after moving the old store aside
            shutil.rmtree(replaced)
        ds = ds.drop_encoding()
        for name in ds.data_vars:
            if "spatial_ref" in ds.coords:
                ds[name].attrs.pop("grid_mapping", None)
        if resume:
            _write_tiles(ds, partial, progress)
        else:
            if partial.exists():
                shutil.rmtree(partial)
            encoding = _encoding(ds)
            ds.to_zarr(partial, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        group = zarr.open_group(partial, mode="r+")
        group.attrs[COMPLETE] = True
        # Renames, then deletions: a kill at any point leaves under ``path`` the old store,
        # the new one or, between the renames, nothing; never a store half deleted. The
        # row records go last, so a run killed before the swap finds its rows done.
        if path.exists():
            path.rename(replaced)
        partial.rename(path)
        shutil.rmtree(replaced, ignore_errors=True)
        shutil.rmtree(_tiles_folder(partial), ignore_errors=True)
    return given


def _write_tiles(
    ds: xr.Dataset,
    partial: Path,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Write a lazy dataset into ``partial`` by rows of spatial chunks, resumably.

    Every row still to write is in one dask graph; a task after each row's write records
    it, so a killed run leaves exactly the rows it finished recorded.
    """
    if not ds.chunks or not {"y", "x"} <= set(ds.chunks):
        raise ValueError("a resumable write needs a dataset chunked in y and x")
    plan = json.dumps(
        {
            "sizes": dict(ds.sizes),
            "chunks": {d: list(ds.chunks[d]) for d in ("y", "x")},
            "variables": sorted(map(str, ds.data_vars)),
            "attrs": {k: str(v) for k, v in ds.attrs.items() if k not in {"created", "command"}},
        },
        sort_keys=True,
    )
    done = _tiles_folder(partial)
    plan_file = done / "plan.json"
    if not partial.exists() or not plan_file.exists() or plan_file.read_text() != plan:
        # An interrupted run of something else, or records left after a swap: start over,
        # records first, so that no record outlives the rows it stands for.
        for leftover in (done, partial):
            if leftover.exists():
                shutil.rmtree(leftover)
        ds.to_zarr(
            partial,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=_encoding(ds),
            compute=False,
        )
        done.mkdir()
        plan_file.write_text(plan)  # last: the template is complete
    elsewhere = [v for v in ds.variables if not {"y", "x"} & set(ds[v].dims)]
    # One row of spatial chunks per region write: xarray's per-call overhead made single
    # tiles 40 % slower on the demo, and a row's tiles still compute in parallel.
    width = slice(0, ds.sizes["x"])
    rows = [{"y": y, "x": width} for y in _chunk_slices(ds.chunks["y"])]
    todo = [row for row in rows if not (done / _tile_name(row)).exists()]
    # All rows in one graph, each followed by the task that records it: no barrier
    # between rows leaves a thread idle, and a row is recorded as soon as it is stored.
    records = [
        dask.delayed(_record_row)(
            ds.drop_vars(elsewhere)  # time and spatial_ref: written with the template
            .isel(row)
            .to_zarr(partial, region=row, compute=False, consolidated=False),
            done / _tile_name(row),
        )
        for row in todo
    ]
    with _watch_rows(done, len(rows), progress):
        dask.compute(*records)


def _record_row(stored: None, marker: Path) -> None:
    """Mark a row of chunks as written; ``stored`` is the row's write, done before."""
    marker.touch()


@contextmanager
def _watch_rows(
    done: Path, total: int, progress: Callable[[int, int], None] | None
) -> Iterator[None]:
    """Report the rows recorded in ``done`` while the block runs, on any dask scheduler."""
    if progress is None:
        yield
        return

    def written() -> int:
        return sum(1 for marker in done.iterdir() if marker.name.startswith("y"))

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


def open_store(path: str | Path) -> xr.Dataset:
    """Open a store written by `write_store` (maps, truth, masks) with its CRS."""
    path = Path(path)
    if not path.exists():
        raise CubeError(f"{path}: no such store")
    try:
        ds = xr.open_zarr(path, consolidated=False, decode_coords="all")
    except (ValueError, OSError) as err:
        raise CubeError(f"{path}: not a readable Zarr store ({err})") from None
    if not ds.attrs.get(COMPLETE):
        raise CubeError(
            f"{path}: an incomplete store (its writing was interrupted); run the command "
            "that writes it again: it finishes the missing parts"
        )
    return _to_canonical_grid(ds, str(path))


def open_maps(path: str | Path) -> xr.Dataset:
    """Open a ``maps.zarr`` written by ``predict``, checking it is one.

    Raises
    ------
    MapsError
        When the store lacks the flux variables, the mask or the time axis.
    """
    maps = open_store(path)
    needed = [*FLUXES, WETLAND, WETLAND_FRACTION, "time"]
    missing = [name for name in needed if name not in maps.variables]
    if missing:
        raise MapsError(
            f"{path}: not a maps store written by `upscale predict` (no {', '.join(missing)})"
        )
    return maps
