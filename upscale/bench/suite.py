"""How fast `predict` is against what the hardware allows: the I/O floor and the model floor.

A run builds a demo-like region of the requested size, trains real ensembles (the default
configuration, one epoch: timing needs the architecture, not good weights), keeps the
requested share of the grid as wetland, and measures in one run

* the I/O floor: the tile engine reading the drivers ``predict`` reads and writing as many
  map layers as ``predict`` writes, with no model;
* the model floor: the model's own arithmetic from memory, as ``predict`` does it (every
  member over every window, or over whole series for a streaming net, and the domain
  distance), on every core (a thread per core with the torch threads of an engine's tile
  each), timed on a sample of pixels and scaled to all of them;
* ``predict`` end to end, in a process of its own so that its peak memory is its own;
* the SHAP summary rasters of ``explain``;

and what users would write instead, each timed on a sample and scaled: one model call per
pixel through ``xarray.apply_ufunc(vectorize=True)``, an xbatcher-fed loop, and the engine
over every pixel (unmasked). It reports pixel-months per second, ``predict`` over its floor
(the sum of the two floors on a CPU, whose cores do both; the slower of them on a GPU, which
runs the model beside the CPU's I/O) and over the slower floor alone, and each baseline's
time over ``predict``, for the default architecture.

The floors and ``predict`` are also measured for every registered architecture at memories
of 6 and 12 months, with each one's speed-up over the windowed LSTM of the same memory: a
streaming net ([`StreamingNet`][upscale.learn.nets.streaming.StreamingNet]) computes each month
once where a windowed one computes it L times. The boosted trees
([`BoostedTrees`][upscale.learn.nets.trees.BoostedTrees]), trained as the preset says (their
size, not an epoch count, sets their speed), are the peer line: the model family of the
tree-based upscaling products, timed in the same run.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from dask.system import CPU_COUNT

from upscale.demo_region import DemoPaths, DemoSpec, make_demo_region, write_demo_region
from upscale.engine.shap_maps import shap_maps
from upscale.engine.tiles import flux_maps, pick_device, prepare_run
from upscale.errors import InvalidConfigError
from upscale.io.stores import open_cube, open_mask, write_store
from upscale.learn.artifact import Model, load_model
from upscale.learn.config import load_train_config, presets
from upscale.learn.nets import (
    DEFAULT_ARCHITECTURE,
    NETS,
    StreamingNet,
    available,
    check_architecture,
    is_tree_ensemble,
)
from upscale.learn.training import TrainConfig
from upscale.options import OPTIONS, get_options
from upscale.progress import Status
from upscale.schema import ECOSYSTEM_CODES, WETLAND, WETLAND_FRACTION, cover_name

MANGROVE = cover_name("mangrove")

WINDOWS_PER_BATCH = 2048
"""Windows per forward pass of the model floor and the baselines (fastest on CPU)."""

BENCH_MEMORIES = (6, 12)
"""Memory lengths (months) at which every architecture is timed."""


def thin_mask(mask_path: Path, share: float, out: Path, seed: int = 0) -> tuple[Path, int]:
    """Write a copy of a mask keeping wetland on about ``share`` of all pixels.

    The pixels kept are the mask's own wetland pixels, drawn at random, so they stay where
    wetland is (on the coast of the demo) and touch as many tiles as they can: the hardest
    case for skipping tiles.
    """
    mask = open_mask(mask_path).load()
    rows, cols = np.nonzero(mask[WETLAND].values)
    keep = round(share * mask[WETLAND].size)
    if keep == 0:
        raise ValueError(f"{share:.1%} of {mask[WETLAND].size} pixels keeps none; raise either")
    if keep > len(rows):
        raise ValueError(
            f"the mask has wetland on {len(rows) / mask[WETLAND].size:.0%} of its pixels, "
            f"less than the {share:.0%} asked for"
        )
    drop = np.random.default_rng(seed).permutation(len(rows))[keep:]
    for name in mask.data_vars:
        values = mask[name].values.copy()
        values[rows[drop], cols[drop]] = 0
        mask[name] = (mask[name].dims, values)
    return write_store(mask, out, overwrite=True), keep


def timing_models(
    inputs: DemoPaths,
    folder: Path,
    architecture: str = DEFAULT_ARCHITECTURE,
    memory: int | None = None,
) -> dict[str, Path]:
    """Train one-epoch ensembles on a generated region: timing needs the architecture only.

    Boosted trees have no epochs: they grow as their preset says, stopping early as in any
    training, since their size is what sets their speed.

    Parameters
    ----------
    inputs
        The generated region.
    folder
        Where the models go.
    architecture
        A registered architecture, with its preset's settings where it has one.
    memory
        Memory in months; by default the preset's (or the default configuration's).

    Returns
    -------
    dict
        Ecosystem -> model folder, trained for one epoch.
    """
    # Imported here: the API imports this module's neighbours, not the other way round.
    import upscale

    overrides = {"epochs": 1} | ({"memory": memory} if memory else {})
    if architecture in presets():
        config = load_train_config(architecture, **overrides)
    else:
        config = TrainConfig(architecture=architecture, **overrides)
    return upscale.train(
        inputs.sites,
        inputs.cube,
        folder,
        config=config,
        overwrite=True,
        status=lambda line: None,
    ).models


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
    explain: bool = True,
    architectures: Sequence[str] | None = None,
    status: Status = lambda line: None,
) -> dict:
    """Measure ``predict`` against its floors and the baselines on a generated region.

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
        Pixels per ecosystem whose windows time the model floor and the baselines.
    explain
        Also time the SHAP summary rasters.
    architectures
        Architectures timed at each of [`BENCH_MEMORIES`][upscale.bench.suite.BENCH_MEMORIES];
        by default every registered one. The default architecture (the windowed LSTM), which
        the speed-ups are measured against, is always timed.
    status
        Receives progress lines.

    Returns
    -------
    dict
        For the default architecture: sizes, seconds of each measurement, the baselines'
        seconds and their ratio to ``predict``, throughput, ``predict`` over its floor, the
        peak memory of the ``predict`` process and the device. Under ``architectures``, the
        same measurements per architecture and memory with the speed-ups over the LSTM;
        ``peer`` names the boosted trees among them (None when they were not timed), the
        model family of the tree-based upscaling products, whose rates are the peer line of
        the nets'.

    Raises
    ------
    InvalidConfigError
        For an architecture that is not registered.
    """
    work = Path(work)
    try:
        timed_architectures = [
            check_architecture(name)
            for name in dict.fromkeys([DEFAULT_ARCHITECTURE, *(architectures or NETS)])
        ]
    except ValueError as err:
        raise InvalidConfigError(str(err)) from None
    if architectures is None:
        missing = [name for name in timed_architectures if not available(name)]
        if missing:
            status(f"{', '.join(missing)}: not installed (pip install 'upscale[trees]'), left out")
        timed_architectures = [name for name in timed_architectures if name not in missing]
    peer = next((name for name in timed_architectures if is_tree_ensemble(name)), None)
    status(f"generating a {ny} x {nx} region with {years} years of drivers")
    inputs = write_demo_region(make_demo_region(DemoSpec(ny=ny, nx=nx, years=years)), work / "in")
    mask, pixels = thin_mask(inputs.mask, wetland_share, work / "mask.zarr")
    cube = open_cube(inputs.cube, tile=tile)
    wetland = open_mask(mask, cube)
    device = torch.device(pick_device())  # the floors and baselines run where predict runs
    series = cube[list(cube.data_vars)].to_dataarray("feature")
    series = series.transpose("y", "x", "time", "feature")
    n_months = cube.sizes["time"]
    codes = wetland[WETLAND].values
    bench = _Bench(
        work,
        inputs.cube,
        mask,
        device,
        tile,
        samples={eco: _sample_pixels(series, codes, eco, sample) for eco in ECOSYSTEM_CODES},
        pixels={eco: int((codes == code).sum()) for eco, code in ECOSYSTEM_CODES.items()},
    )

    status("training one-epoch ensembles (timing needs the architecture only)")
    headline_run = (DEFAULT_ARCHITECTURE, BENCH_MEMORIES[0])
    models = timing_models(inputs, work / "models", *headline_run)
    loaded = {eco: load_model(folder).to(device) for eco, folder in models.items()}

    status("I/O floor: the tile engine reading the drivers and writing the maps, no model")
    io_floor = _seconds(lambda: _io_floor(cube, wetland, models, loaded, work / "io.zarr"))

    status(f"{DEFAULT_ARCHITECTURE} L={BENCH_MEMORIES[0]}: model floor and predict end to end")
    headline = bench.measure(models, io_floor, "maps")
    predict = headline["seconds"]["predict"]
    seconds = {"io_floor": io_floor} | headline["seconds"]
    if explain:
        status("explain: SHAP summary rasters, on the first rows of tiles (scaled)")
        band = _first_rows(wetland[WETLAND].values > 0, tile, share=1 / 8)
        explained = int((wetland[WETLAND].isel(y=band) > 0).sum())
        seconds["explain_rasters"] = _seconds(
            lambda: write_store(
                shap_maps(cube.isel(y=band), wetland.isel(y=band), models),
                work / "shap.zarr",
                overwrite=True,
            )
        ) * (pixels / explained)

    status("baselines: per-pixel apply_ufunc, an xbatcher loop, the engine unmasked")
    if not find_spec("xbatcher"):
        status("xbatcher is not installed (pip install 'upscale[bench]'): its baseline is left out")
    baselines = bench.baselines(loaded)
    # As many tiles as dask has threads, so that the crop runs on every core as a whole
    # unmasked grid would.
    crop = {"y": slice(0, min(tile, ny)), "x": slice(0, min(CPU_COUNT * tile, nx))}
    baselines["unmasked"] = _seconds(
        lambda: _unmasked(cube.isel(crop), wetland.isel(crop), models, work / "unmasked.zarr")
    ) * (ny * nx / (crop["y"].stop * crop["x"].stop))

    timed = {}
    for architecture in timed_architectures:
        for memory in BENCH_MEMORIES:
            if (architecture, memory) == headline_run:
                timed[headline_run] = headline
                continue
            status(f"{architecture} L={memory}: training, model floor and predict end to end")
            label = f"{architecture}-{memory}"
            folders = timing_models(inputs, work / f"models-{label}", architecture, memory)
            timed[architecture, memory] = bench.measure(folders, io_floor, f"maps-{label}")
    return {
        "grid": {"ny": ny, "nx": nx, "months": n_months, "tile": tile},
        "wetland_pixels": pixels,
        "wetland_share": pixels / (ny * nx),
        "ensemble_members": {eco: len(m.members) for eco, m in loaded.items()},
        "architecture": {"name": DEFAULT_ARCHITECTURE, "memory": BENCH_MEMORIES[0]},
        "seconds": seconds,
        "baselines": baselines,
        "baseline_over_predict": {name: s / predict for name, s in baselines.items()},
        "pixel_months_per_second": pixels * n_months / predict,
        "predict_over_floor": headline["predict_over_floor"],
        "predict_over_slowest_floor": headline["predict_over_slowest_floor"],
        "peak_memory_mb": headline["peak_memory_mb"],
        "architectures": _speedups(timed, pixels * n_months),
        "speedups_over": DEFAULT_ARCHITECTURE,
        "peer": peer,
        "device": str(device),
        "machine": f"{platform.machine()}, {CPU_COUNT} cores",
    }


def _floor(io_floor: float, model_floor: float, device: torch.device) -> float:
    """Return the least time ``predict`` can take, given its two floors.

    On a GPU the model runs beside the CPU's reading and writing, so the slower of the two
    sets the pace. On a CPU both keep every core busy, so neither hides the other: the
    floor is their sum.
    """
    return max(io_floor, model_floor) if device.type == "cuda" else io_floor + model_floor


def _speedups(timed: dict[tuple[str, int], dict], pixel_months: int) -> dict[str, dict]:
    """Arrange the measurements per architecture and memory, with rates and speed-ups.

    Rates are pixel-months per second of the nets alone (the architecture's own speed), of
    the model floor (the nets and the domain distance, which every architecture computes
    alike) and of ``predict`` end to end; each speed-up is the default architecture's time
    (the windowed LSTM) at the same memory over the architecture's.
    """
    out: dict[str, dict] = {}
    for (architecture, memory), measured in timed.items():
        baseline = timed[DEFAULT_ARCHITECTURE, memory]["seconds"]
        own = measured["seconds"]
        rates = {"nets": "nets", "model": "model_floor", "predict": "predict"}
        out.setdefault(architecture, {})[f"L{memory}"] = (
            {"streaming": measured["streaming"], "seconds": own}
            | {
                f"{rate}_pixel_months_per_second": pixel_months / own[k]
                for rate, k in rates.items()
            }
            | {f"{rate}_speedup": baseline[k] / own[k] for rate, k in rates.items()}
            | {
                key: measured[key]
                for key in (
                    "predict_over_floor",
                    "predict_over_slowest_floor",
                    "peak_memory_mb",
                    "trees_kept",
                )
                if key in measured
            }
        )
    return out


@dataclass
class _Bench:
    """The region and settings shared by every measurement of one bench run."""

    work: Path
    cube_path: Path
    mask_path: Path
    device: torch.device
    tile: int
    samples: dict[str, xr.DataArray]
    """Ecosystem -> the sampled pixels' drivers ``(p, time, feature)``, read once."""
    pixels: dict[str, int]
    """Ecosystem -> its wetland pixels."""

    def _samples(self, loaded: dict[str, Model]) -> dict[str, torch.Tensor]:
        """Each model's sampled pixels as raw drivers ``(P, T, F)`` in its card's order."""
        return {
            eco: torch.from_numpy(
                self.samples[eco].sel(feature=model.card.features).values.astype("float32")
            ).to(self.device)
            for eco, model in loaded.items()
        }

    def _pixels(self, ecosystem: str) -> int:
        return self.pixels[ecosystem]

    def measure(self, models: dict[str, Path], io_floor: float, label: str) -> dict:
        """Time the model floor and ``predict`` (writing ``<label>.zarr``) of ensembles."""
        loaded = {eco: load_model(folder).to(self.device) for eco, folder in models.items()}
        samples = self._samples(loaded)
        # On CPU every core runs nets, as dask's threads do (CPU_COUNT counts affinity and
        # cgroup limits); a GPU runs them from one thread.
        threads = 1 if self.device.type == "cuda" else CPU_COUNT
        parts = {"nets": 0.0, "domain_distance": 0.0}
        for eco, model in loaded.items():
            if len(samples[eco]):
                for name, seconds in _model_floor(model, samples[eco], threads).items():
                    parts[name] += seconds * self._pixels(eco) / len(samples[eco])
        model_floor = sum(parts.values())
        predict, peak_mb = predict_in_process(
            self.cube_path,
            self.mask_path,
            list(models.values()),
            self.work / f"{label}.zarr",
            self.tile,
        )
        measured = {
            "seconds": {"model_floor": model_floor, "predict": predict} | parts,
            "predict_over_floor": predict / _floor(io_floor, model_floor, self.device),
            "predict_over_slowest_floor": predict / max(io_floor, model_floor),
            "peak_memory_mb": peak_mb,
            "streaming": all(isinstance(m.members[0].net, StreamingNet) for m in loaded.values()),
        }
        kept = [f.trees for m in loaded.values() for f in m.card.tree_files]
        if kept:  # a tree model's speed is its size: trees per member and flux, on average
            measured["trees_kept"] = sum(kept) / len(kept)
        return measured

    def baselines(self, loaded: dict[str, Model]) -> dict[str, float]:
        """Seconds of the loops users write instead, timed on the samples and scaled."""
        loops = {"apply_ufunc_per_pixel": _apply_per_pixel}
        if find_spec("xbatcher"):
            loops["xbatcher_loop"] = _xbatcher_loop
        baselines = dict.fromkeys(loops, 0.0)
        for eco, chosen in self._samples(loaded).items():
            if len(chosen) == 0:
                continue
            for name, loop in loops.items():
                start = time.perf_counter()
                done = loop(loaded[eco], chosen)  # pixels it went through
                _synchronize(self.device)
                baselines[name] += (time.perf_counter() - start) * self._pixels(eco) / done
        return baselines


def _first_rows(wetland: np.ndarray, tile: int, share: float) -> slice:
    """Return the first rows of tiles that hold at least ``share`` of the wetland pixels."""
    per_row = np.add.reduceat(wetland.sum(axis=1), np.arange(0, wetland.shape[0], tile))
    rows = int(np.searchsorted(np.cumsum(per_row), share * wetland.sum())) + 1
    return slice(0, rows * tile)


def _sample_pixels(
    series: xr.DataArray, codes: np.ndarray, ecosystem: str, size: int
) -> xr.DataArray:
    """Drivers ``(p, time, feature)`` of up to ``size`` random pixels of one ecosystem, loaded."""
    rows, cols = np.nonzero(codes == ECOSYSTEM_CODES[ecosystem])
    pick = np.random.default_rng(0).permutation(len(rows))[:size]
    return series.isel(y=("p", rows[pick]), x=("p", cols[pick])).load()


def _model_floor(model: Model, drivers: torch.Tensor, threads: int) -> dict[str, float]:
    """Seconds of the model's arithmetic on ``drivers``, all cores busy, as ``predict`` does it.

    Timed apart: the nets (every member over every window, whole series for a streaming net)
    and the domain distance, which is the same arithmetic whatever the architecture. Both in
    ``predict``'s batches, from memory: no reading, writing or ensemble statistics. Each of
    ``threads`` threads, with the torch threads of an engine's tile (the ``threads`` option,
    [`set_options`][upscale.options.set_options]), runs the whole job; the time of one copy is
    the wall time over the threads, so no thread waits on an uneven share.

    Returns
    -------
    dict
        ``nets`` and ``domain_distance`` seconds.
    """
    jobs = {
        "nets": lambda: model.predict_members(drivers, batch_size=WINDOWS_PER_BATCH),
        "domain_distance": lambda: model.domain_distance(drivers, batch_size=WINDOWS_PER_BATCH),
    }
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(OPTIONS["threads"])
    try:
        seconds = {}
        for name, job in jobs.items():
            job()  # warm-up: the first call of a net allocates its buffers
            with ThreadPoolExecutor(threads) as pool:
                start = time.perf_counter()
                list(pool.map(lambda _, job=job: job(), range(threads)))
                _synchronize(drivers.device)
                seconds[name] = (time.perf_counter() - start) / threads
        return seconds
    finally:
        torch.set_num_threads(torch_threads)


def _synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that the clock counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _io_tile(
    drivers: np.ndarray, wetland: np.ndarray, *, layers: int, origin: tuple[int, int]
) -> np.ndarray:
    """Copy a tile's wetland drivers into map layers: what the engine reads and writes."""
    out = np.full((layers, *drivers.shape[1:]), np.nan, dtype="float32")
    rows, cols = np.nonzero(wetland)
    out[:, :, rows, cols] = np.resize(
        drivers[:, :, rows, cols], (layers, *out.shape[1:2], len(rows))
    )
    return out


def _io_floor(cube, wetland, models, loaded: dict[str, Model], out: Path) -> None:
    """Read the tiles ``predict`` reads and write as many layers as it writes, resumably."""
    run = prepare_run(cube, wetland, models, "cpu")
    n_targets = len(next(iter(loaded.values())).card.targets)
    channels = 2 * n_targets + 1  # means, spreads and the domain distance
    tiles = run.map_tiles(_io_tile, channels, keep_time=True, layers=channels)
    layers = {f"layer{k}": (("time", "y", "x"), tiles[k]) for k in range(channels)}
    maps = xr.Dataset(layers, coords={d: cube[d] for d in ("time", "y", "x")})
    write_store(maps.rio.write_crs(cube.rio.crs), out, overwrite=True, resume=True)


def predict_in_process(cube: Path, mask: Path, models: list[Path], out: Path, tile: int):
    """Run ``upscale.predict`` in a fresh process; return its seconds and peak memory (MB).

    The process runs under this one's options ([`get_options`][upscale.options.get_options]).
    """
    result = out.with_suffix(".json")
    script = (
        "import json, sys, time, upscale\n"
        "from upscale.bench.suite import peak_memory_mb\n"
        "upscale.set_options(**json.loads(sys.argv[4]))\n"
        "start = time.perf_counter()\n"
        "upscale.predict(*json.loads(sys.argv[1]), tile=int(sys.argv[2]), overwrite=True)\n"
        "seconds = time.perf_counter() - start\n"
        "open(sys.argv[3], 'w').write(json.dumps([seconds, peak_memory_mb()]))\n"
    )
    arguments = json.dumps([str(cube), str(mask), [str(m) for m in models], str(out)])
    options = json.dumps(get_options())
    process = subprocess.Popen(
        [sys.executable, "-c", script, arguments, str(tile), str(result), options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, stderr = process.communicate()
    if process.returncode:
        raise RuntimeError(f"predict failed in its process:\n{stderr.decode()[-2000:]}")
    seconds, peak = json.loads(result.read_text())
    return seconds, peak


def peak_memory_mb() -> float:
    """Peak resident memory of this process since it started its program, in MB.

    On Linux this is ``VmHWM``, which starts again at ``exec``; ``ru_maxrss`` would also
    count the memory of the process it was forked from.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS


def _apply_per_pixel(model: Model, drivers: torch.Tensor) -> int:
    """Run what users write first: a ufunc over pixels, one model call per pixel.

    Each call makes what ``predict`` makes of a pixel: the ensemble mean and spread, and
    the distance to the towers' windows. Returns the number of pixels.
    """
    device = drivers.device

    def one_pixel(series: np.ndarray) -> np.ndarray:
        pixel = torch.from_numpy(np.array(series, dtype="float32"))[None].to(device)
        members = model.predict_members(pixel)[:, 0]
        distance = model.domain_distance(pixel)[0, :, None]
        channels = torch.cat([members.mean(dim=0), members.std(dim=0), distance], dim=-1)
        return channels.cpu().numpy()

    xr.apply_ufunc(
        one_pixel,
        xr.DataArray(drivers.cpu().numpy(), dims=("pixel", "time", "feature")),
        input_core_dims=[["time", "feature"]],
        output_core_dims=[["window", "channel"]],
        vectorize=True,
    ).compute()
    return len(drivers)


@torch.inference_mode()
def _xbatcher_loop(model: Model, drivers: torch.Tensor) -> int:
    """Run what users write with xbatcher: batches of sliding windows through the ensemble.

    Each batch gets what ``predict`` makes: the ensemble mean and spread, and the distance
    to the towers' windows. Returns the number of pixels gone through: xbatcher leaves out
    a last, incomplete batch of pixels.
    """
    import xbatcher

    n_pixels, n_months, n_features = drivers.shape
    per_batch = max(1, min(n_pixels, WINDOWS_PER_BATCH // n_months))
    generator = xbatcher.BatchGenerator(
        xr.DataArray(drivers.cpu().numpy(), dims=("pixel", "time", "feature")),
        input_dims={"time": model.memory, "feature": n_features},
        input_overlap={"time": model.memory - 1},
        batch_dims={"pixel": per_batch},
        concat_input_dims=True,
    )
    for batch in generator:
        values = batch.transpose("sample", "time_input", "feature_input").values
        windows = torch.from_numpy(values).to(drivers.device)
        members = model.predict_members(windows)
        torch.cat([members.mean(dim=0), members.std(dim=0)], dim=-1).cpu()
        model.domain_distance(windows).cpu()
    return n_pixels // per_batch * per_batch


def _unmasked(cube: xr.Dataset, mask: xr.Dataset, models, out: Path) -> None:
    """Run the engine over every pixel: what a run without a wetland mask costs."""
    everywhere = mask.copy()
    for name in mask.data_vars:  # all mangrove: the code, and full cover of it
        value = {WETLAND: ECOSYSTEM_CODES["mangrove"], WETLAND_FRACTION: 1, MANGROVE: 1}
        everywhere[name] = xr.full_like(mask[name], value.get(name, 0))
    maps = flux_maps(cube, everywhere, {"mangrove": models["mangrove"]})
    write_store(maps, out, overwrite=True, resume=True)


def write_report(report: dict, path: str | Path) -> Path:
    """Write a bench report as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path
