import numpy as np
import pytest
import shapely
import xarray as xr
from pyproj import Geod, Transformer

from upscale.grid import cover_fraction, pixel_areas


def lonlat_grid(x0, x1, y0, y1, step, crs="EPSG:4326"):
    x = np.arange(x0, x1, step) + step / 2
    y = np.arange(y1, y0, -step) - step / 2
    return xr.Dataset(coords={"x": x, "y": y}).rio.write_crs(crs)


def test_geodesic_areas_add_up_to_the_box():
    grid = lonlat_grid(0, 10, 20, 30, 1.0)
    # The lat/lon box, its edges along parallels and meridians sampled every 0.01 degrees.
    edge = np.linspace(0, 10, 1001)
    lons = np.concatenate([edge, np.full(1001, 10.0), edge[::-1], np.zeros(1001)])
    lats = np.concatenate([np.full(1001, 20.0), 20 + edge, np.full(1001, 30.0), 30 - edge])
    box_area = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])
    assert float(pixel_areas(grid).sum()) == pytest.approx(box_area, rel=1e-6)
    assert pixel_areas(grid).dims == ("y", "x")


def test_projected_pixel_areas_are_ellipsoidal():
    """Web Mercator cells at 25 N: the densified geodesic area, not the nominal 1.5 km x 1.5 km."""
    to_merc = Transformer.from_crs(4326, 3857, always_xy=True)
    x0, y0 = to_merc.transform(-81.5, 25.0)
    x, y = x0 + 1500 * np.arange(6) + 750, y0 + 1500 * np.arange(5)[::-1] + 750
    grid = xr.Dataset(coords={"x": x, "y": y}).rio.write_crs("EPSG:3857")
    side = np.linspace(-750, 750, 200)
    ring_x = np.concatenate([side, np.full(200, 750), side[::-1], np.full(200, -750)]) + x[2]
    ring_y = np.concatenate([np.full(200, 750), side[::-1], np.full(200, -750), side]) + y[3]
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(ring_x, ring_y)
    geodesic = abs(Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)[0])
    assert float(pixel_areas(grid)[3, 2]) == pytest.approx(geodesic, rel=1e-5)
    assert geodesic < 0.85 * 1500**2


@pytest.mark.parametrize("crs", ["EPSG:5070", "EPSG:6933", "+proj=sinu +datum=WGS84"])
def test_equal_area_grids_take_the_cell_size(crs):
    grid = xr.Dataset(coords={"x": [500.0, 1500.0], "y": [1500.0, 500.0]}).rio.write_crs(crs)
    np.testing.assert_array_equal(pixel_areas(grid).values, 1e6)


def test_modis_sinusoidal_cells_are_measured_on_the_ellipsoid():
    """MODIS' sinusoidal is equal-area on a sphere: at the equator a cell covers 0.45 % less."""
    modis = "+proj=sinu +R=6371007.181 +units=m"
    grid = xr.Dataset(coords={"x": [250.0, 750.0], "y": [750.0, 250.0]}).rio.write_crs(modis)
    ratio = pixel_areas(grid).values / 500.0**2
    np.testing.assert_allclose(ratio, 0.9955, atol=2e-4)


def test_cover_fraction_is_the_share_of_each_cell():
    grid = lonlat_grid(0, 4, 0, 3, 1.0)  # rows north to south: y = 2.5, 1.5, 0.5
    shape = shapely.box(0.5, 0.0, 2.0, 1.25)
    expected = np.zeros((3, 4))
    expected[2, :2] = [0.5, 1.0]  # bottom row: half of the first cell, all of the second
    expected[1, :2] = [0.125, 0.25]  # a quarter of the second row's height
    np.testing.assert_allclose(cover_fraction(shape, grid), expected)


def test_cover_fraction_adds_up_to_the_shape_area():
    grid = lonlat_grid(-5, 5, -5, 5, 0.25)
    shape = shapely.Point(0.1, -0.3).buffer(3.3)
    total = cover_fraction(shape, grid).sum() * 0.25**2
    assert total == pytest.approx(shape.area, rel=1e-9)


def test_cover_fraction_of_shapes_off_the_grid_is_zero():
    grid = lonlat_grid(0, 4, 0, 3, 1.0)
    assert not cover_fraction(shapely.box(10, 10, 11, 11), grid).any()
    assert not cover_fraction(shapely.Polygon(), grid).any()
