"""Benchmark: the tile engine against reading the inputs and against a per-pixel loop.

Builds a demo-like region of the requested size, trains a real (one-epoch) model per
ecosystem on its towers, then measures in the same run

* the I/O floor: reading the drivers `predict` reads and writing maps of the same size;
* `upscale.predict` end to end (tiles, wetland pixels only, batched windows, Zarr write);
* the loop users write first: one model call per wetland pixel, on a sample of pixels,
  extrapolated to all of them.

Run: ``.venv/bin/python benchmarks/predict_engine.py [--ny 128 --nx 168 --years 12]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import upscale
from upscale.artifact import load_model
from upscale.cube import open_cube, open_mask, write_store
from upscale.demo_region import DemoSpec, make_demo_region, write_demo_region
from upscale.schema import ECOSYSTEM_CODES, WETLAND
from upscale.training import TrainConfig


def timed(label: str, action) -> float:
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    print(f"  {label:<38} {seconds:8.2f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ny", type=int, default=128)
    parser.add_argument("--nx", type=int, default=168)
    parser.add_argument("--years", type=int, default=12)
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--sample", type=int, default=200, help="pixels of the per-pixel loop")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="upscale-bench-"))
    spec = DemoSpec(ny=args.ny, nx=args.nx, years=args.years)
    inputs = write_demo_region(make_demo_region(spec), work / "inputs")
    config = TrainConfig(epochs=1, folds=2)
    models = upscale.train(
        inputs.sites, inputs.cube, work / "models", config=config, status=lambda line: None
    ).models
    cube = open_cube(inputs.cube, tile=args.tile)
    mask = open_mask(inputs.mask, cube)
    wetland = mask[WETLAND].values
    n_pixels, n_months = int((wetland > 0).sum()), cube.sizes["time"]
    print(
        f"grid {args.ny} x {args.nx}, {n_months} months, {n_pixels} wetland pixels "
        f"({n_pixels / wetland.size:.0%}), tiles of {args.tile}, device cpu"
    )

    drivers = cube[list(load_model(models["mangrove"]).card.features)]
    io_floor = timed(
        "I/O floor (read drivers, write maps)",
        lambda: write_store(
            drivers.to_dataarray("feature").isel(feature=slice(0, 3)).to_dataset("feature"),
            work / "io.zarr",
            overwrite=True,
        ),
    )
    engine = timed(
        "upscale.predict",
        lambda: upscale.predict(
            inputs.cube,
            inputs.mask,
            list(models.values()),
            work / "maps.zarr",
            tile=args.tile,
            overwrite=True,
        ),
    )

    rng = np.random.default_rng(0)
    series = drivers.to_dataarray("feature").transpose("y", "x", "time", "feature").values
    sample = []
    for ecosystem, folder in models.items():
        rows, cols = np.nonzero(wetland == ECOSYSTEM_CODES[ecosystem])
        pick = rng.choice(len(rows), size=min(args.sample // 2, len(rows)), replace=False)
        sample.append((load_model(folder), rows[pick], cols[pick]))

    def per_pixel_loop() -> None:
        for model, rows, cols in sample:
            for row, col in zip(rows, cols, strict=True):
                model.predict_series(torch.from_numpy(series[row, col][None]))

    looped = timed(f"per-pixel loop on {sum(len(r) for _, r, _ in sample)} pixels", per_pixel_loop)
    per_pixel = looped / sum(len(r) for _, r, _ in sample) * n_pixels
    print(f"  {'per-pixel loop, extrapolated':<38} {per_pixel:8.2f} s")
    print(f"predict: {n_pixels * n_months / engine / 1e6:.2f} M pixel-months/s")
    print(f"ratio predict / I/O floor:        {engine / io_floor:6.1f}")
    print(f"ratio per-pixel loop / predict:   {per_pixel / engine:6.1f}")


if __name__ == "__main__":
    main()
