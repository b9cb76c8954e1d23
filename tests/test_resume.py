"""A predict killed with SIGKILL mid-way, started again, finishes only the missing rows."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from upscale.cube import open_maps, open_store
from upscale.demo_region import write_demo_region
from upscale.errors import CubeError, MapsError

pytestmark = pytest.mark.slow


def predict_command(inputs, models, out):
    return [
        sys.executable,
        "-c",
        "from upscale.cli import app; app()",
        "predict",
        "--cube",
        str(inputs.cube),
        "--mask",
        str(inputs.mask),
        "--model",
        str(models["mangrove"]),
        "--model",
        str(models["saltmarsh"]),
        "--out",
        str(out),
        "--tile",
        "2",
    ]


def test_kill_and_resume_gives_the_uninterrupted_result(small_region, model_folders, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    out = tmp_path / "maps.zarr"
    tiles = tmp_path / "maps.zarr.partial.tiles"
    run = subprocess.Popen(predict_command(inputs, model_folders, out), start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if tiles.exists() and len(list(tiles.glob("y*"))) >= 2:
            break
        time.sleep(0.02)
    assert run.poll() is None, "predict finished before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    written = len(list(tiles.glob("y*")))
    total = 10  # rows of tiles: 20 pixels in tiles of 2
    assert 2 <= written < total
    assert not out.exists()  # nothing under the final name
    with pytest.raises(CubeError, match="incomplete store"):
        open_store(tmp_path / "maps.zarr.partial")

    resumed = subprocess.run(
        predict_command(inputs, model_folders, out), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not tiles.exists()
    whole = tmp_path / "whole.zarr"
    subprocess.run(predict_command(inputs, model_folders, whole), check=True, timeout=300)
    a, b = open_maps(out), open_maps(whole)
    for name in ("GPP", "RE", "NEE", "GPP_std", "doa_distance", "wetland_fraction"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_readers_refuse_an_interrupted_store(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    import zarr

    group = zarr.open_group(inputs.mask, mode="r+")
    del group.attrs["upscale_complete"]
    with pytest.raises(CubeError, match="mask.zarr: an incomplete store .* run the command"):
        open_store(inputs.mask)
    with pytest.raises((CubeError, MapsError), match="incomplete store"):
        open_maps(inputs.mask)
