"""Geometry of a map grid: cell edges, areas on the ground, and cover fractions of shapes.

Masks and budgets both need to know how much of each cell lies inside a polygon and how
many square metres a cell covers; this module answers both for any regular grid with a CRS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry

_GEOD = Geod(ellps="WGS84")

_EQUAL_AREA_METHODS = (
    "albers equal area",
    "lambert azimuthal equal area",
    "lambert cylindrical equal area",
    "sinusoidal",
    "equal earth",
)
"""Projection methods whose planar areas are areas on the ellipsoid."""


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of regularly spaced centres (ascending or descending)."""
    step = centres[1] - centres[0]
    return np.append(centres - step / 2, centres[-1] + step / 2)


def grid_crs(grid: xr.Dataset | xr.DataArray) -> CRS:
    """Return the grid's CRS as a `pyproj.CRS`."""
    return CRS.from_user_input(grid.rio.crs)


def grid_outline(grid: xr.Dataset | xr.DataArray) -> BaseGeometry:
    """Return the grid's outer cell edges as a box in the grid's CRS."""
    xs, ys = cell_edges(grid["x"].values), cell_edges(grid["y"].values)
    return shapely.box(xs.min(), ys.min(), xs.max(), ys.max())


def pixel_areas(grid: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Area of each pixel on the WGS84 ellipsoid, in m².

    Parameters
    ----------
    grid
        Dataset with regular ``y``/``x`` pixel-centre coordinates and a CRS.

    Notes
    -----
    On geographic grids every pixel of a row has the same area: one geodesic polygon per
    row, with the edges along parallels densified (a geodesic between two corners bows
    poleward). On equal-area projections (Albers, LAEA, sinusoidal...) the cell size is
    the area. On other projected grids the nominal cell size is not the area on the ground
    (Web Mercator cells at 25 N are about 20 % smaller than they look), so the cell
    corners are moved to a Lambert azimuthal equal-area projection centred on the grid,
    where planar areas are ellipsoidal areas.
    """
    crs = grid_crs(grid)
    if crs.is_geographic:
        dx = abs(float(grid["x"][1] - grid["x"][0]))
        dy = abs(float(grid["y"][1] - grid["y"][0]))
        along = np.linspace(0.0, dx, 33)
        lons = np.concatenate([along, along[::-1]])
        rows = []
        for lat in grid["y"].values:
            lats = np.repeat([lat - dy / 2, lat + dy / 2], len(along))
            rows.append(abs(_GEOD.polygon_area_perimeter(lons, lats)[0]))
        values = np.asarray(rows)[:, None] * np.ones(grid.sizes["x"])
    elif _is_equal_area(crs):
        dx = abs(float(grid["x"][1] - grid["x"][0]))
        dy = abs(float(grid["y"][1] - grid["y"][0]))
        values = np.full((grid.sizes["y"], grid.sizes["x"]), dx * dy)
    else:
        values = _equal_area_cells(grid, crs)
    area = xr.DataArray(values, dims=("y", "x"), coords={"y": grid["y"], "x": grid["x"]})
    area.attrs = {"units": "m2", "long_name": "pixel area"}
    return area


def _is_equal_area(crs: CRS) -> bool:
    """Whether planar areas of the CRS are areas on the WGS84 ellipsoid.

    Only equal-area projections of WGS84 or GRS80 qualify: MODIS sinusoidal, for one, is
    equal-area on a sphere, and its cells cover up to 0.5 % more or less ground.
    """
    operation = crs.coordinate_operation
    method = operation.method_name.lower() if operation is not None else ""
    ellipsoid = crs.ellipsoid
    wgs84_like = (
        ellipsoid is not None
        and abs(ellipsoid.semi_major_metre - 6378137.0) < 1e-3
        and abs(ellipsoid.inverse_flattening - 298.257222) < 1e-4
    )
    return wgs84_like and any(name in method for name in _EQUAL_AREA_METHODS)


def _equal_area_cells(grid: xr.Dataset | xr.DataArray, crs: CRS) -> np.ndarray:
    """Ellipsoidal areas of projected cells, from their corners in an equal-area projection."""
    corner_x, corner_y = np.meshgrid(cell_edges(grid["x"].values), cell_edges(grid["y"].values))
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(corner_x, corner_y)
    laea = CRS.from_proj4(
        f"+proj=laea +lat_0={lat.mean()} +lon_0={lon.mean()} +ellps=WGS84 +units=m"
    )
    ex, ey = Transformer.from_crs("EPSG:4326", laea, always_xy=True).transform(lon, lat)
    # Shoelace formula over the four corners of every cell at once.
    ring = [
        (slice(None, -1), slice(None, -1)),
        (slice(None, -1), slice(1, None)),
        (slice(1, None), slice(1, None)),
        (slice(1, None), slice(None, -1)),
    ]
    twice = sum(
        ex[a] * ey[b] - ex[b] * ey[a] for a, b in zip(ring, ring[1:] + ring[:1], strict=True)
    )
    return np.abs(twice) / 2


def cover_fraction(geometry: BaseGeometry, grid: xr.Dataset | xr.DataArray) -> np.ndarray:
    """Fraction of each cell's area covered by a shape, ``(y, x)`` in 0..1.

    Parameters
    ----------
    geometry
        Polygon or multipolygon in the grid's CRS; overlapping parts count once.
    grid
        Dataset with regular ``y``/``x`` pixel-centre coordinates.

    Notes
    -----
    Only cells within the shape's bounding box are tested, all at once with shapely's
    vectorised predicates: cells inside count 1, cells on the boundary the exact share of
    their area (planar, in the grid's CRS: within one cell the scale of any common
    projection is constant to far better than a percent).
    """
    x_edges, y_edges = cell_edges(grid["x"].values), cell_edges(grid["y"].values)
    fraction = np.zeros((len(y_edges) - 1, len(x_edges) - 1))
    if geometry.is_empty:
        return fraction
    minx, miny, maxx, maxy = geometry.bounds
    cols = _overlapping(x_edges, minx, maxx)
    rows = _overlapping(y_edges, miny, maxy)
    if cols.stop <= cols.start or rows.stop <= rows.start:
        return fraction
    left, right = np.minimum(x_edges[:-1], x_edges[1:]), np.maximum(x_edges[:-1], x_edges[1:])
    low, high = np.minimum(y_edges[:-1], y_edges[1:]), np.maximum(y_edges[:-1], y_edges[1:])
    x0, y0 = np.meshgrid(left[cols], low[rows])
    x1, y1 = np.meshgrid(right[cols], high[rows])
    cells = shapely.box(x0, y0, x1, y1)
    shapely.prepare(geometry)
    window = np.zeros(cells.shape)
    inside = shapely.contains(geometry, cells)
    window[inside] = 1.0
    edge = ~inside & shapely.intersects(geometry, cells)
    window[edge] = shapely.area(shapely.intersection(cells[edge], geometry)) / shapely.area(
        cells[edge]
    )
    fraction[rows, cols] = np.clip(window, 0.0, 1.0)
    return fraction


def _overlapping(edges: np.ndarray, low: float, high: float) -> slice:
    """Index range of the cells (given by edges, either order) that overlap ``[low, high]``."""
    first, last = np.minimum(edges[:-1], edges[1:]), np.maximum(edges[:-1], edges[1:])
    hits = np.flatnonzero((last > low) & (first < high))
    return slice(hits.min(), hits.max() + 1) if len(hits) else slice(0, 0)


@dataclass(frozen=True)
class TargetGrid:
    """A regular north-up grid to build a cube on: CRS, outer bounds and square pixel size.

    Parameters
    ----------
    crs
        Any CRS pyproj reads (``"EPSG:4326"``, ``"EPSG:32617"``, a WKT or PROJ string).
    bounds
        ``(west, south, east, north)`` in the CRS's units. The grid starts at the west and
        north edges; east and south move out to whole pixels.
    resolution
        Pixel size in the CRS's units (degrees or metres).
    """

    crs: str
    bounds: tuple[float, float, float, float]
    resolution: float

    def __post_init__(self) -> None:
        west, south, east, north = self.bounds
        if not (west < east and south < north) or self.resolution <= 0:
            raise ValueError(
                f"grid bounds {self.bounds} must be west < east, south < north, and the "
                f"resolution {self.resolution} positive"
            )
        # The west and north edges are kept; the grid grows east and south to whole pixels.
        width = np.ceil(round((east - west) / self.resolution, 6))
        height = np.ceil(round((north - south) / self.resolution, 6))
        snapped = (west, north - height * self.resolution, west + width * self.resolution, north)
        object.__setattr__(self, "bounds", tuple(float(v) for v in snapped))
        object.__setattr__(self, "crs", CRS.from_user_input(self.crs).to_string())

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        west, south, east, north = self.bounds
        return (
            int(round((north - south) / self.resolution)),
            int(round((east - west) / self.resolution)),
        )

    @property
    def transform(self) -> Affine:
        """Affine transform of the pixel corners (north-up)."""
        west, _, _, north = self.bounds
        return Affine(self.resolution, 0.0, west, 0.0, -self.resolution, north)

    def template(self) -> xr.Dataset:
        """Return an empty dataset with the grid's ``y`` (descending), ``x`` centres and CRS."""
        height, width = self.shape
        west, _, _, north = self.bounds
        x = west + self.resolution * (np.arange(width) + 0.5)
        y = north - self.resolution * (np.arange(height) + 0.5)
        return xr.Dataset(coords={"y": y, "x": x}).rio.write_crs(self.crs)
