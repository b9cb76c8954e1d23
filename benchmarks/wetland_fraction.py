"""Benchmark: what `predict` costs as the wetland share of a grid falls (10 % vs 1 %).

Builds a demo-like region, trains real (one-epoch) ensembles on its towers, then keeps
10 % and 1 % of the grid as wetland (the demo's own wetland pixels, thinned at random, so
they stay on the coast but touch as many tiles as they can) and times `upscale.predict` on
each, in the same run. Tiles without wetland are neither read nor computed, so the cost
follows the wetland. The target of issue 7 is at most 0.2x for 1 % against 10 %.

Run: ``.venv/bin/python benchmarks/wetland_fraction.py [--ny 512 --nx 512 --years 20]``.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import upscale
from upscale.bench.suite import thin_mask, timing_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ny", type=int, default=512)
    parser.add_argument("--nx", type=int, default=512)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--tile", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="upscale-wetland-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # several GB otherwise left
    spec = upscale.DemoSpec(ny=args.ny, nx=args.nx, years=args.years)
    inputs = upscale.demo_inputs(work / "inputs", spec=spec)
    models = timing_models(inputs, work / "models")
    print(f"grid {args.ny} x {args.nx}, {12 * args.years} months, tiles of {args.tile}, cpu")
    seconds = {}
    for share in (0.10, 0.01):
        mask, pixels = thin_mask(inputs.mask, share, work / f"mask_{share}.zarr")
        start = time.perf_counter()
        upscale.predict(
            inputs.cube, mask, list(models.values()), work / f"maps_{share}.zarr", tile=args.tile
        )
        seconds[share] = time.perf_counter() - start
        print(f"  {share:>4.0%} wetland ({pixels} pixels)   predict {seconds[share]:7.2f} s")
    print(f"ratio 1 % / 10 %: {seconds[0.01] / seconds[0.10]:.2f} (target <= 0.2)")


if __name__ == "__main__":
    main()
