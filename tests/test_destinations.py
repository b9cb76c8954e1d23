"""Full and read-only destinations fail with one clear error, and leave no output behind.

Each test mounts a small tmpfs, which needs root (as in this project's CI); elsewhere they
skip, saying why.
"""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from upscale.budgets.annual import export_layers
from upscale.errors import OutputNotWritableError
from upscale.io.exports import export_maps
from upscale.io.stores import write_store


@contextmanager
def mounted(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({mount.stderr.strip()}); needs root")
    try:
        yield folder
    finally:
        # Lazily: dask threads may still be closing files after a write failed.
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _incompressible(size_mb: float) -> xr.Dataset:
    n = int(size_mb * 2**20 / 4 / 64 / 64)
    values = np.random.default_rng(0).random((n, 64, 64), dtype="float32")
    ds = xr.Dataset(
        {"GPP": (("time", "y", "x"), values)},
        coords={"time": np.arange(n), "y": np.arange(64.0)[::-1], "x": np.arange(64.0)},
    )
    return ds.rio.write_crs("EPSG:4326")


def test_a_full_disk_is_one_clear_error(tmp_path):
    with mounted(tmp_path / "small", "size=1m") as small:
        with pytest.raises(
            OutputNotWritableError,
            match=r"maps.zarr: cannot write there \(No space left on device\); free space",
        ):
            write_store(_incompressible(3), small / "maps.zarr")
        assert not (small / "maps.zarr").exists()  # nothing under the final name
        assert not (small / ".maps.zarr.lock").exists()


def test_a_read_only_destination_is_one_clear_error(small_region, tmp_path):
    with mounted(tmp_path / "readonly", "ro,size=1m") as readonly:
        with pytest.raises(
            OutputNotWritableError, match=r"maps.zarr: cannot write there \(Read-only file system\)"
        ):
            write_store(_incompressible(0.1), readonly / "maps.zarr")
        maps = small_region.cube[["TA"]].rename(TA="GPP")
        with pytest.raises(OutputNotWritableError, match="cogs: cannot write there"):
            export_maps(maps, export_layers(maps), readonly / "cogs")


def test_an_unreadable_input_inside_the_lock_is_not_called_an_output_error(tmp_path):
    from upscale.io.durable import output_lock

    unreadable = PermissionError(13, "Permission denied", str(tmp_path / "model" / "card.json"))
    with pytest.raises(PermissionError, match="card.json"):
        with output_lock(tmp_path / "maps.zarr"):
            raise unreadable
    with pytest.raises(OutputNotWritableError, match="maps.zarr: cannot write there"):
        with output_lock(tmp_path / "maps.zarr"):
            raise PermissionError(13, "Permission denied", str(tmp_path / "maps.zarr.partial"))


def test_a_file_in_the_way_is_one_clear_error_before_any_work(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(OutputNotWritableError, match=r"notes.txt is a file, not a folder; choose"):
        write_store(_incompressible(0.01), tmp_path / "notes.txt" / "maps.zarr")
    with pytest.raises(OutputNotWritableError, match=r"notes.txt is a file, not a Zarr store"):
        write_store(_incompressible(0.01), tmp_path / "notes.txt", overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "not a folder"


@pytest.mark.parametrize(
    ("named", "ours"),
    [
        ("new/maps.zarr/GPP/c/0", True),
        ("new/maps.zarr.partial.tiles/y0_x0", True),
        ("new/.maps.zarr.lock", True),
        ("new", True),  # the folder the output is to be made in
        ("new/maps.zarr2", False),
        ("model/card.json", False),
    ],
)
def test_which_errors_are_about_the_output(tmp_path, named, ours):
    from upscale.io.durable import _about

    error = PermissionError(13, "Permission denied", str(tmp_path / named))
    assert _about(error, tmp_path / "new" / "maps.zarr") is ours
