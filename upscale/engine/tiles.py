"""The tile engine: applies trained models to every wetland pixel of a cube with dask.

Each dask task holds one spatial tile with the whole time axis. It gathers the tile's
wetland pixels of one ecosystem, runs their windows through that ecosystem's model in
fixed-size batches (on the GPU when there is one), and scatters the fluxes back into the
tile. Non-wetland pixels are never sent to a model, and nothing loops over pixels in Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import torch
import xarray as xr

from upscale.errors import InvalidCubeError, InvalidModelError
from upscale.io.durable import utc_now
from upscale.learn.artifact import WEIGHTS, Model, load_model, software_versions
from upscale.options import OPTIONS
from upscale.schema import (
    DOMAIN_DISTANCE,
    ECOSYSTEM_CODES,
    ECOSYSTEMS,
    EXTRAPOLATED,
    FLUXES,
    IMPLAUSIBLE_FIX,
    WETLAND,
    implausible_value,
    spread_attrs,
    spread_name,
)


def pick_device(requested: torch.device | str | None = None) -> str:
    """Return where models run: ``requested`` if given, else the first CUDA GPU, else the CPU.

    The one place a device is chosen; the others receive it. A dask worker started for one
    GPU (``CUDA_VISIBLE_DEVICES`` set to it, as dask-cuda does) sees that GPU as its first:
    each worker runs on its own GPU.
    """
    if requested:
        return str(requested)
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: torch.device | str) -> int:
    """Return the windows per forward pass for ``device``: the ``batch_sizes`` option.

    A device type the option does not name takes the CPU's size (see
    [`set_options`][upscale.options.set_options]).
    """
    sizes = OPTIONS["batch_sizes"]
    return sizes.get(torch.device(device).type, sizes["cpu"])


@lru_cache(maxsize=16)
def _cached_model(folder: str, device: str, weights_stamp: tuple[int, int]) -> Model:
    return load_model(folder).to(device)


def resident_model(folder: str | Path, device: str | None = None) -> Model:
    """Load a model once per process (per dask worker) and keep it on its device.

    Parameters
    ----------
    folder
        Model folder.
    device
        Where the model runs; by default [`pick_device`][upscale.engine.tiles.pick_device]'s.

    Notes
    -----
    The cache key includes the weights' modification time and size, so a model retrained
    into the same folder is loaded again.
    """
    folder = Path(folder).resolve()
    weights = folder / WEIGHTS
    # No weights, no stamp: load_model then raises the error that says what the folder lacks.
    stamp = (weights.stat().st_mtime_ns, weights.stat().st_size) if weights.exists() else (0, 0)
    return _cached_model(str(folder), pick_device(device), stamp)


def _predict_tile(
    drivers: np.ndarray,
    wetland: np.ndarray,
    *,
    models: tuple[tuple[int, str], ...],
    features: tuple[str, ...],
    n_targets: int,
    first_valid: int,
    batch_size: int | None,
    device: str | None,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Compute the maps ``(2K + 1, T, y, x)`` of one tile of drivers ``(F, T, y, x)``.

    Channels: the K ensemble-mean fluxes, their K ensemble spreads, and the domain
    distance. NaN off wetland and before ``first_valid``, the first month every model has a
    full window for, so all pixels start together whatever their ecosystem's memory.
    Without a ``device``, the tile runs on the GPU of the process that computes it, if it
    has one: on a cluster, each worker chooses for itself.
    """
    device = pick_device(device)
    batch_size = batch_size or default_batch_size(device)
    _, n_months, ny, nx = drivers.shape
    out = np.full((2 * n_targets + 1, n_months, ny, nx), np.nan, dtype="float32")
    for model, rows, cols, series in wetland_series(
        drivers, wetland, models, features, device, origin
    ):
        members = model.predict_members(series, batch_size=batch_size)  # (M, P, W, K)
        channels = torch.cat(
            [
                members.mean(dim=0),
                members.std(dim=0),
                model.domain_distance(series, batch_size=batch_size)[..., None],
            ],
            dim=-1,
        )
        out[:, model.memory - 1 :, rows, cols] = channels.cpu().numpy().transpose(2, 1, 0)
    out[:, :first_valid] = np.nan
    return out


def wetland_series(
    drivers: np.ndarray,
    wetland: np.ndarray,
    models: tuple[tuple[int, str], ...],
    features: tuple[str, ...],
    device: str,
    origin: tuple[int, int] = (0, 0),
) -> Iterator[tuple[Model, np.ndarray, np.ndarray, torch.Tensor]]:
    """Yield each ecosystem's model and the tile's wetland pixels of that ecosystem.

    Parameters
    ----------
    drivers
        ``(F, T, y, x)`` drivers of one tile, in ``features`` order.
    wetland
        ``(y, x)`` ecosystem codes of the tile.
    models
        ``(ecosystem code, model folder)`` pairs.
    features
        Names of the drivers' first axis.
    device
        Where the models run; on the CPU each tile keeps to the ``threads`` option's torch
        threads (1 by default, [`set_options`][upscale.options.set_options]), since dask
        threads already run tiles in parallel.
    origin
        The tile's first row and column in the grid, to name it in errors.

    Yields
    ------
    tuple
        The model (loaded once per process), the pixels' rows and columns in the tile, and
        their series ``(P, T, F)`` in the model's feature order, on the device.

    Raises
    ------
    InvalidCubeError
        When a driver is missing at a wetland pixel of the tile.
    """
    if device == "cpu":
        torch.set_num_threads(OPTIONS["threads"])
    for code, folder in models:
        rows, cols = np.nonzero(wetland == code)
        if len(rows) == 0:
            continue
        model = resident_model(folder, device)
        index = [features.index(f) for f in model.card.features]
        pixels = drivers[index][:, :, rows, cols]  # (F, T, P): the tile's wetland pixels only
        if not np.isfinite(pixels).all():
            _raise_gap(pixels, model.card.features, rows, cols, origin)
        problem = implausible_value(
            model.card.features, pixels.min(axis=(1, 2)), pixels.max(axis=(1, 2))
        )
        if problem:
            raise InvalidCubeError(
                f"{problem} at the wetland pixels of the tile starting at y={origin[0]}, "
                f"x={origin[1]}; {IMPLAUSIBLE_FIX}"
            )
        series = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 1, 0)))
        if torch.device(device).type == "cuda":
            # From page-locked memory the copy runs asynchronously, behind the CPU's next
            # tile; the nets queued after it on the same stream wait for it.
            series = series.pin_memory().to(device, non_blocking=True)
        else:
            series = series.to(device)
        yield model, rows, cols, series


def _raise_gap(pixels, features, rows, cols, origin: tuple[int, int]) -> None:
    feature, month, pixel = np.argwhere(~np.isfinite(pixels))[0]
    y0, x0 = origin
    raise InvalidCubeError(
        f"driver {features[feature]} is missing at {int(np.sum(~np.isfinite(pixels[feature])))} "
        f"wetland pixel-months of the tile starting at y={y0}, x={x0} (first at pixel "
        f"y={y0 + rows[pixel]}, x={x0 + cols[pixel]}, month {month + 1} of the cube); fill "
        "the cube's gaps before predicting (upscale ingest fills optical drivers' gaps)"
    )


@dataclass(frozen=True)
class Run:
    """The checked inputs of a tile run: models, drivers stacked by feature, the mask.

    Attributes
    ----------
    models
        Ecosystem -> model, loaded in this process (its tiles reuse them).
    folders
        ``(ecosystem code, model folder)`` pairs, what the tile tasks carry.
    targets, features
        The models' common targets and the union of their features, in order.
    memory
        The longest memory: the first month every pixel has a full window for is
        ``memory - 1``.
    drivers
        ``(feature, time, y, x)`` drivers, one chunk over features and time.
    wetland
        The mask's ecosystem codes, chunked like the drivers.
    """

    models: dict[str, Model]
    folders: tuple[tuple[int, str], ...]
    targets: tuple[str, ...]
    features: tuple[str, ...]
    memory: int
    drivers: xr.DataArray
    wetland: xr.DataArray
    occupied: np.ndarray

    def map_tiles(
        self, function: Callable[..., np.ndarray], channels: int, *, keep_time: bool, **options
    ) -> da.Array:
        """Apply a tile function to every tile with wetland; the others are NaN, unread.

        Parameters
        ----------
        function
            Called as ``function(drivers (F, T, y, x), wetland (y, x), origin=(y0, x0),
            **options)``; returns ``(channels, T, y, x)`` or, without ``keep_time``,
            ``(channels, y, x)``.
        channels
            Size of the output's first axis.
        keep_time
            Whether the output keeps the time axis.

        Returns
        -------
        dask.array.Array
            The tiles assembled on the grid. Tiles without wetland are constant NaN blocks
            that do not depend on the drivers, so their drivers are never read.
        """
        drivers = self.drivers.data.astype("float32")
        wetland = self.wetland.data
        n_months = drivers.shape[1]
        y_edges = np.cumsum((0, *drivers.chunks[2]))
        x_edges = np.cumsum((0, *drivers.chunks[3]))
        rows = []
        for i, (y0, y1) in enumerate(zip(y_edges[:-1], y_edges[1:], strict=True)):
            row = []
            for j, (x0, x1) in enumerate(zip(x_edges[:-1], x_edges[1:], strict=True)):
                shape = (
                    (channels, n_months, y1 - y0, x1 - x0)
                    if keep_time
                    else (channels, y1 - y0, x1 - x0)
                )
                if not self.occupied[i, j]:
                    row.append(da.full(shape, np.nan, dtype="float32", chunks=shape))
                    continue
                tile = drivers[:, :, y0:y1, x0:x1]
                row.append(
                    da.map_blocks(
                        function,
                        tile,
                        wetland[y0:y1, x0:x1],
                        origin=(int(y0), int(x0)),
                        **options,
                        dtype="float32",
                        chunks=tuple((n,) for n in shape),
                        drop_axis=None if keep_time else [0, 1],
                        new_axis=None if keep_time else [0],
                        meta=np.array((), dtype="float32"),
                    )
                )
            rows.append(row)
        return da.block(rows)


def prepare_run(
    cube: xr.Dataset, mask: xr.Dataset, model_folders: Mapping[str, str | Path], device: str
) -> Run:
    """Check that models, cube and mask fit together, and stack the drivers for the tiles.

    Raises
    ------
    InvalidModelError
        When an ecosystem of the mask has no model, a model is for another ecosystem, or
        the models disagree on their targets.
    InvalidCubeError
        When the cube lacks a driver or is shorter than the longest memory.
    """
    # Loaded here to check them; the tiles of this process reuse these copies.
    models = {eco: resident_model(folder, device) for eco, folder in model_folders.items()}
    codes = mask[WETLAND].values  # the mask is small: loaded once, here
    present = {ECOSYSTEMS[int(c)] for c in np.unique(codes) if c}
    missing = sorted(present - set(models))
    if missing:
        raise InvalidModelError(
            f"no model for ecosystem(s) {', '.join(missing)} present in the mask; "
            "train one (upscale train) or pass it with --model"
        )
    for eco, model in models.items():
        if model.card.ecosystem != eco:
            raise InvalidModelError(
                f"{model_folders[eco]}: model is for {model.card.ecosystem}, not {eco}; pass "
                f"a model trained on {eco} towers for the {eco} pixels"
            )
    targets = _common(models, "targets")
    features = tuple(dict.fromkeys(f for m in models.values() for f in m.card.features))
    absent = [f for f in features if f not in cube]
    if absent:
        raise InvalidCubeError(
            f"cube lacks driver(s) {', '.join(absent)} that the models need; add them to "
            "the cube (upscale ingest or fetch), or use models trained without them"
        )
    # Only the ecosystems in the mask set the first month that can be predicted.
    memory = max(m.memory for eco, m in models.items() if eco in present or not present)
    if cube.sizes["time"] < memory:
        raise InvalidCubeError(
            f"the cube has {cube.sizes['time']} months; the models need at least {memory} "
            "(their memory length) to predict one; use a longer cube, or models with a "
            "shorter memory"
        )
    drivers = xr.concat([cube[f] for f in features], dim="feature").transpose(
        "feature", "time", "y", "x"
    )
    drivers = drivers.chunk({"feature": -1, "time": -1})
    wetland = mask[WETLAND].chunk({d: drivers.chunksizes[d] for d in ("y", "x")})
    y_edges = np.cumsum((0, *drivers.chunks[2]))
    x_edges = np.cumsum((0, *drivers.chunks[3]))
    occupied = np.array(
        [
            [codes[a:b, c:d].any() for c, d in zip(x_edges[:-1], x_edges[1:], strict=True)]
            for a, b in zip(y_edges[:-1], y_edges[1:], strict=True)
        ]
    )
    folders = tuple(
        (ECOSYSTEM_CODES[eco], str(Path(folder).resolve()))
        for eco, folder in sorted(model_folders.items())
    )
    return Run(models, folders, targets, features, memory, drivers, wetland, occupied)


def flux_maps(
    cube: xr.Dataset,
    mask: xr.Dataset,
    model_folders: Mapping[str, str | Path],
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    provenance: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Build the lazy flux maps of a region.

    Parameters
    ----------
    cube
        Validated driver cube ``(time, y, x)``, chunked in space with the whole time axis.
    mask
        Wetland mask on the cube's grid ([`open_mask`][upscale.io.stores.open_mask]).
    model_folders
        Ecosystem name -> model folder. Every ecosystem present in the mask needs one.
    batch_size
        Windows per forward pass; by default
        [`default_batch_size`][upscale.engine.tiles.default_batch_size] of the device.
    device
        Where the models run; by default each process computing tiles uses its GPU when
        it has one (on a cluster, the workers' GPUs, whatever the client has).
    provenance
        Extra attributes to record, e.g. the input paths and the command line.

    Returns
    -------
    xarray.Dataset
        Lazy ``GPP``, ``RE``, ``NEE`` (gC m-2 d-1, float32, NaN off wetland and before the
        first full window), the mask, the cube's CRS and provenance attributes. Nothing is
        computed until it is written ([`write_store`][upscale.io.stores.write_store]).
    """
    requested = str(device) if device else None  # None: each worker picks its own
    run = prepare_run(cube, mask, model_folders, pick_device(requested))
    models, targets, features, memory = run.models, run.targets, run.features, run.memory
    tiles = run.map_tiles(
        _predict_tile,
        2 * len(targets) + 1,
        keep_time=True,
        models=run.folders,
        features=features,
        n_targets=len(targets),
        first_valid=memory - 1,
        batch_size=batch_size,
        device=requested,
    )
    valid_from = pd.Timestamp(cube["time"].values[memory - 1])
    dims = ("time", "y", "x")
    layers = {name: (dims, tiles[k], FLUXES[name].attrs()) for k, name in enumerate(targets)}
    layers |= {
        spread_name(name): (dims, tiles[len(targets) + k], spread_attrs(name))
        for k, name in enumerate(targets)
    }
    layers[DOMAIN_DISTANCE.name] = (dims, tiles[-1], DOMAIN_DISTANCE.attrs())
    maps = xr.Dataset(layers, coords={"time": cube["time"], "y": cube["y"], "x": cube["x"]})
    distance = maps[DOMAIN_DISTANCE.name].sel(time=slice(valid_from, None))
    outside = (distance > 1).where(distance.notnull()).mean("time")
    maps[EXTRAPOLATED.name] = outside.astype("float32").assign_attrs(EXTRAPOLATED.attrs())
    for name in mask.data_vars:  # the mask travels with the maps: budgets need only them
        maps[name] = mask[name]
    maps = maps.rio.write_crs(cube.rio.crs)
    maps.attrs = {
        "title": "upscale flux maps",
        "Conventions": "CF-1.8",
        "valid_from": f"{valid_from:%Y-%m-%d}",
        "models": json.dumps({eco: m.card.model_dump(mode="json") for eco, m in models.items()}),
        "software": json.dumps(software_versions()),
        "created": utc_now(),
        "device": requested or f"{pick_device()} (each worker's GPU when it has one)",
        **(provenance or {}),
    }
    return maps


def _common(models: Mapping[str, Model], field: str) -> tuple[str, ...]:
    values = {tuple(getattr(m.card, field)) for m in models.values()}
    if len(values) > 1:
        raise InvalidModelError(f"the models disagree on {field}: {sorted(values)}")
    return values.pop()
