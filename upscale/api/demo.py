"""The whole chain on the embedded demo region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from upscale.api._common import print_status
from upscale.api.export import export
from upscale.api.predict import predict
from upscale.api.query import QUERY_PICTURES, query
from upscale.api.report import CV_PICTURE, report
from upscale.api.train import train
from upscale.budgets.annual import annual_totals, valid_period
from upscale.budgets.regions import read_regions
from upscale.demo_region import DemoPaths, DemoSpec, make_demo_region, write_demo_region
from upscale.errors import (
    OutputExistsError,
)
from upscale.io.stores import open_maps, open_store
from upscale.learn.metrics import skill
from upscale.learn.training import TrainConfig
from upscale.progress import Status
from upscale.report.plots import (
    annual_maps_figure,
    cv_scatter_figure,
    save_png,
    uncertainty_figure,
)
from upscale.schema import EXTRAPOLATED, TARGETS, WETLAND
from upscale.towers.sites import read_sites


@dataclass(frozen=True)
class DemoReport:
    """What [`demo`][upscale.api.demo.demo] produced: where, and how good."""

    outputs: dict[str, Path]
    sites: pd.DataFrame
    cv_metrics: pd.DataFrame
    truth_skill: pd.DataFrame
    budget: pd.DataFrame


def truth_skill(maps: xr.Dataset, truth: xr.Dataset) -> pd.DataFrame:
    """Score the mapped fluxes against the demo truth over wetland pixel-months."""
    maps, truth = valid_period(maps), truth.sel(time=valid_period(maps)["time"])
    wetland = maps[WETLAND] > 0
    return pd.DataFrame(
        [
            {"flux": name}
            | skill(truth[name].where(wetland).values, maps[name].where(wetland).values)
            for name in TARGETS
            if name in maps
        ]
    )


def demo_inputs(
    out: str | Path, *, spec: DemoSpec | None = None, overwrite: bool = False
) -> DemoPaths:
    """Write the demo region's inputs only, to try each step on them.

    Writes what a user brings, as they would bring it: ``cube.zarr`` (drivers),
    ``mask.zarr`` (wetlands) and ``wetlands.gpkg`` (its wetland pixels as whole-pixel
    polygons, an inventory to try ``mask`` on), ``sites/``
    (``sites.csv`` and FLUXNET2015 MM files), ``regions.geojson``, and ``truth.zarr`` (the
    fluxes the models should find).

    Parameters
    ----------
    out
        Folder to write into.
    spec
        Size of the region: the full demo by default; notebooks and tests use smaller ones.
    overwrite
        Replace inputs written earlier.
    """
    return write_demo_region(make_demo_region(spec or DemoSpec()), out, overwrite=overwrite)


def demo(
    out: str | Path = "upscale-demo",
    *,
    overwrite: bool = False,
    spec: DemoSpec | None = None,
    config: TrainConfig | None = None,
    status: Status = print_status,
) -> DemoReport:
    """Run the whole chain on the embedded demo region.

    Writes the demo inputs (cube, mask, truth, towers, regions), trains and cross-validates
    one model per ecosystem, maps the fluxes, exports COGs, queries the regions' budgets,
    draws quick-looks, writes the run's report (``report.html``, see
    [`report`][upscale.api.report.report]) and compares the maps with the truth.

    Parameters
    ----------
    out
        Folder for everything; ``inputs/``, ``models/``, ``maps.zarr``, ``cogs/``,
        ``budget.csv``, PNGs and ``report.html`` are written inside.
    overwrite
        Replace the outputs of an earlier demo in ``out``.
    spec
        Size of the demo region (tests use a small one).
    config
        Training settings.
    status
        Receives progress lines.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to run the demo again there")
    status("writing the demo region (south-west Florida coast)")
    region = make_demo_region(spec)
    inputs = write_demo_region(region, out / "inputs", overwrite=True)
    trained = train(
        inputs.sites,
        inputs.cube,
        out / "models",
        config=config,
        name="demo",
        overwrite=True,
        status=status,
    )
    maps_path = predict(
        inputs.cube, inputs.mask, list(trained.models.values()), out / "maps.zarr", overwrite=True
    )
    status("exporting Cloud-Optimized GeoTIFFs")
    cogs = export(maps_path, out / "cogs", overwrite=True)
    status("querying the regions' budgets")
    table = query(maps_path, inputs.regions, out=out / "budget.csv", plots=out, overwrite=True)
    maps = open_maps(maps_path)
    totals = annual_totals(maps)
    panels = {}
    for eco, (observed, predicted) in trained.held_out.items():
        for k, target in enumerate(TARGETS):
            panels[f"{target} {eco}"] = (
                observed[..., k],
                predicted[..., k],
                trained.metrics[eco][target]["all"],
            )
    outputs = {
        "inputs": out / "inputs",
        "models": out / "models",
        "maps": maps_path,
        "cogs": out / "cogs",
        "budget": out / "budget.csv",
        "maps_png": save_png(
            annual_maps_figure(totals, regions=read_regions(inputs.regions), sites=region.sites),
            out / "annual_maps.png",
        ),
        "spread_png": save_png(
            uncertainty_figure(totals, maps[EXTRAPOLATED.name], sites=region.sites),
            out / "uncertainty_maps.png",
        ),
        "cv_png": save_png(cv_scatter_figure(panels), out / CV_PICTURE),
        "region_sink": out / QUERY_PICTURES[0],
        "region_fluxes": out / QUERY_PICTURES[1],
    }
    status(f"{len(cogs)} COGs written")
    outputs["report"] = report(out, overwrite=True, status=status).path
    site_table = read_sites(inputs.sites).fluxes.groupby("site_id")["GPP"].count()
    sites = region.sites.assign(months=site_table)
    return DemoReport(
        outputs=outputs,
        sites=sites,
        cv_metrics=trained.skill_table(),
        truth_skill=truth_skill(maps, open_store(inputs.truth)),
        budget=table,
    )
