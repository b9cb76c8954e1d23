import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from upscale.artifact import save_model
from upscale.cube import open_store, write_store
from upscale.errors import OutputLockedError
from upscale.locking import lock_path, output_lock

from .conftest import untrained_model


def _dataset() -> xr.Dataset:
    values = np.arange(12, dtype="float32").reshape(3, 4)
    ds = xr.Dataset({"GPP": (("y", "x"), values)}, coords={"y": [3.0, 2, 1], "x": [0.0, 1, 2, 3]})
    return ds.rio.write_crs("EPSG:4326")


def test_a_second_writer_of_the_same_store_is_refused(tmp_path):
    path = tmp_path / "maps.zarr"
    with output_lock(path):
        with pytest.raises(
            OutputLockedError, match=rf"maps.zarr is being written by upscale pid {os.getpid()}"
        ):
            write_store(_dataset(), path)
    assert not path.exists()  # nothing half-written
    write_store(_dataset(), path)  # released: the next run writes
    np.testing.assert_array_equal(open_store(path)["GPP"], _dataset()["GPP"])


def test_a_model_folder_being_written_is_refused(tmp_path):
    with output_lock(tmp_path / "model"), pytest.raises(OutputLockedError, match="model is being"):
        save_model(untrained_model("mangrove"), tmp_path / "model")


def test_a_killed_writer_never_blocks_the_next_run(tmp_path):
    path = tmp_path / "maps.zarr"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from upscale.locking import output_lock\n"
            "with output_lock(sys.argv[1]):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=f"upscale pid {holder.pid}"):
            write_store(_dataset(), path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(path).exists()  # left behind by the killed run, yet not held
    write_store(_dataset(), path)
    assert open_store(path)["GPP"].shape == (3, 4)
