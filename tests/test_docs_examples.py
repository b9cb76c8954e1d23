"""Every command and code block of the README and the docs runs as written.

Each block runs in a fresh copy of a small world holding the example files the docs name
(``towers/``, ``drivers.zarr``, ``wetlands.zarr``, ``regions/``, a Global Mangrove Watch-like
tile, wetland vectors, trained models and maps...), built from a small demo region.
Commands go through the real CLI; heavy ones get small settings appended (click keeps an
option's last value). A command may replace an output the world already holds (as a user
would with ``--overwrite`` after an earlier try), but not one an earlier line of the same
block wrote: that clash would stop a user too. Earth Engine is faked offline, serving any
grid. The tutorial's
blocks run in the site build (``tests/test_docs.py``); the troubleshooting page's messages
are checked against the real errors in ``tests/test_error_catalogue.py``.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import ee
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import typer
import xarray as xr
import yaml
from ee import apitestcase
from markdown_it import MarkdownIt
from rasterio.transform import from_bounds
from typer.testing import CliRunner

import upscale
from tests.stac_catalogue import write_catalogue
from upscale.cli import app
from upscale.drivers.ingest import IngestConfig
from upscale.io.stores import open_cube, open_mask
from upscale.learn.config import load_train_config
from upscale.schema import DRIVERS, PLAUSIBLE_RANGES, WETLAND

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_BY_THE_SITE_BUILD = {ROOT / "docs" / "tutorial.md"}
NOT_RUN = {
    "earthengine": "signs in to Google in a browser; Earth Engine is faked offline here",
    "pip": "installs packages; the test environment has its extras already",
    "make": "the Makefile's targets are CI's own commands (make test) and the tutorial's",
}
SMALL = {
    "train": ["--epochs", "2"],
    "sweep": ["--epochs", "2", "--memories", "1,2", "--architectures", "lstm"]
    + ["--nee-modes", "direct", "--workers", "1"],
    "explain": ["--windows", "10", "--background", "10", "--samples", "4", "--no-null"],
    "bench": ["--ny", "16", "--nx", "16", "--years", "2", "--tile", "8", "--no-explain"],
    "fetch": ["--period", "2010-01:2010-02"],
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    tokens = MarkdownIt().parse(page.read_text())
    return [
        Block(page, token.map[0] + 1, token.info.strip(), token.content)
        for token in tokens
        if token.type == "fence"
    ]


BLOCKS = [block for page in PAGES for block in code_blocks(page)]
RUNNABLE = [
    b for b in BLOCKS if b.page not in RUN_BY_THE_SITE_BUILD and b.language in ("bash", "python")
]


def test_every_block_is_checked():
    languages = {b.language for b in BLOCKS}
    assert languages <= {"bash", "python", "yaml", "text"}, "a block no test knows how to run"
    text_pages = {b.page.name for b in BLOCKS if b.language == "text"}
    # error messages (checked by test_error_catalogue), and the layout's diagram
    assert text_pages <= {"troubleshooting.md", "architecture.md"}
    assert RUNNABLE and [b for b in BLOCKS if b.language == "yaml"]


def commands(code: str) -> list[list[str]]:
    """Shell lines of a block, continuations joined and comments dropped."""
    joined = code.replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


class AnyGridServer:
    """``computePixels`` for any grid: plausible constants for every driver and month."""

    def __init__(self, period: tuple[str, str]) -> None:
        self.months = pd.date_range(*period, freq="MS")

    def __call__(self, params):
        grid = params["grid"]["dimensions"]
        fields = [(f"{v}_{m:%Y-%m}", "<f4") for m in self.months for v in DRIVERS]
        out = np.zeros((grid["height"], grid["width"]), dtype=fields)
        for v in DRIVERS:
            low, high = PLAUSIBLE_RANGES[v]
            for m in self.months:
                out[f"{v}_{m:%Y-%m}"] = low + 0.4 * (high - low)
        return out


class AnyPointsServer:
    """``computeFeatures`` at any towers: plausible constants for every band asked for."""

    def __init__(self, sites: Path) -> None:
        self.sites = pd.read_csv(sites)["site_id"].tolist()

    def __call__(self, params):
        bands = re.findall(
            r'"constantValue": "([A-Z_]+)_(\d{4}-\d{2})"', params["expression"].serialize()
        )
        values = {}
        for variable, month in bands:
            low, high = PLAUSIBLE_RANGES[variable]
            values[f"{variable}_{month}"] = low + 0.4 * (high - low)
        return pd.DataFrame([{"site_id": site} | values for site in self.sites])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The example files the docs name, from a small demo region."""
    base = tmp_path_factory.mktemp("world")
    demo = upscale.demo_inputs(
        base / ".demo",
        spec=upscale.DemoSpec(ny=24, nx=32, years=4, n_mangrove_sites=4, n_saltmarsh_sites=4),
    )
    for name in ("towers", "my_towers"):
        shutil.copytree(demo.sites, base / name)
    for name in ("drivers.zarr", "cube.zarr"):
        shutil.copytree(demo.cube, base / name)
    for name in ("wetlands.zarr", "mask.zarr"):
        shutil.copytree(demo.mask, base / name)
    regions = gpd.read_file(demo.regions)
    (base / "regions").mkdir()
    regions.to_file(base / "regions" / "estuaries.geojson")
    regions.to_file(base / "my_estuaries.gpkg")

    cube = open_cube(base / "drivers.zarr").load()
    mask = open_mask(base / "wetlands.zarr", cube).load()
    _wetland_files(base, cube, mask, gpd.read_file(demo.wetlands))
    _sources(base, cube)
    _tower_drivers(base, cube)
    write_catalogue(cube.isel(time=slice(0, 2)), base / "stac")  # what fetch --source stac reads

    config = upscale.TrainConfig(memory=3, epochs=2, folds=2)
    trained = upscale.train(
        base / "towers",
        base / "drivers.zarr",
        base / "models",
        config=config,
        name="estuary",
        status=lambda _: None,
    )
    upscale.predict(
        base / "drivers.zarr",
        base / "wetlands.zarr",
        list(trained.models.values()),
        base / "maps.zarr",
    )
    return base


def _wetland_files(
    base: Path, cube: xr.Dataset, mask: xr.Dataset, inventory: gpd.GeoDataFrame
) -> None:
    """A GMW-like 0/1 mangrove tile (4x finer, split in two) and saltmarsh polygons."""
    west, south, east, north = cube.rio.bounds()
    codes = mask[WETLAND].values
    fine = np.kron((codes == 1).astype("uint8"), np.ones((4, 4), "uint8"))
    height, width = fine.shape
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "crs": "EPSG:4326"}
    with rasterio.open(
        base / "GMW_N26W082_2020_v3.tif",
        "w",
        height=height,
        width=width,
        transform=from_bounds(west, south, east, north, width, height),
        **profile,
    ) as tile:
        tile.write(fine, 1)
    middle = width // 2
    step = (east - west) / width
    for name, cols, x0 in (
        ("gmw_tile_1.tif", slice(0, middle), west),
        ("gmw_tile_2.tif", slice(middle, None), west + middle * step),
    ):
        part = fine[:, cols]
        with rasterio.open(
            base / name,
            "w",
            height=height,
            width=part.shape[1],
            transform=from_bounds(
                x0, south, x0 + part.shape[1] * step, north, part.shape[1], height
            ),
            **profile,
        ) as tile:
            tile.write(part, 1)
    marshes = inventory[inventory["ecosystem"] == "saltmarsh"]
    marshes.to_file(base / "marshes.gpkg")
    marshes.assign(WETLAND_TYPE="Estuarine and Marine Wetland").drop(columns="ecosystem").to_crs(
        "EPSG:5070"
    ).to_file(base / "FL_Wetlands.gpkg")


def _sources(base: Path, cube: xr.Dataset) -> None:
    """sources.yaml for `upscale ingest`: the drivers as a NetCDF file of their own."""
    drivers = cube[[name for name in DRIVERS if name in cube]]
    drivers.attrs = {}  # the store's own marks (upscale_complete...) are not the source's
    drivers.rename(y="lat", x="lon").to_netcdf(base / "local_drivers.nc")
    west, south, east, north = cube.rio.bounds()
    step = float(abs(cube["x"][1] - cube["x"][0]))
    months = pd.DatetimeIndex(cube["time"].values)
    config = {
        "grid": {"crs": "EPSG:4326", "bounds": [west, south, east, north], "resolution": step},
        "period": [f"{months[0]:%Y-%m}", f"{months[-1]:%Y-%m}"],
        "sources": [{"path": "local_drivers.nc", "variables": {n: n for n in drivers}}],
    }
    (base / "sources.yaml").write_text(yaml.safe_dump(config))


def _tower_drivers(base: Path, cube: xr.Dataset) -> None:
    """modis_subsets.csv: TA, VPD and NDVI at the towers (the cube's, slightly off)."""
    sites = pd.read_csv(base / "towers" / "sites.csv")
    rows = []
    for site in sites.itertuples():
        pixel = cube.sel(x=site.lon, y=site.lat, method="nearest")
        table = pixel[["TA", "VPD", "NDVI"]].to_dataframe()[["TA", "VPD", "NDVI"]]
        rows.append(table.assign(site_id=site.site_id, TA=table["TA"] + 0.5))
    pd.concat(rows).reset_index().to_csv(base / "modis_subsets.csv", index=False)


@pytest.fixture
def in_a_copy(world, tmp_path, monkeypatch):
    """A fresh copy of the world as the working folder, with Earth Engine faked offline."""
    folder = tmp_path / "work"
    shutil.copytree(world, folder, symlinks=True)
    monkeypatch.chdir(folder)
    monkeypatch.delenv("UPSCALE_REGIONS", raising=False)
    case = apitestcase.ApiTestCase()
    case.setUp()
    monkeypatch.setattr(ee, "Initialize", lambda *args, **kwargs: None)
    yield folder, monkeypatch
    case.tearDown()


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_block_runs(block, in_a_copy):
    folder, monkeypatch = in_a_copy
    if block.language == "python":
        exec(compile(block.code, block.name, "exec"), {"__name__": "__docs__"})
        return
    lines = [words for words in commands(block.code) if words[0] not in NOT_RUN]
    if not lines:
        pytest.skip("not run here: " + "; ".join(f"{k} ({why})" for k, why in NOT_RUN.items()))
    runner = CliRunner()
    written: set[Path] = set()
    for program, *args in lines:
        assert program == "upscale", f"{block.name}: {program} is neither run nor excused"
        verb = next((word for word in args if not word.startswith("-")), "")
        extra = SMALL.get(verb, [])
        if verb == "fetch":
            monkeypatch.setattr(ee.data, "computePixels", AnyGridServer(extra[1].split(":")))
            points = AnyPointsServer(folder / "towers" / "sites.csv")
            monkeypatch.setattr(ee.data, "computeFeatures", points)
        output, can_overwrite = _output(args)
        if can_overwrite and output not in written and list(output.parent.glob(output.name)):
            extra = [*extra, "--overwrite"]  # the world's copy, not this block's
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, f"{block.name}: {shlex.join(args)}\n{result.output}"
        if output is not None:
            written.add(output)


def _output(args: list[str]) -> tuple[Path | None, bool]:
    """What a command line writes (a glob for train's models), and if it takes --overwrite."""
    command = typer.main.get_command(app)
    while hasattr(command, "commands"):  # a group: go down to the subcommand named
        name = next(word for word in args if not word.startswith("-"))
        args = args[args.index(name) + 1 :]
        command = command.commands[name]
    given = command.make_context(name, list(args), resilient_parsing=True).params
    params = {p.name: p.default for p in command.params}
    params |= {key: value for key, value in given.items() if value is not None}
    if params.get("out") is None:
        return None, False
    out = Path(params["out"]).resolve()
    if name == "train":  # models/<name>-<ecosystem>, beside others in the folder
        out = out / f"{params['name']}-*"
    return out, "overwrite" in params


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "yaml"],
    ids=[b.name for b in BLOCKS if b.language == "yaml"],
)
def test_yaml_block_is_a_valid_config(block, tmp_path):
    fields = yaml.safe_load(block.code)
    if "sources" in fields or "stac" in fields:
        IngestConfig.model_validate(fields)
    else:
        path = tmp_path / "config.yaml"
        path.write_text(block.code)
        load_train_config(path)


def test_commands_are_split_like_a_shell():
    assert commands('a --x "b c" \\\n    --y 1  # note\n\n# only a comment\nd') == [
        ["a", "--x", "b c", "--y", "1"],
        ["d"],
    ]
