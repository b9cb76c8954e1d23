"""Benchmark: a budget of 100 regions in one pass against one region, on the demo maps.

Times `upscale.query` on the demo maps for one catalogue region and for 100 regions
(a 10 x 10 grid of overlapping boxes over the demo coast), by year and by month, and a
baseline that queries the 100 regions one at a time. The target for 100 regions in one
pass is less than 5x one region.

Run: ``.venv/bin/python benchmarks/query_regions.py [--maps upscale-demo/maps.zarr]``;
without ``--maps`` the demo is run first into a temporary folder.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import shapely

import upscale
from upscale.io.stores import open_maps


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Fastest of a few runs, in seconds: the machine's noise only ever adds time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def hundred_boxes(maps: Path) -> gpd.GeoDataFrame:
    """10 x 10 boxes over the maps' extent, each 1.5 cells of the lattice wide (they overlap)."""
    grid = open_maps(maps)
    west, east = float(grid["x"].min()), float(grid["x"].max())
    south, north = float(grid["y"].min()), float(grid["y"].max())
    dx, dy = (east - west) / 10, (north - south) / 10
    boxes = [
        shapely.box(west + i * dx, south + j * dy, west + (i + 1.5) * dx, south + (j + 1.5) * dy)
        for i in range(10)
        for j in range(10)
    ]
    names = [f"box {i:02d}" for i in range(100)]
    return gpd.GeoDataFrame({"name": names}, geometry=boxes, crs=grid.rio.crs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=Path, help="maps.zarr of the demo (default: run it)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.maps is None:
        work = Path(tempfile.mkdtemp(prefix="upscale-query-bench-"))
        atexit.register(shutil.rmtree, work, ignore_errors=True)  # several GB otherwise left
        args.maps = upscale.demo(work, status=lambda line: None).outputs["maps"]
    catalogue = Path(__file__).resolve().parents[1] / "regions"
    boxes = hundred_boxes(args.maps)

    print(f"maps: {args.maps}")
    for by in ("year", "month"):
        one = best_of(
            args.repeats,
            lambda by=by: upscale.query(args.maps, "Cape Sable", by=by, catalogue=catalogue),
        )
        many = best_of(args.repeats, lambda by=by: upscale.query(args.maps, boxes, by=by))
        looped = best_of(
            1,
            lambda by=by: [upscale.query(args.maps, boxes.iloc[[i]], by=by) for i in range(100)],
        )
        print(f"by {by}:")
        print(f"  1 region                      {one:7.2f} s")
        print(
            f"  100 regions in one pass       {many:7.2f} s  ratio {many / one:5.2f} (target < 5)"
        )
        print(
            f"  100 regions one at a time     {looped:7.2f} s  {looped / many:5.1f}x the one pass"
        )


if __name__ == "__main__":
    main()
