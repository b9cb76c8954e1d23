"""Predict: flux maps of every wetland pixel from a driver cube, a mask and the models."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from upscale.api._common import cluster
from upscale.drivers.gaps import gap_summary
from upscale.engine.tiles import flux_maps, resident_model
from upscale.errors import InvalidModelError
from upscale.io.durable import output_lock, refuse_overwrite
from upscale.io.stores import open_cube, open_mask, write_store
from upscale.progress import new_progress
from upscale.schema import WETLAND


def predict(
    cube: str | Path,
    mask: str | Path,
    models: Sequence[str | Path],
    out: str | Path,
    *,
    tile: int | None = None,
    batch_size: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Apply one model per ecosystem to every wetland pixel and write ``maps.zarr``.

    Parameters
    ----------
    cube, mask
        Driver cube and wetland mask on the same grid.
    models
        Model folders; each card names its ecosystem.
    out
        Zarr store to write (``maps.zarr``).
    tile
        Spatial tile size in pixels; by default the cube's chunks.
    batch_size
        Windows per forward pass; by default 2048 on CPU and 16384 on a GPU
        ([`default_batch_size`][upscale.engine.tiles.default_batch_size]).
    scheduler
        Address of a dask.distributed scheduler (``tcp://host:8786``) to run the tiles on;
        its workers load each model once and must see the same file system. By default
        the tiles run on local threads.
    overwrite
        Replace an existing store.

    Notes
    -----
    The maps are written one row of tiles at a time; a run killed at any point and started
    again with the same inputs writes only the missing rows.
    """
    out = Path(out)
    with output_lock(out):  # from the start: a second run is refused before it loads
        refuse_overwrite([out], overwrite=overwrite)
        by_ecosystem: dict[str, Path] = {}
        features: list[str] = []
        for folder in models:
            # Loaded once: the run's checks and this process's tiles reuse the same copy.
            card = resident_model(folder).card
            if card.ecosystem in by_ecosystem:
                raise InvalidModelError(
                    f"two models for {card.ecosystem}: {by_ecosystem[card.ecosystem]} and {folder}"
                )
            by_ecosystem[card.ecosystem] = Path(folder)
            features += [f for f in card.features if f not in features]
        drivers = open_cube(cube, features, tile=tile)
        wetland = open_mask(mask, drivers)
        maps = flux_maps(
            drivers,
            wetland,
            by_ecosystem,
            batch_size=batch_size,
            provenance={
                "inputs": json.dumps(
                    {"cube": str(Path(cube).resolve()), "mask": str(Path(mask).resolve())}
                ),
                "command": shlex.join(sys.argv),
                "input_gap_fraction": json.dumps(gap_summary(drivers, wetland[WETLAND] > 0)),
            },
        )
        threads = torch.get_num_threads()
        try:
            with cluster(scheduler), new_progress() as bar:
                task = bar.add_task(f"predicting {out.name} (rows of tiles)", total=None)
                return write_store(
                    maps,
                    out,
                    overwrite=overwrite,
                    resume=True,  # a killed run, started again, predicts the missing rows only
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        finally:
            torch.set_num_threads(threads)
