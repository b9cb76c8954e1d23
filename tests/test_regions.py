import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from pyproj import Geod, Transformer

from tests.helpers import raise_if_dask_computes
from upscale.budgets.regions import budget, read_regions, region_area_km2, region_weights
from upscale.errors import InvalidRegionsError


def synthetic_maps(crs, x, y, seed=0, valid_from="2012-01-01"):
    rng = np.random.default_rng(seed)
    times = pd.date_range("2011-11", periods=26, freq="MS")
    shape = (len(times), len(y), len(x))
    wetland = rng.integers(0, 3, size=shape[1:]).astype("uint8")
    fraction = np.where(wetland > 0, rng.uniform(0.2, 1.0, size=shape[1:]), 0.0)
    gpp = np.where(wetland > 0, rng.uniform(2, 8, size=shape), np.nan)
    re = np.where(wetland > 0, rng.uniform(1, 5, size=shape), np.nan)
    gpp[:2] = re[:2] = np.nan  # before the first full window
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
        attrs={"valid_from": valid_from},
    )
    return maps.rio.write_crs(crs)


def geographic_case():
    step = 0.05
    x, y = np.arange(-81.9, -81.0, step) + step / 2, np.arange(26.0, 25.2, -step) - step / 2
    lon, lat = np.meshgrid(x, y)
    geod = Geod(ellps="WGS84")
    half = step / 2
    areas = np.vectorize(
        lambda lo, la: abs(
            geod.polygon_area_perimeter(
                np.r_[np.linspace(lo - half, lo + half, 20), np.linspace(lo + half, lo - half, 20)],
                np.r_[np.full(20, la - half), np.full(20, la + half)],
            )[0]
        )
    )(lon, lat)
    region = shapely.Polygon([(-81.73, 25.41), (-81.22, 25.47), (-81.31, 25.88), (-81.66, 25.8)])
    return "EPSG:4326", x, y, step, areas, region


def projected_case():
    step = 1000.0
    x, y = np.arange(0, 20_000, step) + 500, np.arange(15_000, 0, -step) - 500
    region = shapely.Polygon([(3300, 2100), (14200, 2900), (13100, 11400), (2800, 9700)])
    return "EPSG:5070", x, y, step, np.full((len(y), len(x)), step * step), region


def utm_case():
    """A conformal projection: cell areas on the ground differ from the nominal 1 km2."""
    step = 1000.0
    x0, y0 = 480_000.0, 2_800_000.0
    x, y = x0 + np.arange(12) * step + 500, y0 + np.arange(9)[::-1] * step + 500
    to_lonlat = Transformer.from_crs("EPSG:32617", 4326, always_xy=True)
    side = np.linspace(-500, 500, 50)
    areas = np.zeros((len(y), len(x)))
    for i, yc in enumerate(y):
        for j, xc in enumerate(x):
            ring_x = xc + np.r_[side, np.full(50, 500), side[::-1], np.full(50, -500)]
            ring_y = yc + np.r_[np.full(50, -500), side, np.full(50, 500), side[::-1]]
            lon, lat = to_lonlat.transform(ring_x, ring_y)
            areas[i, j] = abs(Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)[0])
    region = shapely.Polygon(
        [
            (x0 + 1300, y0 + 900),
            (x0 + 10_400, y0 + 1500),
            (x0 + 9800, y0 + 8100),
            (x0 + 2100, y0 + 7300),
        ]
    )
    return "EPSG:32617", x, y, step, areas, region


def independent_budget(maps, region, areas, step):
    """Annual GPP total and wetland area: a cell-by-cell loop with shapely."""
    share = np.zeros(areas.shape)
    for i, yc in enumerate(maps["y"].values):
        for j, xc in enumerate(maps["x"].values):
            cell = shapely.box(xc - step / 2, yc - step / 2, xc + step / 2, yc + step / 2)
            share[i, j] = cell.intersection(region).area / cell.area
    weight = areas * maps["wetland_fraction"].values * share * (maps["wetland"].values > 0)
    totals = {}
    for year in (2012, 2013):
        months = maps["GPP"].sel(time=str(year))
        days = months["time"].dt.days_in_month.values[:, None, None]
        totals[year] = float(np.nansum((months.values * days).sum(0) * weight)) / 1e9
    return totals, weight.sum() / 1e6


@pytest.mark.parametrize(
    "case", [geographic_case, projected_case, utm_case], ids=["geographic", "albers", "utm"]
)
def test_totals_equal_independent_integration(case):
    crs, x, y, step, areas, region = case()
    maps = synthetic_maps(crs, x, y)
    regions = gpd.GeoDataFrame({"name": ["r"]}, geometry=[region], crs=crs)
    table = budget(maps, regions)
    expected, area_km2 = independent_budget(maps, region, areas, step)
    wetland = table[table["ecosystem"] == "wetland"].set_index("year")
    assert list(wetland.index) == [2012, 2013]  # 2011 is incomplete
    for year, row in wetland.iterrows():
        assert row.GPP_total == pytest.approx(expected[year], rel=1e-3)
        assert row.area_km2 == pytest.approx(area_km2, rel=1e-3)
        assert row.GPP_mean == pytest.approx(row.GPP_total * 1e9 / (row.area_km2 * 1e6))
        assert row.sink_total == pytest.approx(-row.NEE_total)
        assert row.sink_mean == pytest.approx(-row.NEE_mean)
        assert row.GPP_total_std == pytest.approx(0.1 * row.GPP_total, rel=1e-5)
    assert "RE_total_std" not in table  # no spread in these maps


def test_ecosystems_add_up_to_the_wetland():
    crs, x, y, step, _, region = projected_case()
    regions = gpd.GeoDataFrame({"name": ["r"]}, geometry=[region], crs=crs)
    table = budget(synthetic_maps(crs, x, y), regions)
    assert set(table["ecosystem"]) == {"wetland", "mangrove", "saltmarsh"}
    for _, rows in table.groupby("year"):
        parts = rows[rows["ecosystem"] != "wetland"]
        whole = rows[rows["ecosystem"] == "wetland"].iloc[0]
        for column in ("area_km2", "GPP_total", "RE_total", "NEE_total", "GPP_total_std"):
            assert parts[column].sum() == pytest.approx(whole[column], rel=1e-9)


def test_monthly_budget_sums_to_the_annual_one():
    crs, x, y, step, _, region = geographic_case()
    maps = synthetic_maps(crs, x, y)
    regions = gpd.GeoDataFrame({"name": ["r"]}, geometry=[region], crs=crs)
    annual = budget(maps, regions).set_index(["year", "ecosystem"])
    monthly = budget(maps, regions, by="month")
    assert monthly["month"].iloc[0] == "2012-01"  # the valid period starts there
    assert monthly["month"].nunique() == 24
    monthly["year"] = monthly["month"].str[:4].astype(int)
    summed = monthly.groupby(["year", "ecosystem"])[["GPP_total", "NEE_total"]].sum()
    for column in ("GPP_total", "NEE_total"):
        np.testing.assert_allclose(summed[column], annual.loc[summed.index, column], rtol=1e-6)
    assert monthly.attrs["units"]["total"] == "Gg C month-1"


@pytest.mark.filterwarnings("ignore:region .* lies on the maps")
def test_many_overlapping_regions_in_one_lazy_pass():
    crs, x, y, step, _, _ = geographic_case()
    maps = synthetic_maps(crs, x, y).chunk({"time": -1, "y": 8, "x": 8})
    boxes = [shapely.box(-81.8 + 0.03 * i, 25.3, -81.5 + 0.03 * i, 25.7) for i in range(20)]
    regions = gpd.GeoDataFrame({"name": [f"r{i}" for i in range(20)]}, geometry=boxes, crs=crs)
    # Twice: the 2-D mask layers for the weights, then every flux and region in one pass.
    with raise_if_dask_computes(max_computes=2):
        table = budget(maps, regions)
    one = budget(maps.compute(), regions.iloc[[7]])
    pd.testing.assert_frame_equal(
        table[table["name"] == "r7"].reset_index(drop=True), one, check_dtype=False
    )


def test_regions_in_another_crs_are_reprojected():
    crs, x, y, step, _, region = geographic_case()
    maps = synthetic_maps(crs, x, y)
    box = gpd.GeoDataFrame({"name": ["b"]}, geometry=[region.segmentize(0.005)], crs=4326)
    in_utm = region_weights(box.to_crs("EPSG:32617"), maps)
    in_geo = region_weights(box, maps)
    assert float(in_utm.sum()) == pytest.approx(float(in_geo.sum()), rel=1e-3)


def test_region_off_the_maps_is_an_error():
    crs, x, y, *_ = geographic_case()
    maps = synthetic_maps(crs, x, y)
    far = gpd.GeoDataFrame({"name": ["far away"]}, geometry=[shapely.box(0, 10, 1, 11)], crs=4326)
    with pytest.raises(InvalidRegionsError, match="far away do not overlap the maps"):
        budget(maps, far)


def test_read_regions_errors(tmp_path):
    unnamed = gpd.GeoDataFrame({"label": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    unnamed.to_file(tmp_path / "unnamed.geojson")
    with pytest.raises(InvalidRegionsError, match="unnamed.geojson: no 'name' column"):
        read_regions(tmp_path / "unnamed.geojson")
    twice = gpd.GeoDataFrame({"name": ["a", "a"]}, geometry=[shapely.box(0, 0, 1, 1)] * 2, crs=4326)
    twice.to_file(tmp_path / "twice.geojson")
    with pytest.raises(InvalidRegionsError, match=r"duplicated region names \['a'\]"):
        read_regions(tmp_path / "twice.geojson")
    (tmp_path / "junk.geojson").write_text("not json")
    with pytest.raises(InvalidRegionsError, match="not a readable vector file"):
        read_regions(tmp_path / "junk.geojson")
    points = gpd.GeoDataFrame({"name": ["p"]}, geometry=[shapely.Point(0, 0)], crs=4326)
    points.to_file(tmp_path / "points.geojson")
    with pytest.raises(InvalidRegionsError, match=r"region\(s\) \['p'\] have no area"):
        read_regions(tmp_path / "points.geojson")


def test_invalid_region_geometry_is_repaired(tmp_path):
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])  # self-intersecting
    frame = gpd.GeoDataFrame({"name": ["bow"]}, geometry=[bowtie], crs=4326)
    frame.to_file(tmp_path / "bow.geojson")
    regions = read_regions(tmp_path / "bow.geojson")
    assert regions.geometry.iloc[0].is_valid
    assert regions.geometry.iloc[0].area == pytest.approx(0.5)


def test_region_areas_are_geodesic():
    box = gpd.GeoDataFrame({"name": ["b"]}, geometry=[shapely.box(-82, 25, -81, 26)], crs=4326)
    # The same box in Albers: reprojection must not change its area beyond the densification.
    area = region_area_km2(box).loc["b"]
    assert area == pytest.approx(11_150, rel=0.01)  # 1 degree square at 25.5 N
    assert region_area_km2(box.to_crs("EPSG:5070")).loc["b"] == pytest.approx(area, rel=1e-3)


@pytest.mark.filterwarnings("ignore:region .* lies on the maps")
def test_a_gap_in_the_maps_spoils_only_the_rows_that_count_it():
    crs, x, y, step, _, _ = geographic_case()
    maps = synthetic_maps(crs, x, y)
    west = maps["x"].values < -81.5
    row, col = np.argwhere((maps["wetland"].values == 2) & west[None, :])[0]  # saltmarsh
    maps["GPP"][5, row, col] = np.nan  # a gap in June 2012
    cx, cy = float(maps["x"][col]), float(maps["y"][row])
    regions = gpd.GeoDataFrame(
        {"name": ["with the gap", "elsewhere"]},
        geometry=[
            shapely.box(cx - 0.06, cy - 0.06, cx + 0.06, cy + 0.06),
            shapely.box(-81.3, 25.3, -81.05, 25.9),  # east of -81.5: apart from the gap
        ],
        crs=crs,
    )
    table = budget(maps, regions).set_index(["name", "year", "ecosystem"])
    assert np.isnan(table.loc[("with the gap", 2012, "wetland"), "GPP_total"])
    assert np.isnan(table.loc[("with the gap", 2012, "saltmarsh"), "GPP_total"])
    assert np.isfinite(table.loc[("with the gap", 2012, "mangrove"), "GPP_total"])
    assert np.isfinite(table.loc[("with the gap", 2013, "wetland"), "GPP_total"])
    assert np.isfinite(table.loc[("with the gap", 2012, "wetland"), "RE_total"])
    assert np.isfinite(table.xs("elsewhere")["GPP_total"]).all()


def test_a_region_one_pixel_wide():
    crs, x, y, *_ = geographic_case()
    maps = synthetic_maps(crs, x, y)
    thin = gpd.GeoDataFrame(
        {"name": ["sliver"]}, geometry=[shapely.box(-81.62, 25.601, -81.3, 25.602)], crs=crs
    )
    table = budget(maps, thin)
    assert (table["area_km2"] >= 0).all() and len(table) >= 2


def test_ecosystem_rows_take_each_ecosystems_own_cover():
    crs, x, y, step, _, region = projected_case()
    maps = synthetic_maps(crs, x, y)
    rng = np.random.default_rng(1)
    share = rng.uniform(0, 1, size=maps["wetland_fraction"].shape)
    on = maps["wetland"].values > 0
    maps["mangrove_fraction"] = (("y", "x"), np.where(on, maps["wetland_fraction"] * share, 0.0))
    maps["saltmarsh_fraction"] = (
        ("y", "x"),
        np.where(on, maps["wetland_fraction"] * (1 - share), 0.0),
    )
    regions = gpd.GeoDataFrame({"name": ["r"]}, geometry=[region], crs=crs)
    table = budget(maps, regions).set_index(["year", "ecosystem"])
    weights = region_weights(regions, maps).values[0] * step**2 / 1e6
    for eco in ("mangrove", "saltmarsh"):
        expected = float((weights * maps[f"{eco}_fraction"].values).sum())
        assert table.loc[(2012, eco), "area_km2"] == pytest.approx(expected, rel=1e-6)
    parts = table.loc[2012].drop("wetland")["area_km2"].sum()
    assert parts == pytest.approx(table.loc[(2012, "wetland"), "area_km2"], rel=1e-6)
    assert set(table["mean_units"]) == {"gC m-2 yr-1"} and set(table["total_units"]) == {
        "Gg C yr-1"
    }


def test_bad_region_tables_and_periods(tmp_path):
    crs, x, y, *_ = geographic_case()
    maps = synthetic_maps(crs, x, y)
    box = gpd.GeoDataFrame(
        {"name": ["b"]}, geometry=[shapely.box(-81.7, 25.4, -81.2, 25.9)], crs=crs
    )
    with pytest.raises(InvalidRegionsError, match="budget by 'months': choose 'year' or 'month'"):
        budget(maps, box, by="months")
    unnamed = gpd.GeoDataFrame({"name": [None]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    unnamed.to_file(tmp_path / "unnamed.geojson")
    with pytest.raises(InvalidRegionsError, match="1 region\\(s\\) without a name"):
        read_regions(tmp_path / "unnamed.geojson")


def test_a_region_partly_off_the_maps_is_budgeted_with_a_warning(recwarn):
    crs, x, y, *_ = geographic_case()
    maps = synthetic_maps(crs, x, y)
    west = -81.9  # the maps' west edge: the first box lies half off the maps
    boxes = [shapely.box(west - 0.2, 25.4, west + 0.2, 25.6), shapely.box(-81.6, 25.4, -81.2, 25.6)]
    regions = gpd.GeoDataFrame({"name": ["half", "inside"]}, geometry=boxes, crs=crs)
    with pytest.warns(UserWarning, match=r"region half: only 50% of its area lies on the maps"):
        budget(maps, regions)
    assert not [w for w in recwarn if "region inside" in str(w.message)]
