"""The catalogue of bad inputs: each gives one error of upscale's own type, naming the file,
variable or site and the fix.

Every entry has an id; ``docs/troubleshooting.md`` lists each id with the message, its cause
and the fix, and the last test keeps the two in step.
"""

import re
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import upscale
from upscale.api._towers import require_towers
from upscale.budgets.catalogue import resolve_regions
from upscale.demo_region import write_demo_region
from upscale.engine.tiles import flux_maps
from upscale.errors import (
    InvalidConfigError,
    InvalidCubeError,
    InvalidMaskError,
    InvalidModelError,
    InvalidRegionsError,
    InvalidTowerDataError,
    OutputExistsError,
)
from upscale.io.stores import open_cube, open_mask, write_store
from upscale.learn.artifact import load_model, save_model
from upscale.learn.config import load_train_config
from upscale.learn.samples import tower_site_series
from upscale.learn.training import TrainConfig, require_temporal_split
from upscale.towers.ameriflux import read_ameriflux
from upscale.towers.fluxnet import read_fluxnet
from upscale.towers.pixels import site_pixels
from upscale.towers.sites import read_sites

from .conftest import untrained_model
from .test_ameriflux import base_table, write_base
from .test_site_study import marsh_table, write_marshes

TROUBLESHOOTING = Path(__file__).parents[1] / "docs" / "troubleshooting.md"


def _cube(region, tmp_path: Path, change: Callable) -> Path:
    """Write the small region's cube after ``change`` and return its path."""
    return write_store(change(region.cube.copy()), tmp_path / "cube.zarr")


def _with_units(cube, name: str, units: str | None):
    attrs = dict(cube[name].attrs)
    attrs.pop("units")
    cube[name].attrs = attrs if units is None else attrs | {"units": units}
    return cube


def _without_crs(region, tmp_path: Path) -> Path:
    cube = region.cube.drop_vars("spatial_ref")
    for name in cube.data_vars:
        cube[name].attrs.pop("grid_mapping", None)
        cube[name].encoding.pop("grid_mapping", None)
    cube.to_zarr(tmp_path / "cube.zarr", zarr_format=3, consolidated=False)
    return tmp_path / "cube.zarr"


def _fluxnet(tmp_path: Path, res: str, rows: list[str], header: str) -> Path:
    path = tmp_path / f"FLX_US-Bad_FLUXNET2015_FULLSET_{res}_2004-2005_1-4.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


DD_HEADER = "TIMESTAMP,GPP_NT_VUT_REF,RECO_NT_VUT_REF,NEE_VUT_REF"
DD_ROWS = [f"200401{day:02d},3.0,2.0,-1.0" for day in range(1, 32)]


def _sites_with(region, tmp_path: Path, lat: float) -> tuple[Path, Path]:
    inputs = write_demo_region(region, tmp_path / "inputs")
    table = pd.read_csv(inputs.sites / "sites.csv")
    table.loc[0, "lat"] = lat
    table.to_csv(inputs.sites / "sites.csv", index=False)
    return inputs.sites, inputs.cube


def _base(tmp_path: Path, change: Callable) -> Path:
    """A two-month AmeriFlux BASE file after ``change`` of its half-hourly table."""
    return write_base(tmp_path, "AMF_US-Xyz_BASE_HH_1-1.csv", change(base_table()))


def _marsh_series(tmp_path: Path, features, change: Callable = lambda table: table):
    """The five tidal marshes of the site-study tests, their own drivers as features."""
    data = read_sites(write_marshes(tmp_path / "towers", change(marsh_table())))
    return tower_site_series(data, features)


def _without_wtd_at_one_tower(table: pd.DataFrame) -> pd.DataFrame:
    table.loc[table["site_id"] == "US-Plm", "WTD"] = float("nan")
    return table


def _one_tower(tmp_path: Path):
    series = _marsh_series(tmp_path, ("TA", "PAR"))
    return require_towers(series.subset(["US-Mar"]), "towers", ["saltmarsh"], TrainConfig())


CATALOGUE = {
    # Driver cubes
    "cube-missing-variable": (
        lambda r, t: open_cube(_cube(r, t, lambda c: c.drop_vars("LAI"))),
        InvalidCubeError,
        r"cube.zarr: missing driver variable\(s\) LAI .*add them, or choose features",
    ),
    "cube-wrong-units": (
        lambda r, t: open_cube(_cube(r, t, lambda c: _with_units(c, "TA", "K"))),
        InvalidCubeError,
        r"variable TA is in 'K', expected 'degC'; convert it",
    ),
    "cube-no-units": (
        lambda r, t: open_cube(_cube(r, t, lambda c: _with_units(c, "TA", None))),
        InvalidCubeError,
        r"variable TA has no 'units' attribute; set it to 'degC'",
    ),
    "cube-gap-in-time": (
        lambda r, t: open_cube(_cube(r, t, lambda c: c.drop_isel(time=5))),
        InvalidCubeError,
        r"not a gapless monthly series \(jump at 2010-07\); fill missing months with NaN",
    ),
    "cube-daily-steps": (
        lambda r, t: open_cube(
            _cube(
                r,
                t,
                lambda c: c.assign_coords(
                    time=pd.date_range("2010-01-01", periods=c.sizes["time"], freq="D")
                ),
            )
        ),
        InvalidCubeError,
        r"time steps must be monthly, stamped on the first of the month; found 2010-01-02",
    ),
    "cube-unsorted-time": (
        lambda r, t: open_cube(_cube(r, t, lambda c: c.isel(time=slice(None, None, -1)))),
        InvalidCubeError,
        r"time is not sorted or has duplicates; sort it",
    ),
    "cube-implausible-values": (  # a nodata value stored as a number
        lambda r, t: write_store(
            flux_maps(
                r.cube.assign(NDVI=r.cube["NDVI"].where(False, -9999.0)).chunk({"y": 10, "x": 12}),
                r.mask,
                {e: save_model(untrained_model(e), t / e) for e in ("mangrove", "saltmarsh")},
            ),
            t / "maps.zarr",
        ),
        InvalidCubeError,
        r"driver NDVI ranges -9999..-9999, outside the plausible -1..1 at the wetland pixels "
        r"of the tile starting at y=\d+, x=\d+; check its units, and that a nodata value such as "
        r"-9999 is stored as NaN",
    ),
    "cube-no-crs": (
        lambda r, t: open_cube(_without_crs(r, t)),
        InvalidCubeError,
        r"no CRS found .*ds.rio.write_crs",
    ),
    # FLUXNET files
    "fluxnet-file-name": (
        lambda r, t: read_fluxnet(t / "US-Bad_daily.csv"),
        InvalidTowerDataError,
        r"US-Bad_daily.csv: not a FLUXNET file name; expected .*rename it",
    ),
    "fluxnet-missing-flux-column": (
        lambda r, t: read_fluxnet(
            _fluxnet(
                t, "DD", [row.rsplit(",", 1)[0] for row in DD_ROWS], DD_HEADER.rsplit(",", 1)[0]
            )
        ),
        InvalidTowerDataError,
        r"missing flux column\(s\) NEE_VUT_REF for partitioning NT",
    ),
    "fluxnet-other-partitioning": (
        lambda r, t: read_fluxnet(_fluxnet(t, "DD", DD_ROWS, DD_HEADER.replace("_NT_", "_DT_"))),
        InvalidTowerDataError,
        r"the file has the DT partitioning: use --partitioning DT",
    ),
    "fluxnet-duplicated-timestamp": (
        lambda r, t: read_fluxnet(_fluxnet(t, "DD", [*DD_ROWS, DD_ROWS[3]], DD_HEADER)),
        InvalidTowerDataError,
        r"duplicated timestamp 2004-01-04.*remove the repeated rows",
    ),
    "fluxnet-all-missing": (
        lambda r, t: read_fluxnet(
            _fluxnet(t, "DD", [f"200401{d:02d},-9999,-9999,-9999" for d in range(1, 32)], DD_HEADER)
        ),
        InvalidTowerDataError,
        r"no month keeps a valid flux.*lower qc_min or min_coverage, or leave this tower out",
    ),
    "fluxnet-wrong-resolution": (  # a half-hourly file labelled monthly
        lambda r, t: read_fluxnet(
            _fluxnet(
                t,
                "MM",
                ["200401010000,3,2,-1"],
                "TIMESTAMP_START,GPP_NT_VUT_REF,RECO_NT_VUT_REF,NEE_VUT_REF",
            )
        ),
        InvalidTowerDataError,
        r"MM_2004-2005_1-4\.csv: the rows look half-hourly .*TIMESTAMP_START instead of TIMESTAMP",
    ),
    "fluxnet-mixed-resolutions": (  # half-hourly rows pasted into a daily file
        lambda r, t: read_fluxnet(_fluxnet(t, "DD", [*DD_ROWS, "200402010000,3,2,-1"], DD_HEADER)),
        InvalidTowerDataError,
        r"TIMESTAMP has values not in the %Y%m%d format FLUXNET uses at this resolution",
    ),
    "fluxnet-text-in-numbers": (
        lambda r, t: read_fluxnet(
            _fluxnet(t, "DD", [*DD_ROWS[:-1], "20040131,3.0x,2,-1"], DD_HEADER)
        ),
        InvalidTowerDataError,
        r"column GPP_NT_VUT_REF has non-numeric values \(e.g. '3.0x'\); FLUXNET files write -9999",
    ),
    # AmeriFlux BASE files
    "base-timestamp-gap": (
        lambda r, t: read_ameriflux(
            _base(t, lambda b: b.drop(pd.date_range("2015-01-10", "2015-01-13", freq="30min")))
        ),
        InvalidTowerDataError,
        r"HH_1-1\.csv: 1 timestamp gap.*from 2015-01-10 00:00 to 2015-01-13 00:00 \(3\.0 days\)",
    ),
    "base-duplicated-half-hours": (
        lambda r, t: read_ameriflux(_base(t, lambda b: pd.concat([b, b.iloc[[10]]]).sort_index())),
        InvalidTowerDataError,
        r"HH_1-1\.csv: duplicated half-hours \(1, the first",
    ),
    "fluxnet-half-hours-in-daily-file": (  # µmol m-2 s-1 half-hours in a file named DD
        lambda r, t: read_fluxnet(
            _fluxnet(t, "DD", [f"20040101,{v},2,-1" for v in range(48)], DD_HEADER)
        ),
        InvalidTowerDataError,
        r"DD_2004-2005_1-4\.csv: the rows look half-hourly in µmol m-2 s-1",
    ),
    # Site-level studies
    "tower-feature-missing": (
        lambda r, t: _marsh_series(t, ("TA", "WTD"), _without_wtd_at_one_tower),
        InvalidTowerDataError,
        r"site US-Plm \(marshes\.csv\) has no WTD; give it in its file or a --site-drivers",
    ),
    "temporal-split-too-short": (
        lambda r, t: require_temporal_split(
            _marsh_series(t, ("TA", "PAR")),
            TrainConfig(cv="temporal", memory=36, test_fraction=0.5),
        ),
        InvalidTowerDataError,
        r"site US-Plm: holding out its last 50% of 60 measured months leaves 30 before them",
    ),
    "cv-too-few-towers": (
        lambda r, t: _one_tower(t),
        InvalidTowerDataError,
        r"saltmarsh has 1 tower\(s\) with 1 distinct driver series.*\(--cv temporal\)",
    ),
    # Towers
    "site-outside-cube": (
        lambda r, t: upscale.train(
            *_sites_with(r, t, lat=10.0), t / "models", status=lambda line: None
        ),
        InvalidTowerDataError,
        r"site\(s\) outside the cube extent: .*remove them from sites.csv",
    ),
    "site-on-dry-pixel": (
        lambda r, t: upscale.train(
            t / "inputs" / "sites",
            t / "inputs" / "cube.zarr",
            t / "models",
            mask=_dry_at_first_tower(r, t),
        ),
        InvalidTowerDataError,
        r"site\(s\) on pixels without wetland in dry.zarr: ZZ-Mg1 \(.*check their coordinates",
    ),
    # Models
    "model-lacks-cube-driver": (
        lambda r, t: flux_maps(
            r.cube.drop_vars("LAI"),
            r.mask,
            {e: save_model(untrained_model(e), t / e) for e in ("mangrove", "saltmarsh")},
        ),
        InvalidCubeError,
        r"cube lacks driver\(s\) LAI that the models need",
    ),
    "model-memory-longer-than-cube": (
        lambda r, t: flux_maps(
            r.cube.isel(time=slice(0, 2)),
            r.mask,
            {e: save_model(untrained_model(e, memory=3), t / e) for e in ("mangrove", "saltmarsh")},
        ),
        InvalidCubeError,
        r"the cube has 2 months; the models need at least 3 \(their memory length\)",
    ),
    "model-other-ecosystem": (
        lambda r, t: flux_maps(
            r.cube,
            r.mask,
            {e: save_model(untrained_model("saltmarsh"), t / e) for e in ("mangrove", "saltmarsh")},
        ),
        InvalidModelError,
        r"mangrove: model is for saltmarsh, not mangrove",
    ),
    "model-no-weights": (
        lambda r, t: load_model(_without_weights(t)),
        InvalidModelError,
        r"no weights.safetensors; a model folder holds card.json and weights.safetensors",
    ),
    "model-name-escapes": (
        lambda r, t: upscale.train(t / "sites", t / "cube.zarr", t / "models", name="../../etc/x"),
        InvalidConfigError,
        r"model name '../../etc/x' is not a plain file name; use letters, digits",
    ),
    # Configs
    "config-unknown-key": (
        lambda r, t: load_train_config(_text(t / "config.yaml", "epoch: 3\n")),
        InvalidConfigError,
        r"config.yaml: epoch: Extra inputs are not permitted .*fields are architecture",
    ),
    # Masks and regions
    "mask-other-grid": (
        lambda r, t: open_mask(
            write_store(r.mask.isel(y=slice(0, None, 2), x=slice(0, None, 2)), t / "m.zarr"), r.cube
        ),
        InvalidMaskError,
        r"m.zarr: mask grid is \(10, 12\).*reproject_match",
    ),
    "region-empty-geometry": (
        lambda r, t: resolve_regions([str(_empty_region(t))]),
        InvalidRegionsError,
        r"have no area",
    ),
    "region-off-the-maps": (
        lambda r, t: upscale.query(_maps(r, t), [_far_region(t)], out=t / "budget.csv"),
        InvalidRegionsError,
        r"far away do not overlap the maps",
    ),
    # Outputs
    "output-exists": (
        lambda r, t: write_store(r.mask, write_store(r.mask, t / "mask.zarr")),
        OutputExistsError,
        r"mask.zarr exists; pass --overwrite",
    ),
}


def _dry_at_first_tower(region, tmp_path: Path) -> Path:
    """The demo's mask with no wetland at the first tower's pixel."""
    inputs = write_demo_region(region, tmp_path / "inputs")
    rows, cols = site_pixels(open_cube(inputs.cube, ()), read_sites(inputs.sites).meta.iloc[:1])
    mask = open_mask(inputs.mask).load()
    for name in mask.data_vars:
        mask[name].values[rows[0], cols[0]] = 0
    return write_store(mask, tmp_path / "dry.zarr")


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _without_weights(tmp_path: Path) -> Path:
    folder = save_model(untrained_model("mangrove"), tmp_path / "model")
    (folder / "weights.safetensors").unlink()
    return folder


def _empty_region(tmp_path: Path) -> Path:
    regions = gpd.GeoDataFrame({"name": ["nothing"]}, geometry=[shapely.Polygon()], crs=4326)
    regions.to_file(tmp_path / "empty.geojson")
    return tmp_path / "empty.geojson"


def _far_region(tmp_path: Path) -> Path:
    far = gpd.GeoDataFrame({"name": ["far away"]}, geometry=[shapely.box(0, 10, 1, 11)], crs=4326)
    far.to_file(tmp_path / "far.geojson")
    return tmp_path / "far.geojson"


def _maps(region, tmp_path: Path) -> Path:
    folders = {e: save_model(untrained_model(e), tmp_path / e) for e in ("mangrove", "saltmarsh")}
    cube = region.cube.chunk({"y": 10, "x": 12})
    return write_store(flux_maps(cube, region.mask, folders), tmp_path / "maps.zarr")


@pytest.mark.parametrize("entry", sorted(CATALOGUE))
def test_each_bad_input_gives_one_clear_error(entry, small_region, tmp_path):
    make, error, message = CATALOGUE[entry]
    with pytest.raises(error, match=message) as raised:
        make(small_region, tmp_path)
    assert "Traceback" not in str(raised.value) and "\n" not in str(raised.value)  # one line


def test_the_troubleshooting_page_lists_every_entry():
    page = TROUBLESHOOTING.read_text()
    listed = set(re.findall(r"^### `([a-z0-9-]+)`", page, flags=re.MULTILINE))
    assert listed == set(CATALOGUE)


@pytest.mark.parametrize("entry", sorted(CATALOGUE))
def test_the_page_shows_the_real_message(entry):
    page = TROUBLESHOOTING.read_text()
    section = page.split(f"### `{entry}`", 1)[1].split("\n### ", 1)[0]
    shown = re.search(r"```text\n(.*?)\n```", section, flags=re.S).group(1)
    _, _, message = CATALOGUE[entry]
    assert shown.startswith("error: ") and re.search(message, shown)
