import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import xarray as xr
from pyproj import Geod, Transformer
from rasterio.transform import from_origin

from tests.conftest import shared_file
from upscale.budgets.masks import (
    ecosystem_covers,
    mask_areas,
    raster_cover,
    read_wetland_vectors,
    wetland_mask,
)
from upscale.errors import InvalidMaskError
from upscale.grid import pixel_areas

ACRE_KM2 = 0.0040468564224


def grid(x0, x1, y0, y1, step, crs="EPSG:4326"):
    x = np.arange(x0, x1 - step / 2, step) + step / 2
    y = np.arange(y1, y0 + step / 2, -step) - step / 2
    return xr.Dataset(coords={"x": x, "y": y}).rio.write_crs(crs)


def utm_grid_around(west, south, east, north, step=1000.0, crs="EPSG:32617"):
    xs, ys = Transformer.from_crs(4326, crs, always_xy=True).transform(
        [west, east, west, east], [south, south, north, north]
    )
    x0, y0 = np.floor(min(xs) / step) * step - step, np.floor(min(ys) / step) * step - step
    x1, y1 = np.ceil(max(xs) / step) * step + step, np.ceil(max(ys) / step) * step + step
    return grid(x0, x1, y0, y1, step, crs)


def gmw_area_km2(path):
    """The tile's own mangrove area: geodesic area of each row's pixels x their count."""
    with rasterio.open(path) as src:
        counts = (src.read(1) == 1).sum(axis=1)
        t = src.transform
    geod = Geod(ellps="WGS84")
    tops = t.f + t.e * np.arange(len(counts))
    along = np.linspace(0, t.a, 9)
    rows = [
        abs(
            geod.polygon_area_perimeter(
                np.r_[along, along[::-1]], np.r_[[top] * 9, [top + t.e] * 9]
            )[0]
        )
        for top in tops
    ]
    return float(np.dot(counts, rows)) / 1e6


@pytest.mark.shared_data
@pytest.mark.parametrize("on", ["geographic", "utm"])
def test_gmw_tile_aggregates_to_its_own_area(on):
    path = shared_file("GMW_N26W082_2020_v3.tif")
    target = (
        grid(-82, -81, 25, 26, 0.01) if on == "geographic" else utm_grid_around(-82, 25, -81, 26)
    )
    cover = raster_cover([path], target, "mangrove")
    mask = wetland_mask({"mangrove": cover}, target)
    mask_km2 = float((pixel_areas(mask) * mask["wetland_fraction"]).sum()) / 1e6
    source_km2 = gmw_area_km2(path)
    assert source_km2 == pytest.approx(955, rel=0.01)  # as the data README says
    assert mask_km2 == pytest.approx(source_km2, rel=0.02)
    assert cover.source_km2 == pytest.approx(source_km2, rel=1e-3)
    fraction = mask["wetland_fraction"].values
    assert 0 < fraction[fraction > 0].min() < 0.05 and fraction.max() == pytest.approx(1.0)
    assert (fraction[fraction > 0] < 0.9).mean() > 0.5  # most mangrove pixels are mixed


@pytest.mark.shared_data
def test_gmw_tower_pixel_is_mangrove():
    path = shared_file("GMW_N26W082_2020_v3.tif")
    target = grid(-82, -81, 25, 26, 0.01)
    mask = wetland_mask({"mangrove": raster_cover([path], target, "mangrove")}, target)
    skr = mask.sel(x=-81.0776, y=25.3629, method="nearest")  # US-Skr, a mangrove tower
    assert int(skr["wetland"]) == 1 and float(skr["wetland_fraction"]) > 0.5


@pytest.mark.shared_data
@pytest.mark.parametrize("on", ["geographic", "albers"])
def test_nwi_polygons_keep_their_acres(on):
    path = shared_file("DC_Wetlands.geoparquet")
    polygons = gpd.read_parquet(path)
    if on == "albers":  # the file's own projected CRS, 100 m cells
        west, south, east, north = polygons.total_bounds
        target = grid(west - 500, east + 500, south - 500, north + 500, 100.0, polygons.crs)
    else:
        west, south, east, north = polygons.to_crs(4326).total_bounds
        target = grid(west - 0.01, east + 0.01, south - 0.01, north + 0.01, 0.002)
    covers = ecosystem_covers(target, sources={"saltmarsh": [path]})
    mask = wetland_mask(covers, target)
    areas = mask_areas(mask, covers).set_index("ecosystem")
    acres_km2 = polygons["ACRES"].sum() * ACRE_KM2
    assert areas.loc["saltmarsh", "mask_km2"] == pytest.approx(acres_km2, rel=0.02)
    assert areas.loc["saltmarsh", "source_km2"] == pytest.approx(acres_km2, rel=0.005)
    assert set(np.unique(mask["wetland"])) == {0, 2}


@pytest.mark.shared_data
def test_nwi_classes_map_to_ecosystems():
    path = shared_file("DC_Wetlands.geoparquet")
    polygons = gpd.read_parquet(path)
    classes = {"Freshwater Emergent Wetland": "saltmarsh", "Freshwater Forested/Shrub Wetland": "1"}
    labelled = read_wetland_vectors(path, column="WETLAND_TY", classes=classes)
    assert len(labelled) == 177 + 493  # the rest of the file's classes are left out
    assert set(labelled["ecosystem"]) == {"mangrove", "saltmarsh"}
    west, south, east, north = polygons.total_bounds
    target = grid(west - 500, east + 500, south - 500, north + 500, 250.0, polygons.crs)
    covers = ecosystem_covers(target, vectors=[path], column="WETLAND_TY", classes=classes)
    mask = wetland_mask(covers, target)
    expected = polygons.groupby("WETLAND_TY")["ACRES"].sum() * ACRE_KM2
    areas = mask_areas(mask, covers).set_index("ecosystem")["mask_km2"]
    assert areas["saltmarsh"] == pytest.approx(expected["Freshwater Emergent Wetland"], rel=0.02)
    assert areas["mangrove"] == pytest.approx(
        expected["Freshwater Forested/Shrub Wetland"], rel=0.02
    )


def test_mixed_pixels_take_the_major_ecosystem_over_all_cover(tmp_path):
    target = grid(0, 3, -1, 1, 1.0)
    # In the top row, mangrove covers cells 0 (all) and 1 (30 %); saltmarsh 1 (60 %), 2 (10 %).
    polygons = gpd.GeoDataFrame(
        {"ecosystem": ["mangrove", "saltmarsh", "saltmarsh"]},
        geometry=[
            shapely.box(0, 0, 1.3, 1),
            shapely.box(1.4, 0, 2.0, 1),
            shapely.box(2.0, 0, 2.1, 1),
        ],
        crs=4326,
    )
    polygons.to_file(tmp_path / "w.gpkg")
    mask = wetland_mask(ecosystem_covers(target, vectors=[tmp_path / "w.gpkg"]), target)
    np.testing.assert_array_equal(mask["wetland"].values[0], [1, 2, 2])
    np.testing.assert_allclose(mask["wetland_fraction"].values[0], [1.0, 0.9, 0.1], atol=1e-6)
    np.testing.assert_allclose(mask["mangrove_fraction"].values[0], [1.0, 0.3, 0.0], atol=1e-6)
    thresholded = wetland_mask(
        ecosystem_covers(target, vectors=[tmp_path / "w.gpkg"]), target, min_fraction=0.5
    )
    np.testing.assert_array_equal(thresholded["wetland"].values[0], [1, 2, 0])


def test_float_rasters_are_cover_fractions_and_tiles_mosaic(tmp_path):
    """Two tiles in a projected CRS, a cell straddling both: its cover is the mean of both parts."""
    target = grid(0, 4000, 0, 2000, 1000.0, "EPSG:32617")
    for name, x0, width, value in (("west.tif", 0, 15, 0.2), ("east.tif", 1500, 25, 0.6)):
        data = np.full((20, width), value, dtype="float32")
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": 20,
            "count": 1,
            "dtype": "float32",
            "crs": "EPSG:32617",
            "transform": from_origin(x0, 2000, 100, 100),
        }
        with rasterio.open(tmp_path / name, "w", **profile) as dst:
            dst.write(data, 1)
    cover = raster_cover([tmp_path / "west.tif", tmp_path / "east.tif"], target, "mangrove")
    # The west tile spans x 0..1500, the east one 1500..4000.
    np.testing.assert_allclose(cover.fraction[0], [0.2, 0.4, 0.6, 0.6], atol=1e-6)
    assert cover.source_km2 == pytest.approx((15 * 0.2 + 25 * 0.6) * 20 * 0.01, rel=0.01)


def test_raster_errors(tmp_path):
    target = grid(0, 2, 0, 2, 1.0)
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 4,
        "count": 1,
        "dtype": "float32",
        "transform": from_origin(0, 2, 0.5, 0.5),
    }
    with rasterio.open(tmp_path / "nocrs.tif", "w", **profile) as dst:
        dst.write(np.ones((4, 4), "float32"), 1)
    with pytest.raises(InvalidMaskError, match="nocrs.tif: no CRS"):
        raster_cover([tmp_path / "nocrs.tif"], target, "mangrove")
    with rasterio.open(tmp_path / "pct.tif", "w", crs="EPSG:4326", **profile) as dst:
        dst.write(np.full((4, 4), 80.0, "float32"), 1)
    with pytest.raises(
        InvalidMaskError, match="pct.tif: float values from 0 to 80; a float raster must"
    ):
        raster_cover([tmp_path / "pct.tif"], target, "mangrove")
    with pytest.raises(InvalidMaskError, match="missing.tif: no such file"):
        raster_cover([tmp_path / "missing.tif"], target, "mangrove")


def test_vector_errors(tmp_path):
    target = grid(0, 2, 0, 2, 1.0)
    frame = gpd.GeoDataFrame({"kind": ["mud"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    frame.to_file(tmp_path / "k.geojson")
    with pytest.raises(
        InvalidMaskError, match="k.geojson: no 'ecosystem' column .* it has \\['kind'\\]"
    ):
        ecosystem_covers(target, vectors=[tmp_path / "k.geojson"])
    with pytest.raises(InvalidMaskError, match="column 'kind' holds 'mud', not one of"):
        ecosystem_covers(target, vectors=[tmp_path / "k.geojson"], column="kind")
    with pytest.raises(InvalidMaskError, match="no polygon maps to an ecosystem"):
        ecosystem_covers(
            target, vectors=[tmp_path / "k.geojson"], column="kind", classes={"sand": "mangrove"}
        )
    with pytest.raises(InvalidMaskError, match="no wetland source given"):
        ecosystem_covers(target)
    lines = gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (1, 1)])], crs=4326)
    lines.to_file(tmp_path / "lines.geojson")
    with pytest.raises(InvalidMaskError, match="lines.geojson: wetlands must be polygons"):
        ecosystem_covers(target, sources={"mangrove": [tmp_path / "lines.geojson"]})


def test_invalid_polygons_are_repaired_and_overlaps_count_once(tmp_path):
    target = grid(0, 2, 0, 2, 1.0)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    frame = gpd.GeoDataFrame(geometry=[bowtie, shapely.box(0, 0, 1, 1)], crs=4326)
    frame.to_file(tmp_path / "b.geojson")
    cover = ecosystem_covers(target, sources={"mangrove": [tmp_path / "b.geojson"]})["mangrove"]
    assert cover.fraction[1, 0] == pytest.approx(1.0)  # the box, bowtie inside it counted once


def test_sources_off_the_grid_and_south_up_rasters_are_refused(tmp_path):
    target = grid(0, 2, 0, 2, 1.0)
    far = gpd.GeoDataFrame(geometry=[shapely.box(50, 50, 51, 51)], crs=4326)
    far.to_file(tmp_path / "far.geojson")
    with pytest.raises(
        InvalidMaskError, match="the mangrove sources cover none of the cube's grid"
    ):
        ecosystem_covers(target, sources={"mangrove": [tmp_path / "far.geojson"]})
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 4,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": rasterio.Affine(0.5, 0, 0, 0, 0.5, 0),  # south-up
    }
    with rasterio.open(tmp_path / "south_up.tif", "w", **profile) as dst:
        dst.write(np.ones((4, 4), "uint8"), 1)
    with pytest.raises(InvalidMaskError, match="south_up.tif: not a north-up raster"):
        raster_cover([tmp_path / "south_up.tif"], target, "mangrove")


def test_rows_without_geometry_are_named(tmp_path):
    frame = gpd.GeoDataFrame(
        {"ecosystem": ["mangrove", "saltmarsh"]}, geometry=[shapely.box(0, 0, 1, 1), None], crs=4326
    )
    frame.to_file(tmp_path / "holes.gpkg")
    with pytest.raises(InvalidMaskError, match="holes.gpkg: 1 row\\(s\\) have no geometry"):
        read_wetland_vectors(tmp_path / "holes.gpkg")
