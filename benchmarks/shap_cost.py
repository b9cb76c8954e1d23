"""Benchmark: SHAP summary rasters against `predict` on the same region, in one run.

Writes the demo region, trains its default ensembles, then times `upscale.predict`
(maps.zarr) and the SHAP rasters (shap.zarr: expected gradients on sampled months of every
wetland pixel) on the same cube, mask and models, and prints the ratio. The target is at
most 20x.

Run: ``.venv/bin/python benchmarks/shap_cost.py [--months 4 --samples 16]``.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import upscale
from upscale.demo_region import make_demo_region, write_demo_region
from upscale.engine.shap_maps import shap_maps
from upscale.io.stores import open_cube, open_mask, write_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="upscale-shap-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # several GB otherwise left
    inputs = write_demo_region(make_demo_region(), work / "inputs")
    models = upscale.train(
        inputs.sites, inputs.cube, work / "models", status=lambda line: None
    ).models
    start = time.perf_counter()
    upscale.predict(inputs.cube, inputs.mask, list(models.values()), work / "maps.zarr")
    predict = time.perf_counter() - start

    cube = open_cube(inputs.cube)
    start = time.perf_counter()
    rasters = shap_maps(
        cube, open_mask(inputs.mask, cube), models, months=args.months, samples=args.samples
    )
    write_store(rasters, work / "shap.zarr")
    explain = time.perf_counter() - start
    pixels = int((open_mask(inputs.mask)["wetland"] > 0).sum())
    print(f"demo region: {pixels} wetland pixels, {cube.sizes['time']} months, 4-member ensembles")
    print(f"  predict (maps.zarr)                 {predict:7.1f} s")
    print(f"  SHAP rasters ({args.months} months x {args.samples} samples) {explain:7.1f} s")
    print(f"ratio SHAP rasters / predict: {explain / predict:5.1f} (target <= 20)")


if __name__ == "__main__":
    main()
