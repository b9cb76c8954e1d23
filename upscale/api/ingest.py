"""Ingest: the canonical monthly driver cube from local files and STAC catalogues."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from upscale.drivers.gaps import fill_gaps, gap_summary
from upscale.drivers.ingest import IngestConfig, build_drivers, load_ingest_config
from upscale.drivers.stac import fetch_stac_cube
from upscale.drivers.stac_recipes import StacSection
from upscale.errors import InvalidConfigError
from upscale.io.durable import refuse_overwrite
from upscale.io.stores import open_store, write_store
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

    With a ``stac`` section, drivers are also read from a STAC catalogue (see
    [`fetch_stac_cube`][upscale.drivers.stac.fetch_stac_cube]); the cube is then written block by
    block, and a re-run after a crash resumes.

    Parameters
    ----------
    config
        An ingest config (YAML file or [`IngestConfig`][upscale.drivers.ingest.IngestConfig]): the
        target grid, the period, the sources and their variable names, units and scale factors,
        a STAC catalogue and its recipes, and gap filling.
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
    if config.stac is not None:
        return _ingest_with_stac(config, config.stac, out, base)
    cube = build_drivers(config.sources, config.grid.target(), config.period, base=base)
    if config.fill.enabled:
        cube = fill_gaps(cube, max_interpolated=config.fill.max_interpolated)
    cube.attrs["software"] = json.dumps(software_versions())
    tile = min(OPTIONS["tile"], max(cube.sizes["y"], cube.sizes["x"]))
    write_store(cube.chunk({"time": -1, "y": tile, "x": tile}), out, overwrite=overwrite)
    return IngestReport(path=out, gaps=gap_summary(cube))


def _ingest_with_stac(
    config: IngestConfig, stac: StacSection, out: Path, base: Path
) -> IngestReport:
    """`ingest` of a config with a ``stac`` section: local drivers ride along the STAC blocks."""
    grid = config.grid.target()
    local = (
        build_drivers(config.sources, grid, config.period, base=base) if config.sources else None
    )
    mine = list(local.data_vars) if local is not None else []
    both = sorted(set(mine) & set(stac.variables or []))
    if both:
        raise InvalidConfigError(
            f"{both} come from both local sources and the stac section; give each driver once"
        )
    variables = [v for v in stac.chosen() if v not in mine]
    catalog = stac.catalog
    if "://" not in catalog and not Path(catalog).is_absolute():
        catalog = str(base / catalog)
    path = fetch_stac_cube(
        grid,
        config.period,
        out,
        catalog=catalog,
        recipes=stac.all_recipes(),
        variables=variables,
        max_interpolated=config.fill.max_interpolated if config.fill.enabled else None,
        extra=None if local is None else (lambda block: {v: local[v].values[block] for v in mine}),
        extra_variables=mine,
        provenance={"software": json.dumps(software_versions())}
        | ({"sources": local.attrs["sources"]} if local is not None else {}),
    )
    return IngestReport(path=path, gaps=gap_summary(open_store(path)))
