"""Training and export killed with SIGKILL part-way, then started again, finish the job.

The child processes kill themselves at a chosen point (after the first model is saved,
after the first COG is written), so the test does not race the run.
"""

import signal
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from safetensors.torch import load_file

import upscale
from upscale.budgets.annual import export_layers
from upscale.demo_region import write_demo_region
from upscale.engine.tiles import flux_maps
from upscale.errors import OutputExistsError
from upscale.io.exports import EXPORT_PLAN, export_maps
from upscale.io.stores import open_maps, write_store
from upscale.learn.training import TrainConfig

pytestmark = pytest.mark.slow

CONFIG = {"epochs": 1, "folds": 3, "memory": 3, "reference_windows": 50}


def _run_until_killed(script: str, *arguments: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", script, *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr


def test_training_killed_after_one_model_resumes_with_the_other(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    out = tmp_path / "models"
    _run_until_killed(
        "import os, signal, sys\n"
        "import importlib\n"
        "models = importlib.import_module('upscale.api.train')\n"
        "from upscale.learn.training import TrainConfig\n"
        "save = models.save_model\n"
        "def save_and_die(*args, **kwargs):\n"
        "    save(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "models.save_model = save_and_die\n"
        f"models.train(*sys.argv[1:], config=TrainConfig(**{CONFIG}), status=print)\n",
        inputs.sites,
        inputs.cube,
        out,
    )
    assert (out / ".model.training.json").exists()
    assert (out / "model-mangrove" / "weights.safetensors").exists()
    assert not (out / "model-saltmarsh").exists()
    kept = (out / "model-mangrove" / "weights.safetensors").stat().st_mtime_ns

    # Each run in a fresh process: torch's thread settings, which earlier tests change in
    # this one, decide the last bits of trained weights.
    resumed = _train_in_process(inputs, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "keeping" in resumed.stdout and "model-mangrove" in resumed.stdout
    assert (out / "model-mangrove" / "weights.safetensors").stat().st_mtime_ns == kept
    assert (out / "model-saltmarsh" / "weights.safetensors").exists()
    assert not (out / ".model.training.json").exists()

    assert _train_in_process(inputs, tmp_path / "whole").returncode == 0
    for eco in ("mangrove", "saltmarsh"):  # the same models as an uninterrupted run
        weights = f"model-{eco}/weights.safetensors"
        got, expected = load_file(out / weights), load_file(tmp_path / "whole" / weights)
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[name], expected[name]) for name in got)
    with pytest.raises(OutputExistsError):  # finished: only --overwrite replaces it
        config = TrainConfig(**CONFIG)
        upscale.train(inputs.sites, inputs.cube, out, config=config, status=lambda line: None)


def _train_in_process(inputs, out) -> subprocess.CompletedProcess:
    script = (
        "import sys\n"
        "import upscale\n"
        "from upscale.learn.training import TrainConfig\n"
        f"upscale.train(*sys.argv[1:], config=TrainConfig(**{CONFIG}), status=print)\n"
    )
    arguments = [sys.executable, "-c", script, str(inputs.sites), str(inputs.cube), str(out)]
    return subprocess.run(arguments, capture_output=True, text=True, timeout=300)


@pytest.fixture
def maps_path(small_region, model_folders, tmp_path):
    cube = small_region.cube.chunk({"y": 8, "x": 8})
    return write_store(flux_maps(cube, small_region.mask, model_folders), tmp_path / "maps.zarr")


def test_export_killed_after_one_file_resumes_with_the_others(maps_path, tmp_path):
    folder = tmp_path / "cogs"
    _run_until_killed(
        "import os, signal, sys\n"
        "import upscale.io.exports as exports\n"
        "import upscale.io.geotiff as geotiff\n"
        "from upscale.budgets.annual import export_layers\n"
        "from upscale.io.stores import open_maps\n"
        "write = geotiff.write_cog\n"
        "def write_and_die(*args, **kwargs):\n"
        "    write(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "geotiff.write_cog = write_and_die\n"
        "maps = open_maps(sys.argv[1])\n"
        "layers = export_layers(maps, ('annual', 'monthly'))\n"
        "exports.export_maps(maps, layers, sys.argv[2])\n",
        maps_path,
        folder,
    )
    assert (folder / EXPORT_PLAN).exists()
    assert len(list(folder.glob("*.tif"))) == 1

    maps = open_maps(maps_path)
    layers = export_layers(maps, ("annual", "monthly"))
    paths = export_maps(maps, layers, folder)
    assert not (folder / EXPORT_PLAN).exists()
    whole = export_maps(maps, layers, tmp_path / "whole")
    assert [p.name for p in paths] == [p.name for p in whole] and len(paths) > 2
    for resumed, uninterrupted in zip(paths, whole, strict=True):
        with rasterio.open(resumed) as a, rasterio.open(uninterrupted) as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert a.descriptions == b.descriptions
    with pytest.raises(OutputExistsError):
        export_maps(maps, layers, folder)


def test_export_killed_before_its_netcdf_finishes_it_alone(maps_path, tmp_path):
    folder = tmp_path / "cogs"
    _run_until_killed(
        "import os, signal, sys\n"
        "import upscale.io.exports as exports\n"
        "import upscale.io.netcdf as netcdf\n"
        "from upscale.budgets.annual import export_layers\n"
        "from upscale.io.stores import open_maps\n"
        "netcdf.write_netcdf = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)\n"
        "maps = open_maps(sys.argv[1])\n"
        "exports.export_maps(maps, export_layers(maps), sys.argv[2], formats=('cog', 'netcdf'))\n",
        maps_path,
        folder,
    )
    cogs = {path: path.stat().st_mtime_ns for path in folder.glob("*.tif")}
    assert cogs and not (folder / "maps.nc").exists()

    maps = open_maps(maps_path)
    paths = export_maps(maps, export_layers(maps), folder, formats=("cog", "netcdf"))
    assert folder / "maps.nc" in paths and (folder / "maps.nc").exists()
    assert {path: path.stat().st_mtime_ns for path in folder.glob("*.tif")} == cogs
    assert not (folder / EXPORT_PLAN).exists()
