from functools import partial

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from upscale.budgets.annual import annual_totals, export_layers
from upscale.engine.tiles import flux_maps
from upscale.errors import OutputExistsError
from upscale.io.exports import EXPORT_FORMATS, ExportFormat, export_maps, register_export_format
from upscale.io.stores import open_store, write_store


@pytest.fixture
def maps(small_region, model_folders, tmp_path):
    cube = small_region.cube.chunk({"y": 8, "x": 8})
    path = write_store(flux_maps(cube, small_region.mask, model_folders), tmp_path / "maps.zarr")
    return open_store(path)


def test_annual_and_monthly_cogs(maps, tmp_path):
    paths = export_maps(maps, export_layers(maps, ("annual", "monthly")), tmp_path / "cogs")
    names = sorted(p.name for p in paths)
    layers = ("GPP", "RE", "NEE", "GPP_std", "RE_std", "NEE_std")
    expected = [f"{v}_{p}.tif" for v in layers for p in ("annual", "monthly")]
    assert names == sorted([*expected, "extrapolated_fraction.tif"])
    for path in paths:
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
    with rasterio.open(tmp_path / "cogs" / "GPP_annual.tif") as src:
        assert src.crs.to_epsg() == 4326
        assert src.count == 3  # 2011-2013: 2010 lacks its first two months
        assert src.descriptions == ("GPP 2011 total", "GPP 2012 total", "GPP 2013 total")
        assert np.isnan(src.nodata)
        assert src.tags()["units"] == "gC m-2 yr-1"
        assert src.units == ("gC m-2 yr-1",) * 3
        band = src.read(2)
        assert src.transform.c == pytest.approx(float(maps["x"][0]) - src.transform.a / 2)
    expected = (maps["GPP"].sel(time="2012") * maps["time"].sel(time="2012").dt.days_in_month).sum(
        "time", skipna=False
    )
    np.testing.assert_allclose(band, expected.values, rtol=1e-5)
    with rasterio.open(tmp_path / "cogs" / "NEE_monthly.tif") as src:
        assert src.count == 46  # 48 months less the first two
        assert src.descriptions[0] == "NEE 2010-03 mean"
        assert src.tags()["units"] == "gC m-2 d-1"


def test_refuses_to_overwrite(maps, tmp_path):
    export_maps(maps, export_layers(maps), tmp_path / "cogs")
    with pytest.raises(OutputExistsError, match="GPP_annual.tif"):
        export_maps(maps, export_layers(maps), tmp_path / "cogs")


def test_spread_and_extrapolation_layers(maps, tmp_path):
    export_maps(maps, export_layers(maps), tmp_path / "cogs")
    with rasterio.open(tmp_path / "cogs" / "NEE_std_annual.tif") as src:
        assert src.descriptions[0] == "NEE_std 2011 total"
        spread = src.read(1)
    expected = maps["NEE_std"].sel(time="2011") * maps["time"].sel(time="2011").dt.days_in_month
    np.testing.assert_allclose(spread, expected.sum("time", skipna=False).values, rtol=1e-5)
    with rasterio.open(tmp_path / "cogs" / "extrapolated_fraction.tif") as src:
        assert src.count == 1
        assert src.descriptions == ("extrapolated_fraction 2010-03..2013-12",)
        share = src.read(1)
    wetland = maps["wetland"].values > 0
    assert np.isfinite(share[wetland]).all() and np.isnan(share[~wetland]).all()
    assert ((share[wetland] >= 0) & (share[wetland] <= 1)).all()


@pytest.fixture
def csv_format():
    """A toy export format, ``csv``: the regional mean of each band, one CSV per layer."""

    def files(maps, layers, folder):
        def writer(name, data, labels):
            path = folder / f"{name}.csv"
            means = data.mean(("y", "x")).values
            path.write_text(
                "".join(
                    f"{label},{value:.6g}\n" for label, value in zip(labels, means, strict=True)
                )
            )
            return path

        return {folder / f"{n}.csv": partial(writer, n, d, lb) for n, (d, lb) in layers.items()}

    fmt = register_export_format(ExportFormat("csv", "regional means as CSV", files))
    yield fmt
    del EXPORT_FORMATS[fmt.name]


def test_a_registered_export_format_is_written_beside_the_cogs(maps, tmp_path, csv_format):
    layers = export_layers(maps)
    paths = export_maps(maps, layers, tmp_path / "out", formats=("cog", "csv"))
    assert sorted(p.suffix for p in paths) == sorted([".tif", ".csv"] * len(layers))
    gpp = (tmp_path / "out" / "GPP_annual.csv").read_text().splitlines()
    totals = annual_totals(maps)["GPP"].mean(("y", "x")).values
    assert [float(line.split(",")[1]) for line in gpp] == pytest.approx(totals, rel=1e-5)
    with pytest.raises(ValueError, match="unknown export format"):
        export_maps(maps, layers, tmp_path / "other", formats=("kml",))
    with pytest.raises(ValueError, match="already called 'csv'"):
        register_export_format(csv_format)
