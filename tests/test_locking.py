import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    coords = {"y": [3.0, 2, 1], "x": [0.0, 1, 2, 3]}
    return xr.Dataset({"GPP": (("y", "x"), values)}, coords=coords).rio.write_crs("EPSG:4326")


@contextmanager
def held_elsewhere(output: Path) -> Iterator[subprocess.Popen]:
    """Hold the lock of ``output`` in another process, killed (SIGKILL) at the end."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from upscale.locking import output_lock\n"
            "with output_lock(sys.argv[1]):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(output),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_second_writer_of_the_same_store_is_refused(tmp_path):
    path = tmp_path / "maps.zarr"
    with held_elsewhere(path) as holder:
        with pytest.raises(
            OutputLockedError, match=rf"maps.zarr is being written by upscale pid {holder.pid}"
        ):
            write_store(_dataset(), path)
        assert not path.exists()  # nothing half-written
    assert lock_path(path).exists()  # the killed holder left its file, but not its lock
    write_store(_dataset(), path)
    np.testing.assert_array_equal(open_store(path)["GPP"], _dataset()["GPP"])
    assert not lock_path(path).exists()  # a finished run removes its lock file


def test_a_model_folder_being_written_is_refused(tmp_path):
    with (
        held_elsewhere(tmp_path / "model"),
        pytest.raises(OutputLockedError, match="model is being"),
    ):
        save_model(untrained_model("mangrove"), tmp_path / "model")


def test_the_lock_is_reentrant_within_a_run(tmp_path):
    path = tmp_path / "maps.zarr"
    with output_lock(path):  # a command holds it from its start ...
        write_store(_dataset(), path)  # ... and the writer takes it again
    with held_elsewhere(path), pytest.raises(OutputLockedError):
        write_store(_dataset(), path, overwrite=True)  # released by the command: not held here


def test_predict_is_refused_before_it_loads_anything(tmp_path):
    from upscale import predict

    out = tmp_path / "maps.zarr"
    with held_elsewhere(out), pytest.raises(OutputLockedError, match="pid"):
        predict(tmp_path / "no-cube.zarr", tmp_path / "no-mask.zarr", [tmp_path / "m"], out)


def test_never_two_holders_while_lock_files_come_and_go(tmp_path):
    # Several processes take and release the lock as fast as they can; each run removes
    # its lock file, so a run may lock a file that was just removed. Whoever holds the
    # lock creates `inside` exclusively: a second holder at the same time would fail.
    script = (
        "import os, sys, time\n"
        "from upscale.errors import OutputLockedError\n"
        "from upscale.locking import output_lock\n"
        "output, inside = sys.argv[1], sys.argv[1] + '.inside'\n"
        "held = clashes = 0\n"
        "end = time.monotonic() + 2\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        "        with output_lock(output):\n"
        "            try:\n"
        "                os.close(os.open(inside, os.O_CREAT | os.O_EXCL))\n"
        "            except FileExistsError:\n"
        "                clashes += 1\n"
        "                continue\n"
        "            held += 1\n"
        "            os.unlink(inside)\n"
        "    except OutputLockedError:\n"
        "        pass\n"
        "print(held, clashes)\n"
    )
    output = tmp_path / "maps.zarr"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(output)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    counts = [tuple(map(int, run.communicate(timeout=60)[0].split())) for run in runs]
    assert sum(held for held, _ in counts) > 20  # the lock changed hands many times
    assert all(clashes == 0 for _, clashes in counts)
