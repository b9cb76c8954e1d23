"""Wetland masks on a cube's grid, from vector maps and fine rasters, as fractional cover.

A mask pixel is rarely all wetland: a 500 m cell on a mangrove coast holds creeks, mudflats
and forest. Each source is turned into the share of every cell it covers (exact polygon
overlap for vectors, area-weighted averaging for rasters such as Global Mangrove Watch),
so that totals weight each pixel by its wetland area rather than counting it whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.merge
import rasterio.windows
import shapely
import xarray as xr
from pyproj import CRS, Geod, Proj, Transformer
from rasterio.warp import Resampling, reproject, transform_bounds

from upscale.errors import InvalidMaskError
from upscale.grid import cover_fraction, grid_crs, grid_outline, pixel_areas
from upscale.io.vectors import read_vector
from upscale.schema import (
    ECOSYSTEM_CODES,
    ECOSYSTEMS,
    WETLAND,
    WETLAND_FRACTION,
    cover_name,
)

RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".vrt", ".img", ".jp2"})
"""File suffixes read as rasters; anything else is read as a vector file."""

MAX_SOURCE_PIXELS = 64_000_000
"""Source pixels read at once when aggregating a raster (bounds memory to ~256 MB)."""

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class EcosystemCover:
    """One ecosystem's cover of the grid and of its sources.

    Attributes
    ----------
    ecosystem
        Ecosystem name (a value of [`ECOSYSTEMS`][upscale.schema.ECOSYSTEMS]).
    fraction
        Share of each cell covered, ``(y, x)`` in 0..1.
    source_km2
        The sources' own area inside the grid's outline, on the WGS84 ellipsoid.
    """

    ecosystem: str
    fraction: np.ndarray
    source_km2: float


def read_wetland_vectors(
    path: str | Path,
    *,
    ecosystem: str | None = None,
    column: str = "ecosystem",
    classes: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Read wetland polygons and label each with its ecosystem.

    Parameters
    ----------
    path
        Any vector file GDAL reads (GeoPackage, GeoJSON, Shapefile, GeoParquet), any CRS.
    ecosystem
        The ecosystem of every polygon in the file (one file per ecosystem). When None,
        each polygon's ecosystem is read from ``column``.
    column
        Column naming each polygon's ecosystem: ``mangrove``/``saltmarsh`` or their codes,
        or the source's own classes when ``classes`` maps them.
    classes
        Source class -> ecosystem, e.g. ``{"Estuarine and Marine Wetland": "saltmarsh"}``;
        polygons of classes not listed are left out.

    Returns
    -------
    geopandas.GeoDataFrame
        Valid polygons with an ``ecosystem`` column of ecosystem names, in the file's CRS.

    Raises
    ------
    InvalidMaskError
        When the file is unreadable, has no CRS or column, or names unknown ecosystems.
    """
    path = Path(path)
    frame = _read_vector(path)
    if ecosystem is not None:
        labels = pd.Series(_ecosystem_name(ecosystem, path), index=frame.index)
    else:
        if column not in frame.columns:
            raise InvalidMaskError(
                f"{path}: no '{column}' column to read ecosystems from; it has "
                f"{[c for c in frame.columns if c != 'geometry']}. Name the column "
                "(--ecosystem-column) or give the file for one ecosystem (--mangrove FILE)"
            )
        values = frame[column].astype(str)
        if classes is not None:
            labels = values.map({k: _ecosystem_name(v, path) for k, v in classes.items()})
        else:
            labels = values.map(lambda value: _ecosystem_name(value, path, column=column))
    frame = frame.assign(ecosystem=labels).dropna(subset=["ecosystem"])
    if frame.empty:
        raise InvalidMaskError(f"{path}: no polygon maps to an ecosystem; check --class mappings")
    if frame.geometry.isna().any():
        raise InvalidMaskError(
            f"{path}: {int(frame.geometry.isna().sum())} row(s) have no geometry; remove them"
        )
    frame["geometry"] = shapely.make_valid(frame.geometry.values)
    polygons = frame.geometry.geom_type.isin(["Polygon", "MultiPolygon", "GeometryCollection"])
    if not polygons.all():
        kinds = sorted(set(frame.geometry.geom_type[~polygons]))
        raise InvalidMaskError(f"{path}: wetlands must be polygons; found {kinds}")
    return frame[["ecosystem", "geometry"]]


def _read_vector(path: Path) -> gpd.GeoDataFrame:
    frame = read_vector(path, InvalidMaskError)
    if frame.crs is None:
        raise InvalidMaskError(f"{path}: no CRS; set one (e.g. EPSG:4326) in the file")
    if frame.empty:
        raise InvalidMaskError(f"{path}: holds no polygon")
    return frame


def _ecosystem_name(value: object, path: Path, *, column: str | None = None) -> str:
    """Return the ecosystem named or coded by ``value``, or raise naming the allowed ones."""
    text = str(value).strip().lower()
    if text in ECOSYSTEM_CODES:
        return text
    if text.isdigit() and int(text) in ECOSYSTEMS:
        return ECOSYSTEMS[int(text)]
    where = f"column '{column}' holds" if column else "ecosystem"
    raise InvalidMaskError(
        f"{path}: {where} {value!r}, not one of {sorted(ECOSYSTEM_CODES)}; map the file's "
        "classes to ecosystems with --class 'SOURCE CLASS=mangrove'"
    )


def vector_covers(
    wetlands: gpd.GeoDataFrame, grid: xr.Dataset | xr.DataArray
) -> dict[str, EcosystemCover]:
    """Cover fraction of each ecosystem's polygons on the grid.

    Polygons are reprojected to the grid's CRS and merged per ecosystem, so overlaps count
    once; each cell's fraction is its exact share inside the merged shape.

    Parameters
    ----------
    wetlands
        Polygons with an ``ecosystem`` column
        ([`read_wetland_vectors`][upscale.budgets.masks.read_wetland_vectors]).
    grid
        Dataset with ``y``/``x`` pixel centres and a CRS: the cube.
    """
    crs = grid_crs(grid)
    outline = grid_outline(grid)
    covers = {}
    for ecosystem, group in wetlands.groupby("ecosystem"):
        shape = shapely.union_all(group.to_crs(crs).geometry.values)
        inside = shapely.intersection(shape, outline)
        covers[ecosystem] = EcosystemCover(
            ecosystem=str(ecosystem),
            fraction=cover_fraction(inside, grid),
            source_km2=_geodesic_km2(inside, crs, grid),
        )
    return covers


def _geodesic_km2(shape: shapely.Geometry, crs: CRS, grid: xr.Dataset | xr.DataArray) -> float:
    """Area of a shape on the WGS84 ellipsoid, edges densified to a tenth of a cell first."""
    step = abs(float(grid["x"][1] - grid["x"][0])) / 10
    dense = shapely.segmentize(shape, step)
    lonlat = gpd.GeoSeries([dense], crs=crs).to_crs("EPSG:4326").iloc[0]
    return abs(_GEOD.geometry_area_perimeter(lonlat)[0]) / 1e6


def raster_cover(
    paths: Sequence[str | Path], grid: xr.Dataset | xr.DataArray, ecosystem: str
) -> EcosystemCover:
    """Cover fraction of fine 0/1 rasters (e.g. Global Mangrove Watch tiles) on the grid.

    Parameters
    ----------
    paths
        Rasters in one CRS, any resolution finer than the grid; tiles are mosaicked. Integer
        rasters count every value above 0 (other than nodata) as cover; float rasters give
        the cover fraction of their pixels (0..1).
    grid
        Dataset with ``y``/``x`` pixel centres and a CRS: the cube.
    ecosystem
        The ecosystem the rasters map.

    Notes
    -----
    Each cell's fraction is the area-weighted mean of the source pixels it overlaps (GDAL's
    ``average`` warp), which is the covered share of the cell. The grid is done in bands of rows so
    that no more than [`MAX_SOURCE_PIXELS`][upscale.budgets.masks.MAX_SOURCE_PIXELS] source pixels
    are read at once; areas outside every source count as no cover.
    """
    sources = [_open_raster(Path(p)) for p in paths]
    try:
        src_crs = sources[0].crs
        for src in sources[1:]:
            if src.crs != src_crs:
                raise InvalidMaskError(
                    f"{src.name} is in {src.crs}, {sources[0].name} in {src_crs}; give one "
                    "ecosystem's raster tiles in one CRS (gdalwarp them first)"
                )
        dst_crs = grid_crs(grid)
        fraction = np.zeros((grid.sizes["y"], grid.sizes["x"]), dtype="float32")
        transform = grid.rio.transform(recalc=True)
        src_res = min(abs(sources[0].res[0]), abs(sources[0].res[1]))
        source_m2 = 0.0
        for rows in _row_bands(grid, src_crs, src_res):
            band_grid = grid.isel(y=rows)
            bounds = transform_bounds(
                dst_crs, src_crs, *grid_outline(band_grid).bounds, densify_pts=21
            )
            mosaic, mosaic_transform = rasterio.merge.merge(
                sources, bounds=_pad(bounds, src_res), nodata=0, indexes=[1]
            )
            cover = _cover_values(mosaic[0], sources[0])
            reproject(
                cover,
                fraction[rows],
                src_transform=mosaic_transform,
                src_crs=src_crs,
                src_nodata=None,
                dst_transform=transform * transform.translation(0, rows.start),
                dst_crs=dst_crs,
                dst_nodata=None,
                resampling=Resampling.average,
            )
            source_m2 += _covered_area(cover, mosaic_transform, src_crs, band_grid, dst_crs)
    finally:
        for src in sources:
            src.close()
    return EcosystemCover(ecosystem, np.clip(fraction, 0.0, 1.0), source_m2 / 1e6)


def _open_raster(path: Path) -> rasterio.DatasetReader:
    if not path.exists():
        raise InvalidMaskError(f"{path}: no such file; pass a wetland raster or vector file")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise InvalidMaskError(f"{path}: not a readable raster ({err})") from None
    if src.crs is None:
        src.close()
        raise InvalidMaskError(f"{path}: no CRS; assign one (gdal_edit.py -a_srs EPSG:4326 FILE)")
    if src.transform.e > 0 or src.transform.b or src.transform.d:
        src.close()
        raise InvalidMaskError(
            f"{path}: not a north-up raster (its rows run south to north, or it is "
            "rotated); make it north-up first (gdalwarp FILE north_up.tif)"
        )
    return src


def _row_bands(grid: xr.Dataset | xr.DataArray, src_crs: CRS, src_res: float) -> list[slice]:
    """Bands of grid rows whose source windows hold at most MAX_SOURCE_PIXELS pixels."""
    minx, miny, maxx, maxy = transform_bounds(
        grid_crs(grid), src_crs, *grid_outline(grid).bounds, densify_pts=21
    )
    total = (maxx - minx) / src_res * (maxy - miny) / src_res
    bands = max(1, int(np.ceil(total / MAX_SOURCE_PIXELS)))
    edges = np.linspace(0, grid.sizes["y"], bands + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _pad(bounds: tuple[float, float, float, float], by: float) -> tuple[float, ...]:
    minx, miny, maxx, maxy = bounds
    return (minx - by, miny - by, maxx + by, maxy + by)


def _cover_values(values: np.ndarray, src: rasterio.DatasetReader) -> np.ndarray:
    """Cover per source pixel, 0..1, from class or fraction values (nodata is no cover)."""
    if np.issubdtype(values.dtype, np.floating):
        values = np.nan_to_num(values, nan=0.0)
        if src.nodata is not None:
            values = np.where(values == src.nodata, 0.0, values)
        if values.min() < 0 or values.max() > 1:
            raise InvalidMaskError(
                f"{src.name}: float values from {values.min():g} to {values.max():g}; a float "
                "raster must give cover fractions in 0..1 (or give a 0/1 integer raster)"
            )
        return values.astype("float32")
    covered = values > 0
    if src.nodata is not None:
        covered &= values != src.nodata
    return covered.astype("float32")


def _covered_area(
    cover: np.ndarray,
    transform: rasterio.Affine,
    src_crs: CRS,
    band_grid: xr.Dataset | xr.DataArray,
    dst_crs: CRS,
) -> float:
    """Ellipsoidal area (m²) of covered source pixels whose centres lie in the band's cells."""
    rows, cols = np.nonzero(cover)
    if len(rows) == 0:
        return 0.0
    xs, ys = transform * (cols + 0.5, rows + 0.5)
    gx, gy = Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform(xs, ys)
    minx, miny, maxx, maxy = grid_outline(band_grid).bounds
    inside = (gx >= minx) & (gx < maxx) & (gy > miny) & (gy <= maxy)
    rows, cols, xs, ys = rows[inside], cols[inside], xs[inside], ys[inside]
    nominal = abs(transform.a * transform.e)
    if CRS.from_user_input(src_crs).is_geographic:  # every pixel of a row has one area
        centres = transform.f + transform.e * (np.arange(cover.shape[0]) + 0.5)
        lines = xr.Dataset(coords={"y": centres, "x": transform.c + transform.a * np.arange(2)})
        area = pixel_areas(lines.rio.write_crs(src_crs)).values[rows, 0]
    else:  # planar cell size over the projection's areal scale at each pixel
        lon, lat = Transformer.from_crs(src_crs, "EPSG:4326", always_xy=True).transform(xs, ys)
        area = nominal / Proj(src_crs).get_factors(lon, lat).areal_scale
    return float(np.sum(area * cover[rows, cols]))


SLIVER = 1e-6
"""Covers below this share of a pixel are rounding, not wetland: polygons whose edges run
along pixel edges (inventories traced from grids) leave ~1e-13 on the neighbours."""


def wetland_mask(
    covers: Mapping[str, EcosystemCover],
    grid: xr.Dataset | xr.DataArray,
    *,
    min_fraction: float = 0.0,
) -> xr.Dataset:
    """Assemble ecosystem covers into the mask of DESIGN.md.

    Parameters
    ----------
    covers
        Cover per ecosystem on the grid ([`vector_covers`][upscale.budgets.masks.vector_covers],
        [`raster_cover`][upscale.budgets.masks.raster_cover]).
    grid
        The cube whose ``y``/``x`` coordinates and CRS the mask takes.
    min_fraction
        Pixels with less total wetland cover are left out (0 keeps every covered pixel,
        so the mask's area equals the sources'; covers below
        [`SLIVER`][upscale.budgets.masks.SLIVER] are rounding and count as none).

    Returns
    -------
    xarray.Dataset
        ``wetland`` (0 none, else the code of the ecosystem with most cover),
        ``wetland_fraction`` (all wetland cover of the pixel, 0..1, used to weight every
        total), and ``<ecosystem>_fraction`` for each ecosystem.

    Notes
    -----
    A pixel with both mangrove and saltmarsh is mapped by the model of the one with more
    cover, over the area of both: fluxes of the minor ecosystem there are those of the major.
    """
    shape = (grid.sizes["y"], grid.sizes["x"])
    stacked = np.zeros((len(ECOSYSTEMS) + 1, *shape), dtype="float32")
    for code, name in ECOSYSTEMS.items():
        if name in covers:
            stacked[code] = np.where(covers[name].fraction < SLIVER, 0.0, covers[name].fraction)
    total = np.clip(stacked.sum(axis=0), 0.0, 1.0)
    keep = (total > 0) & (total >= min_fraction)
    wetland = np.where(keep, stacked.argmax(axis=0), 0).astype("uint8")
    coords = {"y": grid["y"].values, "x": grid["x"].values}
    variables = {
        WETLAND: xr.DataArray(
            wetland,
            dims=("y", "x"),
            attrs={
                "long_name": "wetland ecosystem with most cover",
                "flag_values": np.array(list(ECOSYSTEMS), dtype="uint8"),
                "flag_meanings": " ".join(ECOSYSTEMS.values()),
            },
        ),
        WETLAND_FRACTION: xr.DataArray(
            np.where(keep, total, 0.0).astype("float32"),
            dims=("y", "x"),
            attrs={"long_name": "wetland cover fraction of the pixel", "units": "1"},
        ),
    }
    for code, name in ECOSYSTEMS.items():
        variables[cover_name(name)] = xr.DataArray(
            np.where(keep, stacked[code], 0.0).astype("float32"),
            dims=("y", "x"),
            attrs={"long_name": f"{name} cover fraction of the pixel", "units": "1"},
        )
    mask = xr.Dataset(variables, coords=coords).rio.write_crs(grid.rio.crs)
    mask.attrs["min_fraction"] = min_fraction
    return mask


def mask_areas(mask: xr.Dataset, covers: Mapping[str, EcosystemCover]) -> pd.DataFrame:
    """Wetland area per ecosystem in the mask against its sources' own area.

    Returns
    -------
    pandas.DataFrame
        One row per ecosystem: ``source_km2``, ``mask_km2`` (pixel area x cover fraction,
        geodesic) and ``difference_pct``.
    """
    areas = pixel_areas(mask).values
    rows = []
    for name, cover in covers.items():
        mask_km2 = float(np.sum(areas * mask[cover_name(name)].values)) / 1e6
        rows.append(
            {
                "ecosystem": name,
                "source_km2": cover.source_km2,
                "mask_km2": mask_km2,
                "difference_pct": 100 * (mask_km2 / cover.source_km2 - 1)
                if cover.source_km2
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def is_raster(path: str | Path) -> bool:
    """Whether a wetland source file is read as a raster (by its suffix)."""
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def ecosystem_covers(
    grid: xr.Dataset | xr.DataArray,
    *,
    vectors: Sequence[str | Path] = (),
    sources: Mapping[str, Sequence[str | Path]] | None = None,
    column: str = "ecosystem",
    classes: Mapping[str, str] | None = None,
) -> dict[str, EcosystemCover]:
    """Cover of every ecosystem on the grid from all the given sources.

    Parameters
    ----------
    grid
        The cube (or any dataset on its grid).
    vectors
        Vector files whose polygons carry their ecosystem in ``column``.
    sources
        Ecosystem -> files (vector or raster) that map that ecosystem alone.
    column, classes
        See [`read_wetland_vectors`][upscale.budgets.masks.read_wetland_vectors].

    Raises
    ------
    InvalidMaskError
        When no source is given or a source is unusable.
    """
    sources = dict(sources or {})
    if not vectors and not any(sources.values()):
        raise InvalidMaskError(
            "no wetland source given; pass vector files with an ecosystem column "
            "(--vectors) or files per ecosystem (--mangrove, --saltmarsh)"
        )
    frames = [read_wetland_vectors(p, column=column, classes=classes) for p in vectors]
    rasters: dict[str, list[Path]] = {}
    for ecosystem, paths in sources.items():
        name = _ecosystem_name(ecosystem, Path("."))
        for path in map(Path, paths):
            if is_raster(path):
                rasters.setdefault(name, []).append(path)
            else:
                frames.append(read_wetland_vectors(path, ecosystem=name))
    covers: dict[str, EcosystemCover] = {}
    if frames:
        merged = pd.concat([f.to_crs(frames[0].crs) for f in frames], ignore_index=True)
        covers.update(vector_covers(gpd.GeoDataFrame(merged, crs=frames[0].crs), grid))
    for name, paths in rasters.items():
        if name in covers:  # their overlap is unknown, so neither sum nor union is right
            raise InvalidMaskError(
                f"{name} is given both as vectors and as rasters; give one kind of source "
                "per ecosystem (rasterise the vectors or vectorise the rasters)"
            )
        covers[name] = raster_cover(paths, grid, name)
    empty = [name for name, cover in covers.items() if not cover.fraction.any()]
    if empty:
        raise InvalidMaskError(
            f"the {' and '.join(empty)} sources cover none of the cube's grid "
            f"{tuple(round(v, 4) for v in grid_outline(grid).bounds)} ({grid_crs(grid)}); "
            "check their extent and CRS"
        )
    return covers
