"""Ingest: the canonical monthly driver cube from local NetCDF, Zarr and GeoTIFF files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from upscale.drivers.gaps import fill_gaps, gap_summary
from upscale.drivers.ingest import IngestConfig, build_drivers, load_ingest_config
from upscale.io.durable import refuse_overwrite
from upscale.io.stores import write_store
from upscale.learn.artifact import software_versions
from upscale.options import OPTIONS


@dataclass(frozen=True)
class IngestReport:
    """What `ingest` wrote: the cube and the share of each driver's values filled."""

    path: Path
    gaps: dict[str, float]


def ingest(
    config: str | Path | IngestConfig, out: str | Path, *, overwrite: bool = False
) -> IngestReport:
    """Build the canonical monthly driver cube from local NetCDF, Zarr and GeoTIFF sources.

    Parameters
    ----------
    config
        An ingest config (YAML file or [`IngestConfig`][upscale.drivers.ingest.IngestConfig]): the
        target grid, the period, the sources and their variable names, units and scale factors,
        and gap filling.
    out
        ``cube.zarr`` to write.
    overwrite
        Replace an existing cube.

    Returns
    -------
    IngestReport
        The cube and, per gap-filled driver, the share of its values that were missing.
    """
    out = Path(out)
    refuse_overwrite([out], overwrite=overwrite)
    base = Path(config).parent if isinstance(config, (str, Path)) else Path()
    if isinstance(config, (str, Path)):
        config = load_ingest_config(config)
    cube = build_drivers(config.sources, config.grid.target(), config.period, base=base)
    if config.fill.enabled:
        cube = fill_gaps(cube, max_interpolated=config.fill.max_interpolated)
    cube.attrs["software"] = json.dumps(software_versions())
    tile = min(OPTIONS["tile"], max(cube.sizes["y"], cube.sizes["x"]))
    write_store(cube.chunk({"time": -1, "y": tile, "x": tile}), out, overwrite=overwrite)
    return IngestReport(path=out, gaps=gap_summary(cube))
