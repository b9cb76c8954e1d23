"""Mask: the wetland mask on the cube's grid, from vector maps and fine rasters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from upscale.budgets.masks import ecosystem_covers, mask_areas, wetland_mask
from upscale.errors import InvalidMaskError
from upscale.io.durable import refuse_overwrite
from upscale.io.stores import open_cube, write_store
from upscale.learn.artifact import software_versions
from upscale.report.plots import mask_figure, save_png


@dataclass(frozen=True)
class MaskReport:
    """What [`mask`][upscale.api.mask.mask] wrote and how its areas compare with the sources'."""

    path: Path
    picture: Path
    areas: pd.DataFrame


def mask(
    cube: str | Path,
    out: str | Path,
    *,
    vectors: Sequence[str | Path] = (),
    sources: dict[str, Sequence[str | Path]] | None = None,
    ecosystem_column: str = "ecosystem",
    classes: dict[str, str] | None = None,
    min_fraction: float = 0.0,
    overwrite: bool = False,
) -> MaskReport:
    """Build the wetland mask on the cube's grid from vector maps and fine rasters.

    Parameters
    ----------
    cube
        Driver cube whose grid and CRS the mask takes.
    out
        ``mask.zarr`` to write; a picture of the cover goes beside it, named after it
        (``mask.png``).
    vectors
        Vector files whose polygons name their ecosystem in ``ecosystem_column``.
    sources
        Ecosystem -> files mapping that ecosystem alone: vectors (any CRS) or rasters such
        as Global Mangrove Watch tiles (0/1, any CRS), e.g. ``{"mangrove": ["gmw.tif"]}``.
    ecosystem_column, classes
        Where vectors name their ecosystem, and how source classes map to ecosystems (see
        [`read_wetland_vectors`][upscale.budgets.masks.read_wetland_vectors]).
    min_fraction
        Leave out pixels with less wetland cover than this.
    overwrite
        Replace an existing mask.

    Returns
    -------
    MaskReport
        The mask store, its picture and a table of areas per ecosystem: mask (km², pixel
        area x cover) against the sources' own geodesic area inside the grid.
    """
    out = Path(out)
    if out.suffix.lower() != ".zarr":
        raise InvalidMaskError(f"{out}: write the mask as a .zarr store")
    picture = out.with_suffix(".png")
    refuse_overwrite([out, picture], overwrite=overwrite)
    if not 0.0 <= min_fraction < 1.0:
        raise InvalidMaskError(f"min_fraction {min_fraction}: give a cover fraction in 0..1")
    grid = open_cube(cube, features=())
    covers = ecosystem_covers(
        grid, vectors=vectors, sources=sources, column=ecosystem_column, classes=classes
    )
    built = wetland_mask(covers, grid, min_fraction=min_fraction)
    built.attrs["sources"] = json.dumps(
        {"vectors": [str(v) for v in vectors]}
        | {eco: [str(p) for p in paths] for eco, paths in (sources or {}).items()}
    )
    built.attrs["software"] = json.dumps(software_versions())
    write_store(built, out, overwrite=overwrite)
    save_png(mask_figure(built), picture)
    return MaskReport(path=out, picture=picture, areas=mask_areas(built, covers))
