import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from pyproj import Geod

from upscale.annual import annual_totals
from upscale.errors import RegionError
from upscale.regions import budget, pixel_areas, read_regions, region_masks


def synthetic_maps(crs, x, y, seed=0):
    rng = np.random.default_rng(seed)
    times = pd.date_range("2012-01", periods=24, freq="MS")
    shape = (len(times), len(y), len(x))
    wetland = rng.integers(0, 3, size=shape[1:]).astype("uint8")
    fraction = np.where(wetland > 0, rng.uniform(0.2, 1.0, size=shape[1:]), 0.0)
    gpp = np.where(wetland > 0, rng.uniform(2, 8, size=shape), np.nan)
    re = np.where(wetland > 0, rng.uniform(1, 5, size=shape), np.nan)
    maps = xr.Dataset(
        {
            "GPP": (("time", "y", "x"), gpp.astype("float32")),
            "RE": (("time", "y", "x"), re.astype("float32")),
            "NEE": (("time", "y", "x"), (re - gpp).astype("float32")),
            "GPP_std": (("time", "y", "x"), (0.1 * gpp).astype("float32")),
            "wetland": (("y", "x"), wetland),
            "wetland_fraction": (("y", "x"), fraction.astype("float32")),
        },
        coords={"time": times, "y": y, "x": x},
    )
    return maps.rio.write_crs(crs)


def independent_total(maps, region_geometry, areas):
    """Sum of annual flux x area x fraction over pixel centres inside the region."""
    xx, yy = np.meshgrid(maps["x"].values, maps["y"].values)
    inside = shapely.contains_xy(region_geometry, xx, yy) & (maps["wetland"].values > 0)
    totals = annual_totals(maps)
    weight = areas * maps["wetland_fraction"].values * inside
    return {
        int(year): float(np.nansum(totals["GPP"].sel(year=year).values * weight)) / 1e9
        for year in totals["year"].values
    }, weight.sum() / 1e6


@pytest.mark.parametrize("grid", ["geographic", "projected"])
def test_totals_equal_independent_integration(grid):
    if grid == "geographic":
        x, y = np.arange(-81.9, -81.0, 0.05) + 0.025, np.arange(26.0, 25.2, -0.05) - 0.025
        crs, region = "EPSG:4326", shapely.box(-81.7, 25.4, -81.2, 25.9)
        lon, lat = np.meshgrid(x, y)
        geod = Geod(ellps="WGS84")
        areas = np.vectorize(
            lambda lo, la: abs(
                geod.polygon_area_perimeter(
                    [lo - 0.025, lo + 0.025, lo + 0.025, lo - 0.025],
                    [la - 0.025, la - 0.025, la + 0.025, la + 0.025],
                )[0]
            )
        )(lon, lat)
    else:
        x, y = np.arange(0, 20_000, 1000.0) + 500, np.arange(15_000, 0, -1000.0) - 500
        crs, region = "EPSG:5070", shapely.box(3000, 2000, 14000, 11000)
        areas = np.full((len(y), len(x)), 1e6)
    maps = synthetic_maps(crs, x, y)
    regions = gpd.GeoDataFrame({"name": ["r"]}, geometry=[region], crs=crs)
    table = budget(maps, regions)
    expected, area_km2 = independent_total(maps, region, areas)
    assert list(table["year"]) == [2012, 2013]
    for row in table.itertuples():
        assert row.GPP_total == pytest.approx(expected[row.year], rel=1e-3)
        assert row.area_km2 == pytest.approx(area_km2, rel=1e-6)
        assert row.GPP_mean == pytest.approx(row.GPP_total * 1e9 / (row.area_km2 * 1e6))
        assert row.sink_total == pytest.approx(-row.NEE_total)
        assert row.mangrove_area_km2 + row.saltmarsh_area_km2 == pytest.approx(row.area_km2)
        assert row.GPP_total_std == pytest.approx(0.1 * row.GPP_total, rel=1e-5)
        assert row.GPP_mean_std == pytest.approx(0.1 * row.GPP_mean, rel=1e-5)
    assert "RE_total_std" not in table  # no spread in these maps


def test_geodesic_areas_add_up_to_the_box():
    x, y = np.arange(10) + 0.5, np.arange(30, 20, -1) - 0.5
    grid = xr.Dataset(coords={"x": x, "y": y}).rio.write_crs("EPSG:4326")
    # The lat/lon box, its edges along parallels and meridians sampled every 0.01 degrees.
    edge = np.linspace(0, 10, 1001)
    lons = np.concatenate([edge, np.full(1001, 10.0), edge[::-1], np.zeros(1001)])
    lats = np.concatenate([np.full(1001, 20.0), 20 + edge, np.full(1001, 30.0), 30 - edge])
    box_area = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])
    assert float(pixel_areas(grid).sum()) == pytest.approx(box_area, rel=1e-6)
    assert pixel_areas(grid).dims == ("y", "x")


def test_regions_in_another_crs_are_reprojected():
    x, y = np.arange(-81.9, -81.0, 0.05) + 0.025, np.arange(26.0, 25.2, -0.05) - 0.025
    grid = xr.Dataset(coords={"x": x, "y": y}).rio.write_crs("EPSG:4326")
    box = gpd.GeoDataFrame(
        {"name": ["b"]}, geometry=[shapely.box(-81.7, 25.4, -81.2, 25.9)], crs=4326
    )
    in_utm = region_masks(box.to_crs("EPSG:32617"), grid)
    in_geo = region_masks(box, grid)
    assert abs(int(in_utm.sum()) - int(in_geo.sum())) <= len(x) // 4


def test_read_regions_errors(tmp_path):
    unnamed = gpd.GeoDataFrame({"label": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    unnamed.to_file(tmp_path / "unnamed.geojson")
    with pytest.raises(RegionError, match="unnamed.geojson: no 'name' column"):
        read_regions(tmp_path / "unnamed.geojson")
    twice = gpd.GeoDataFrame({"name": ["a", "a"]}, geometry=[shapely.box(0, 0, 1, 1)] * 2, crs=4326)
    twice.to_file(tmp_path / "twice.geojson")
    with pytest.raises(RegionError, match=r"duplicated region names \['a'\]"):
        read_regions(tmp_path / "twice.geojson")
    (tmp_path / "junk.geojson").write_text("not json")
    with pytest.raises(RegionError, match="not a readable vector file"):
        read_regions(tmp_path / "junk.geojson")


def test_projected_pixel_areas_are_ellipsoidal():
    """Web Mercator cells at 25 N: the densified geodesic area, not the nominal 1.5 km x 1.5 km."""
    from pyproj import Transformer

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


def test_region_without_pixels_is_an_error():
    x, y = np.arange(-81.9, -81.0, 0.05) + 0.025, np.arange(26.0, 25.2, -0.05) - 0.025
    maps = synthetic_maps("EPSG:4326", x, y)
    far = gpd.GeoDataFrame({"name": ["far away"]}, geometry=[shapely.box(0, 10, 1, 11)], crs=4326)
    with pytest.raises(RegionError, match="far away contain no pixel centre"):
        budget(maps, far)
