"""How fast `predict` is against what the hardware allows: the I/O floor and the model floor.

A run builds a demo-like region of the requested size, trains a real model per ecosystem
(one epoch: timing needs the architecture, not good weights), keeps the requested share of
the grid as wetland, and measures in one process

* the I/O floor: reading the drivers ``predict`` reads and writing maps of the same size;
* the model floor: the same number of windows through the same ensembles from memory,
  batched, one torch thread per core with perfect scaling over the cores (measured on a
  sample of pixels, scaled to all of them);
* ``predict`` end to end;

and, for comparison, what users would write instead: one model call per pixel through
``xarray.apply_ufunc(vectorize=True)`` (timed on a sample, scaled), and every pixel of the
grid through the models (unmasked, the floor scaled to all pixels). It reports pixel-months
per second and ``predict / max(I/O floor, model floor)``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from upscale.artifact import load_model
from upscale.cube import open_cube, open_mask, write_store
from upscale.demo_region import DemoSpec, make_demo_region, write_demo_region
from upscale.engine import default_device
from upscale.schema import ECOSYSTEM_CODES, WETLAND, WETLAND_FRACTION
from upscale.training import TrainConfig


def thin_mask(mask_path: Path, share: float, out: Path, seed: int = 0) -> tuple[Path, int]:
    """Write a copy of a mask keeping wetland on about ``share`` of all pixels.

    The pixels kept are the mask's own wetland pixels, drawn at random, so they stay where
    wetland is (on the coast of the demo).
    """
    mask = open_mask(mask_path).load()
    rows, cols = np.nonzero(mask[WETLAND].values)
    keep = round(share * mask[WETLAND].size)
    if keep > len(rows):
        raise ValueError(
            f"the mask has wetland on {len(rows) / mask[WETLAND].size:.0%} of its pixels, "
            f"less than the {share:.0%} asked for"
        )
    drop = np.random.default_rng(seed).permutation(len(rows))[keep:]
    for name in (WETLAND, WETLAND_FRACTION):
        values = mask[name].values.copy()
        values[rows[drop], cols[drop]] = 0
        mask[name] = (mask[name].dims, values)
    return write_store(mask, out, overwrite=True), keep


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_bench(
    work: str | Path,
    *,
    ny: int = 128,
    nx: int = 168,
    years: int = 12,
    wetland_share: float = 0.10,
    tile: int = 64,
    sample: int = 256,
    status: Callable[[str], None] = lambda line: None,
) -> dict:
    """Measure ``predict`` against its floors on a generated region.

    Parameters
    ----------
    work
        Folder for the generated inputs and outputs.
    ny, nx, years
        Size of the region: pixels and years of monthly drivers.
    wetland_share
        Share of the grid kept as wetland (at most the demo's, about 25 %).
    tile
        Spatial tile size of the run.
    sample
        Pixels whose windows time the model floor.
    status
        Receives progress lines.

    Returns
    -------
    dict
        Sizes, seconds of each measurement, throughput, the ratio of ``predict`` to its
        floor, peak memory of the process and the device.
    """
    # Imported here: the API imports this module's neighbours, not the other way round.
    import upscale

    work = Path(work)
    status(f"generating a {ny} x {nx} region with {years} years of drivers")
    inputs = write_demo_region(make_demo_region(DemoSpec(ny=ny, nx=nx, years=years)), work / "in")
    status("training one-epoch ensembles (timing needs the architecture only)")
    models = upscale.train(
        inputs.sites,
        inputs.cube,
        work / "models",
        config=TrainConfig(epochs=1, folds=2),
        overwrite=True,
        status=lambda line: None,
    ).models
    mask, pixels = thin_mask(inputs.mask, wetland_share, work / "mask.zarr")
    cube = open_cube(inputs.cube, tile=tile)
    wetland = open_mask(mask, cube)[WETLAND].values
    loaded = {eco: load_model(folder) for eco, folder in models.items()}
    features = list(dict.fromkeys(f for m in loaded.values() for f in m.card.features))
    n_months = cube.sizes["time"]

    status("I/O floor: reading the drivers, writing maps of the same size")
    maps_like = cube[features[:3]].rename({f: f"map{k}" for k, f in enumerate(features[:3])})
    io_floor = _seconds(
        lambda: (
            cube[features].to_dataarray().sum().compute(),
            write_store(maps_like, work / "io.zarr", overwrite=True),
        )
    )

    status("model floor: the same windows through the ensembles, from memory")
    # One torch thread per core, all cores busy: the floor is one thread's time over the
    # cores (perfect scaling), a bound no tiling can beat.
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model_floor = 0.0
    series = cube[features].to_dataarray("feature").transpose("y", "x", "time", "feature")
    for eco, model in loaded.items():
        rows, cols = np.nonzero(wetland == ECOSYSTEM_CODES[eco])
        if len(rows) == 0:
            continue
        pick = np.random.default_rng(0).choice(len(rows), min(sample, len(rows)), replace=False)
        index = [features.index(f) for f in model.card.features]
        block = series.isel(y=("p", rows[pick]), x=("p", cols[pick]), feature=index).values.astype(
            "float32"
        )
        drivers = torch.from_numpy(block)
        seconds = _seconds(lambda model=model, d=drivers: model.predict_members(d))
        model_floor += seconds / len(pick) * len(rows) / cores
    torch.set_num_threads(threads)

    status("baseline: one model call per pixel through xarray.apply_ufunc(vectorize=True)")
    per_pixel = 0.0
    for eco, model in loaded.items():
        rows, cols = np.nonzero(wetland == ECOSYSTEM_CODES[eco])
        if len(rows) == 0:
            continue
        pick = np.random.default_rng(1).choice(
            len(rows), min(sample // 4, len(rows)), replace=False
        )
        index = [features[i] for i in [features.index(f) for f in model.card.features]]
        chosen = series.isel(y=("p", rows[pick]), x=("p", cols[pick])).sel(feature=index).load()
        seconds = _seconds(lambda model=model, px=chosen: _apply_per_pixel(model, px))
        per_pixel += seconds / len(pick) * len(rows)

    status("predict end to end")
    predict = _seconds(
        lambda: upscale.predict(
            inputs.cube, mask, list(models.values()), work / "maps.zarr", tile=tile, overwrite=True
        )
    )
    floor = max(io_floor, model_floor)
    return {
        "grid": {"ny": ny, "nx": nx, "months": n_months, "tile": tile},
        "wetland_pixels": pixels,
        "wetland_share": pixels / (ny * nx),
        "seconds": {"io_floor": io_floor, "model_floor": model_floor, "predict": predict},
        "baselines": {
            "apply_ufunc_per_pixel": per_pixel,
            # Every pixel of the grid through the models: the floor's windows, scaled.
            "unmasked": model_floor * ny * nx / pixels,
        },
        "pixel_months_per_second": pixels * n_months / predict,
        "predict_over_floor": predict / floor,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(default_device()),
        "machine": f"{platform.machine()}, {cores} cores",
    }


def _apply_per_pixel(model, pixels) -> None:
    """Run what users write first: a ufunc over pixels, one model call per pixel series."""

    def one_pixel(series: np.ndarray) -> np.ndarray:
        drivers = torch.from_numpy(np.array(series, dtype="float32"))[None]  # a writable copy
        return model.predict_series(drivers)[0].numpy()

    xr.apply_ufunc(
        one_pixel,
        pixels,
        input_core_dims=[["time", "feature"]],
        output_core_dims=[["window", "target"]],
        vectorize=True,
    ).compute()


def write_report(report: dict, path: str | Path) -> Path:
    """Write a bench report as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path
