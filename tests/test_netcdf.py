import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from compliance_checker.runner import CheckSuite, ComplianceChecker

from upscale import export
from upscale.engine.tiles import flux_maps
from upscale.errors import OutputExistsError
from upscale.io.stores import open_maps, write_store


@pytest.fixture
def maps_path(small_region, model_folders, tmp_path):
    cube = small_region.cube.chunk({"y": 10, "x": 12})
    return write_store(flux_maps(cube, small_region.mask, model_folders), tmp_path / "maps.zarr")


@pytest.fixture
def utm_maps_path(small_region, model_folders, tmp_path):
    """The same maps on a projected grid (metres), as a cube in UTM would give."""
    maps = open_maps(
        write_store(
            flux_maps(small_region.cube, small_region.mask, model_folders), tmp_path / "m.zarr"
        )
    )
    x = 500_000 + 1000.0 * np.arange(maps.sizes["x"])
    y = 2_800_000 - 1000.0 * np.arange(maps.sizes["y"])
    utm = maps.assign_coords(x=x, y=y).rio.write_crs("EPSG:32617")
    return write_store(utm, tmp_path / "utm.zarr")


def _passes_cf_checker(path) -> bool:
    """Run compliance-checker's cf:1.8 suite, strict: every check at every priority."""
    CheckSuite().load_all_available_checkers()
    passed, errors = ComplianceChecker.run_checker(
        str(path), ["cf:1.8"], 0, "strict", output_filename=f"{path}.json", output_format="json"
    )
    return passed and not errors


@pytest.mark.parametrize("which", ["maps_path", "utm_maps_path"])
def test_netcdf_export_passes_the_cf_checker_and_round_trips(which, request, tmp_path):
    path = request.getfixturevalue(which)
    written = export(path, tmp_path / "out", netcdf=True)
    nc = tmp_path / "out" / "maps.nc"
    assert nc in written
    assert _passes_cf_checker(nc), (tmp_path / "out" / "maps.nc.json").read_text()
    maps = open_maps(path)
    with xr.open_dataset(nc, decode_coords="all") as back:
        assert back.rio.crs == maps.rio.crs
        for name in ("GPP", "RE", "NEE", "GPP_std", "doa_distance", "wetland_fraction"):
            np.testing.assert_array_equal(back[name].values, maps[name].values)
        np.testing.assert_array_equal(back["time"].values, maps["time"].values)
        np.testing.assert_array_equal(back["wetland"].values, maps["wetland"].values)
        assert back["GPP"].attrs["units"] == "g m-2 d-1"
        assert back["GPP"].attrs["standard_name"].endswith("_expressed_as_carbon")
    with pytest.raises(OutputExistsError):
        export(path, tmp_path / "out", netcdf=True)
