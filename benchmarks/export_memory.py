"""Benchmark: peak memory of writing one COG from a lazy map against from one held in memory.

`upscale export` and the SHAP COGs write each layer with `upscale.io.geotiff.write_cog`, which
computes a lazy layer chunk by chunk into a tiled GeoTIFF and lets GDAL copy that into a
COG. The baseline, measured in the same run, computes the layer into memory first, as the
export did before, and gives it to the same function: the whole ``(band, y, x)`` raster,
and the copies made of it on the way, are in memory at once. Each runs in a process of its
own, so that its peak resident memory is its own.

Run: ``.venv/bin/python benchmarks/export_memory.py [--size 2048 --bands 48]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

WRITE = """
import json, sys, time
from pathlib import Path
import dask.array as da
import numpy as np
import xarray as xr
import rioxarray  # noqa: F401
from upscale.bench.suite import peak_memory_mb
from upscale.io.geotiff import write_cog

size, bands, mode, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = da.arange(size, chunks=64, dtype="float32")[:, None]  # tiles of 64, as predict
cols = da.arange(size, chunks=64, dtype="float32")[None, :]
smooth = da.sin(rows / 97) * da.cos(cols / 89)  # compresses as maps do, unlike noise
layer = da.stack([smooth + band for band in range(bands)])
step = 1 / size
data = xr.DataArray(
    layer,
    dims=("band", "y", "x"),
    coords={"y": 1 - step * (np.arange(size) + 0.5), "x": step * (np.arange(size) + 0.5)},
    attrs={"units": "gC m-2 d-1"},
).rio.write_crs("EPSG:4326")
start = time.perf_counter()
layers = data if mode == "lazy" else data.compute()
write_cog(layers, [f"b{k}" for k in range(bands)], Path(out))
print(json.dumps([time.perf_counter() - start, peak_memory_mb()]))
"""


def run(size: int, bands: int, mode: str, out: Path) -> tuple[float, float]:
    """Seconds and peak memory (MB) of one write, in a fresh process."""
    arguments = [sys.executable, "-c", WRITE, str(size), str(bands), mode, str(out)]
    done = subprocess.run(arguments, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the {mode} write failed:\n{done.stderr[-2000:]}")
    seconds, peak = json.loads(done.stdout.splitlines()[-1])
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="pixels per side")
    parser.add_argument("--bands", type=int, default=48, help="bands (months or years)")
    args = parser.parse_args()
    raster_mb = args.size**2 * args.bands * 4 / 2**20
    print(f"one COG of {args.bands} x {args.size} x {args.size} float32 ({raster_mb:.0f} MB)")
    with tempfile.TemporaryDirectory(prefix="upscale-export-bench-") as work:
        held_s, held_mb = run(args.size, args.bands, "computed", Path(work) / "held.tif")
        lazy_s, lazy_mb = run(args.size, args.bands, "lazy", Path(work) / "lazy.tif")
    print(f"  baseline, raster in memory   {held_s:6.1f} s  peak {held_mb:6.0f} MB")
    print(f"  write_cog, chunk by chunk    {lazy_s:6.1f} s  peak {lazy_mb:6.0f} MB")
    print(f"  peak memory: {lazy_mb / held_mb:.2f}x the baseline; time {lazy_s / held_s:.2f}x")


if __name__ == "__main__":
    main()
