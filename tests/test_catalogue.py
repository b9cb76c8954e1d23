import json

import geopandas as gpd
import pytest
import shapely

from upscale.budgets.catalogue import catalogue_regions, catalogue_table, resolve_regions
from upscale.errors import InvalidRegionsError


@pytest.fixture
def catalogue(tmp_path):
    folder = tmp_path / "regions"
    folder.mkdir()
    estuary = gpd.GeoDataFrame(
        {"name": ["Estuary A", "Estuary B"], "note": ["x", "y"]},
        geometry=[shapely.box(-81.8, 25.3, -81.5, 25.6), shapely.box(-81.5, 25.3, -81.2, 25.6)],
        crs=4326,
    )
    estuary.to_file(folder / "estuaries.geojson")
    albers = gpd.GeoDataFrame(
        {"name": ["Bay"]}, geometry=[shapely.box(-81.4, 25.2, -81.1, 25.5)], crs=4326
    ).to_crs("EPSG:5070")
    albers.to_file(folder / "bay.gpkg")
    (folder / "README.md").write_text("not a region file")
    return folder


def test_catalogue_lists_every_file_in_lonlat(catalogue):
    regions = catalogue_regions(catalogue)
    assert list(regions["name"]) == ["Bay", "Estuary A", "Estuary B"]
    assert regions.crs.to_epsg() == 4326
    table = catalogue_table(regions).set_index("name")
    assert table.loc["Bay", "file"] == "bay.gpkg"
    assert table.loc["Bay", "west"] == pytest.approx(-81.4, abs=1e-6)
    # A 0.3 x 0.3 degree box at 25.45 N: about 33.4 km x 30.1 km.
    assert table.loc["Estuary A", "area_km2"] == pytest.approx(1006, rel=0.01)
    assert table.loc["Bay", "area_km2"] == pytest.approx(1007, rel=0.01)


def test_names_must_be_unique_across_files(catalogue):
    clash = gpd.GeoDataFrame({"name": ["Bay"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    clash.to_file(catalogue / "more.geojson")
    with pytest.raises(
        InvalidRegionsError, match="unique across files: 'Bay' in bay.gpkg, more.geojson"
    ):
        catalogue_regions(catalogue)


def test_missing_catalogue(tmp_path):
    with pytest.raises(InvalidRegionsError, match="no region catalogue folder; create it"):
        catalogue_regions(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRegionsError, match="empty: holds no region file"):
        catalogue_regions(tmp_path / "empty")


def test_every_kind_of_spec_resolves(catalogue, tmp_path):
    utm = gpd.GeoDataFrame(
        {"name": ["File region"]}, geometry=[shapely.box(-81.3, 25.6, -81.2, 25.7)], crs=4326
    ).to_crs("EPSG:32617")
    utm.to_file(tmp_path / "mine.gpkg")
    feature = {
        "type": "Feature",
        "properties": {"name": "Creek"},
        "geometry": shapely.geometry.mapping(shapely.box(-81.6, 25.7, -81.5, 25.8)),
    }
    specs = [
        "Estuary B",
        tmp_path / "mine.gpkg",
        "-81.7, 25.2, -81.6, 25.3",
        "POLYGON ((-81.2 25.2, -81.1 25.2, -81.1 25.3, -81.2 25.2))",
        json.dumps(feature),
        json.dumps(shapely.geometry.mapping(shapely.box(-81.9, 25.8, -81.8, 25.9))),
    ]
    regions = resolve_regions(specs, catalogue=catalogue)
    assert list(regions["name"]) == [
        "Estuary B",
        "File region",
        "bbox -81.7, 25.2, -81.6, 25.3",
        "polygon 4",
        "Creek",
        "polygon 6",
    ]
    assert regions.crs.to_epsg() == 4326
    areas = regions.to_crs("EPSG:6933").area.to_numpy() / 1e6  # equal-area: km2
    assert areas[1] == pytest.approx(areas[2], rel=0.02)  # two 0.1 degree boxes
    assert areas[3] == pytest.approx(areas[2] / 2, rel=0.02)  # a half-box triangle


def test_bbox_and_wkt_in_another_crs():
    box = shapely.box(-81.4, 25.2, -81.1, 25.5)
    utm = gpd.GeoSeries([box], crs=4326).to_crs("EPSG:32617").iloc[0]
    west, south, east, north = utm.bounds
    regions = resolve_regions([f"{west},{south},{east},{north}", utm.wkt], crs="EPSG:32617")
    # Straight in UTM, the edges bow slightly in lon/lat: 0.03 % of the area.
    assert regions.geometry.iloc[1].symmetric_difference(box).area < 1e-3 * box.area
    assert box.difference(regions.geometry.iloc[0]).area < 1e-9 * box.area  # the bbox holds it


def test_spec_errors(catalogue):
    with pytest.raises(InvalidRegionsError, match="'Estuary' is not a region .* did you mean"):
        resolve_regions("Estuary", catalogue=catalogue)
    with pytest.raises(InvalidRegionsError, match="list them with `upscale regions list`"):
        resolve_regions("Nowhere", catalogue=catalogue)
    with pytest.raises(InvalidRegionsError, match="give west,south,east,north with west < east"):
        resolve_regions("1,0,0,1")
    with pytest.raises(InvalidRegionsError, match="not a valid WKT polygon"):
        resolve_regions("POLYGON ((0 0, 1 1")
    with pytest.raises(InvalidRegionsError, match="not a GeoJSON geometry or feature"):
        resolve_regions('{"type": "Polygon"}')
    with pytest.raises(InvalidRegionsError, match="--crs 'EPSG:0': not a CRS"):
        resolve_regions("0,0,1,1", crs="EPSG:0")
    with pytest.raises(InvalidRegionsError, match=r"\['Estuary A'\] given twice"):
        resolve_regions(["Estuary A", "Estuary A"], catalogue=catalogue)
