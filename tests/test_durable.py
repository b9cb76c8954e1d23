"""Durable outputs: one writer at a time, whole outputs swapped in, runs that resume.

The lock tests hold an output's lock in another process, killed with SIGKILL; the resume
tests kill a predict mid-way and start it again.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from upscale.demo_region import write_demo_region
from upscale.errors import InvalidCubeError, InvalidMapsError, OutputExistsError, OutputLockedError
from upscale.io.durable import (
    ResumeRecord,
    lock_path,
    output_lock,
    refuse_overwrite,
    resumable,
    staged,
    write_text,
)
from upscale.io.stores import open_maps, open_store, write_store
from upscale.learn.artifact import save_model

from .conftest import untrained_model


class Failed(Exception):
    """Stands for a writer that fails, or an output that fails its check."""


def test_a_staged_file_replaces_the_old_one_only_when_written(tmp_path):
    path = tmp_path / "table.csv"
    write_text(path, "old")
    with pytest.raises(Failed), staged(path, overwrite=True) as partial:
        partial.write_text("half")
        raise Failed
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no partial, no lock left
    with staged(path, overwrite=True, suffix=".npz") as partial:
        assert partial.name == "table.csv.partial.npz"
        partial.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_staged_folder_replaces_the_old_one_whole(tmp_path):
    path = tmp_path / "model"
    for name in ("old", "new"):
        with staged(path, overwrite=True) as partial:
            partial.mkdir()
            (partial / name).write_text(name)
    assert [p.name for p in path.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_staging_refuses_an_existing_output(tmp_path):
    path = tmp_path / "maps.nc"
    write_text(path, "finished")
    with pytest.raises(OutputExistsError, match=r"maps.nc exists; pass --overwrite"):
        with staged(path) as partial:
            partial.write_text("never")
    with pytest.raises(OutputExistsError, match=r"maps.nc: exist\(s\); pass --overwrite"):
        refuse_overwrite([path, tmp_path / "other.nc"], overwrite=False)
    refuse_overwrite([path], overwrite=True)
    assert path.read_text() == "finished"


def test_a_resumed_staging_keeps_its_partial_output(tmp_path):
    path = tmp_path / "maps.zarr"
    with pytest.raises(Failed), staged(path, resume=True) as partial:
        partial.mkdir()
        (partial / "row0").write_text("done")
        raise Failed
    with staged(path, resume=True) as partial:
        assert (partial / "row0").read_text() == "done"
        (partial / "row1").write_text("done")
    assert sorted(p.name for p in path.iterdir()) == ["row0", "row1"]


def test_a_record_resumes_its_own_plan_only(tmp_path):
    record = ResumeRecord(tmp_path / "run" / "plan.json", {"tile": 2}, parts=tmp_path / "run")
    assert not record.exists() and not record.resumes() and record.finished() == set()
    record.start()
    record.mark("y0")
    record.mark("y2")
    assert record.resumes() and record.finished() == {"y0", "y2"}
    other = ResumeRecord(record.file, {"tile": 4}, parts=record.parts)
    assert other.exists() and not other.resumes()
    record.clear()
    assert not record.parts.exists()


def test_a_run_of_several_outputs_resumes_with_those_left(tmp_path):
    outputs = [tmp_path / "a.tif", tmp_path / "b.tif"]
    marker = tmp_path / ".plan.json"
    with pytest.raises(Failed), resumable(marker, {"n": 2}, outputs, overwrite=False) as done:
        assert done == set()
        write_text(outputs[0], "a")
        raise Failed
    assert marker.exists()
    with resumable(marker, {"n": 2}, outputs, overwrite=False) as done:
        assert done == {outputs[0]}
        write_text(outputs[1], "b")
    assert not marker.exists()
    with pytest.raises(OutputExistsError, match="a.tif, .*b.tif: exist"):  # finished
        with resumable(marker, {"n": 2}, outputs, overwrite=False):
            pass
    with resumable(marker, {"n": 3}, outputs, overwrite=True) as done:
        assert done == set()


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
            "import sys, time; from upscale.io.durable import output_lock\n"
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
        "from upscale.io.durable import output_lock\n"
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


@pytest.mark.slow
def test_predict_killed_and_resumed_gives_the_uninterrupted_result(
    small_region, model_folders, tmp_path
):
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
    with pytest.raises(InvalidCubeError, match="incomplete store"):
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


@pytest.mark.slow
def test_readers_refuse_an_interrupted_store(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    import zarr

    group = zarr.open_group(inputs.mask, mode="r+")
    del group.attrs["upscale_complete"]
    with pytest.raises(InvalidCubeError, match="mask.zarr: an incomplete store .* run the command"):
        open_store(inputs.mask)
    with pytest.raises((InvalidCubeError, InvalidMapsError), match="incomplete store"):
        open_maps(inputs.mask)
