"""Command line: ``upscale VERB``. It only parses, calls `upscale.api` and reports."""

from __future__ import annotations

import functools
import tempfile
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from upscale import api
from upscale.api import (
    DEFAULT_MEMORIES,
    FLUXES,
    NEE_MODES,
    NETS,
    TrainConfig,
    UpscaleError,
    console,
    load_train_config,
    make_train_config,
    run_bench,
    write_report,
)
from upscale.api import CrossValidation as CrossValidationName
from upscale.api import NeeMode as NeeModeName
from upscale.api import Partitioning as PartitioningName

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out_console = Console()  # stdout: results and summaries; progress goes to stderr


def _version(show: bool) -> None:
    if show:
        out_console.print(f"upscale {version('upscale')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Upscale coastal-wetland tower fluxes (GPP, RE, NEE) to regional carbon-sink maps."""


def _warning_line(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Show a warning as one yellow line on stderr, as errors are shown: no file and line."""
    console.print(
        f"[bold yellow]warning:[/bold yellow] {escape(str(message))}",
        highlight=False,
        soft_wrap=True,
    )


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show what goes wrong as the CLI does: one line each, no traceback.

    An `UpscaleError` becomes one red line on stderr and exit code 2; a warning (a cube's
    CRS found by its variable, a region partly off the maps) one yellow line.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_line
                return command(*args, **kwargs)
        except UpscaleError as err:
            console.print(
                f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


def _table(frame: pd.DataFrame, title: str, digits: int = 2) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(
            str(column), justify="right" if frame[column].dtype.kind in "fiu" else "left"
        )
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row))
    return table


def _skill_table(skill: pd.DataFrame) -> Table:
    """Cross-validated scores, compact enough for an 80-column terminal."""
    columns = ["ecosystem", "flux", "r2", "nse", "rmse", "bias", "seasonal_r2", "anomalies_r2"]
    if "noise_share" in skill:  # towers that give their measurement uncertainty
        columns.append("noise_share")
    short = {"seasonal_r2": "season r2", "anomalies_r2": "anom. r2", "noise_share": "noise"}
    return _table(
        skill[columns].rename(columns=short),
        "cross-validated skill on held-out data (rmse, bias in gC m-2 d-1; noise: share of "
        "the squared error the towers' measurement noise explains)",
    )


def _budget_summary(budget: pd.DataFrame) -> Table:
    """Mean over periods of the headline columns of a budget table, per region and ecosystem."""
    period = "year" if "year" in budget else "month"
    units = budget.attrs.get("units", {})
    columns = ["area_km2", "GPP_mean", "RE_mean", "NEE_mean", "sink_total"]
    # skipna=False: a period the maps could not cover shows as nan, not a shorter mean
    mean = (
        budget.groupby(["name", "ecosystem"], sort=False)[columns]
        .agg(lambda column: column.mean(skipna=False))
        .reset_index()
    )
    span = f"{budget[period].min()} to {budget[period].max()}"
    short = {"area_km2": "km2", "sink_total": "sink"} | {f"{f}_mean": f for f in FLUXES}
    return _table(
        mean.rename(columns=short),
        f"region budgets, mean {period} of {span}: GPP, RE, NEE mean {units.get('mean')}; "
        f"sink (-NEE) total {units.get('total')}",
        digits=1,
    )


def _written(paths: dict[str, Path] | list[Path]) -> None:
    """Print what was written where, one line each, paths never truncated."""
    items = paths.items() if isinstance(paths, dict) else ((p.name, p) for p in paths)
    out_console.print("[bold]written[/bold]")
    for what, path in items:
        out_console.print(f"  {what:<13} {path}", highlight=False, overflow="ignore", crop=False)


def _architectures() -> Any:
    """Return the registered architectures ([`NETS`][upscale.learn.nets.NETS]) as typer's choices.

    Typer evaluates a command's annotations each time it builds the command (they are
    strings here, ``from __future__ import annotations``), so the choices are those of the
    registry when the command runs, an architecture registered after import among them.
    """
    return Literal[tuple(NETS)]


Sites = Annotated[
    Path, typer.Option(help="Folder with sites.csv and tower files (FLUXNET, AmeriFlux, tidy).")
]
Cube = Annotated[Path, typer.Option(help="Driver cube (Zarr v3 or NetCDF).")]
TowerCube = Annotated[
    Path | None,
    typer.Option(
        help="Driver cube (Zarr v3 or NetCDF); leave out for a site-level study whose features "
        "are columns of the tower tables or of --site-drivers-table."
    ),
]
Features = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated features: canonical drivers or any tower column (PAR, WTD...) "
        "[default: the config's; with no cube, the canonical drivers every tower measured]."
    ),
]
CrossValidation = Annotated[
    CrossValidationName | None,
    typer.Option(help="Folds of towers (k-fold, leave-one-out), or each tower's last months."),
]
TestFraction = Annotated[
    float | None,
    typer.Option(min=0.01, max=0.99, help="Share of each tower's months --cv temporal holds out."),
]
SiteDriversTable = Annotated[
    Path | None,
    typer.Option(help="CSV of drivers at the towers: site_id, time, <DRIVER>..."),
]
Partitioning = Annotated[
    PartitioningName, typer.Option(help="Night-time (NT) or day-time (DT) partitioned GPP, RE.")
]
Overwrite = Annotated[bool, typer.Option(help="Replace existing outputs.")]
Scheduler = Annotated[
    str | None,
    typer.Option(help="dask.distributed scheduler address to run on, e.g. tcp://host:8786."),
]


@app.command()
@_friendly
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's inputs and outputs.")] = Path(
        "upscale-demo"
    ),
    overwrite: Overwrite = False,
) -> None:
    """Run the whole chain on the embedded demo region (south-west Florida coast)."""
    report = api.demo(out, overwrite=overwrite)
    out_console.print(_table(report.sites.reset_index(), "towers (months of valid GPP)", 4))
    out_console.print(_skill_table(report.cv_metrics))
    out_console.print(
        _table(
            report.truth_skill.drop(columns="n"),
            "maps against the demo truth (wetland pixel-months; rmse, bias in gC m-2 d-1)",
        )
    )
    out_console.print(_budget_summary(report.budget))
    _written(report.outputs)


@app.command()
@_friendly
def train(
    sites: Sites,
    cube: TowerCube = None,
    out: Annotated[Path, typer.Option(help="Folder for the model folders.")] = Path("models"),
    name: Annotated[str, typer.Option(help="Prefix of the model names.")] = "model",
    config: Annotated[
        Path | None,
        typer.Option(
            help="Training config: a YAML file, or a preset: the name of an architecture "
            "shipped with its settings."
        ),
    ] = None,
    architecture: Annotated[
        _architectures() | None, typer.Option(help="Network architecture.")
    ] = None,
    memory: Annotated[
        int | None,
        typer.Option(min=1, max=36, help="Memory length L: months of drivers each window sees."),
    ] = None,
    features: Features = None,
    cv: CrossValidation = None,
    folds: Annotated[
        int | None, typer.Option(min=2, help="Folds (and members) of kfold; members of temporal.")
    ] = None,
    test_fraction: TestFraction = None,
    nee_mode: Annotated[
        NeeModeName | None, typer.Option(help="NEE direct, RE - GPP, or penalised.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random draw.")] = None,
    site_drivers: Annotated[
        str | None,
        typer.Option(help="Drivers taken from the towers, not the cube: e.g. TA,VPD,SW_IN."),
    ] = None,
    site_drivers_table: SiteDriversTable = None,
    mask: Annotated[
        Path | None,
        typer.Option(help="Wetland mask the models will map: towers off its wetland are refused."),
    ] = None,
    partitioning: Partitioning = "NT",
    scheduler: Scheduler = None,
    overwrite: Overwrite = False,
) -> None:
    """Cross-validate by tower and train one ensemble per ecosystem.

    Options replace the config file's values; the resolved config is saved as NAME.yaml.
    """
    settings = _settings(
        config,
        architecture=architecture,
        memory=memory,
        features=_names(features),
        cv=cv,
        folds=folds,
        test_fraction=test_fraction,
        nee_mode=nee_mode,
        epochs=epochs,
        seed=seed,
        site_drivers=_names(site_drivers),
    )
    result = api.train(
        sites,
        cube,
        out,
        config=settings,
        name=name,
        partitioning=partitioning,
        site_drivers_table=site_drivers_table,
        mask=mask,
        overwrite=overwrite,
        scheduler=scheduler,
    )
    written = {f"model {eco}": path for eco, path in result.models.items()}
    written["config"] = result.config
    if not result.drivers.empty:
        out_console.print(_agreement_summary(result.drivers))
        written["drivers"] = Path(out) / f"{name}-drivers.csv"
    out_console.print(_skill_table(result.skill_table()))
    _written(written | result.tables)


def _names(text: str | None) -> tuple[str, ...] | None:
    """Split a comma-separated option into names; None when not given."""
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _settings(config: Path | None, **options: Any) -> TrainConfig:
    """Resolve the training config: a file or preset, with the command line's options."""
    chosen = {k: v for k, v in options.items() if v is not None}
    return load_train_config(config, **chosen) if config else make_train_config(chosen)


def _agreement_summary(agreement: pd.DataFrame) -> Table:
    """Cube against tower drivers, over all towers: the check before mixing the two."""
    summary = (
        agreement.groupby(["driver", "units"], sort=False)
        .agg(
            towers=("site_id", "size"), bias=("bias", "mean"), rmse=("rmse", "mean"), r=("r", "min")
        )
        .reset_index()
    )
    return _table(summary, "cube drivers at the towers against their own (mean bias, rmse; min r)")


@app.command()
@_friendly
def predict(
    cube: Cube,
    mask: Annotated[Path, typer.Option(help="Wetland mask on the cube's grid.")],
    model: Annotated[list[Path], typer.Option(help="Model folder; repeat once per ecosystem.")],
    out: Annotated[Path, typer.Option(help="Zarr store to write.")] = Path("maps.zarr"),
    tile: Annotated[int | None, typer.Option(min=1, help="Spatial tile size (pixels).")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Windows per forward pass [default: 2048 on CPU, 16384 on GPU]."),
    ] = None,
    scheduler: Scheduler = None,
    overwrite: Overwrite = False,
) -> None:
    """Map GPP, RE and NEE on every wetland pixel of the cube (resumes a killed run)."""
    path = api.predict(
        cube,
        mask,
        model,
        out,
        tile=tile,
        batch_size=batch_size,
        scheduler=scheduler,
        overwrite=overwrite,
    )
    _written({"maps": path})


@app.command()
@_friendly
def export(
    maps: Annotated[Path, typer.Option(help="maps.zarr written by predict.")],
    out: Annotated[Path, typer.Option(help="Folder for the GeoTIFFs.")] = Path("cogs"),
    monthly: Annotated[bool, typer.Option(help="Also write monthly bands.")] = False,
    netcdf: Annotated[
        bool, typer.Option(help="Also write the maps as one CF-1.8 NetCDF file, maps.nc.")
    ] = False,
    overwrite: Overwrite = False,
) -> None:
    """Export annual (and monthly) Cloud-Optimized GeoTIFFs of the maps, or NetCDF."""
    periods = ("annual", "monthly") if monthly else ("annual",)
    _written(api.export(maps, out, periods=periods, netcdf=netcdf, overwrite=overwrite))


Catalogue = Annotated[
    Path | None,
    typer.Option(
        help="Region catalogue folder.", envvar="UPSCALE_REGIONS", show_default="./regions"
    ),
]


@app.command()
@_friendly
def query(
    maps: Annotated[Path, typer.Option(help="maps.zarr written by predict.")],
    region: Annotated[
        list[str],
        typer.Option(
            "--region",
            "--regions",
            "-r",
            help="A catalogue region name, a vector file, a bbox 'west,south,east,north', "
            "or a GeoJSON/WKT polygon; repeat for more.",
        ),
    ],
    by: Annotated[Literal["year", "month"], typer.Option(help="Budget period.")] = "year",
    crs: Annotated[
        str | None, typer.Option(help="CRS of bboxes and WKT polygons.", show_default="EPSG:4326")
    ] = None,
    catalogue: Catalogue = None,
    out: Annotated[
        Path | None, typer.Option(help="Table to write (.csv, .json, or .geojson for GIS).")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Folder for a sink map and a monthly flux plot (PNG).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Carbon budget per region, ecosystem and year or month: area, mean fluxes, totals, sink."""
    table = api.query(
        maps,
        region,
        by=by,
        catalogue=catalogue,
        crs=crs,
        out=out,
        plots=plots,
        overwrite=overwrite,
    )
    out_console.print(_budget_summary(table))
    written = {"budget": out} if out is not None else {}
    if plots is not None:
        written |= {name.removesuffix(".png"): plots / name for name in api.QUERY_PICTURES}
    if written:
        _written(written)


@app.command()
@_friendly
def report(
    run: Annotated[
        Path, typer.Argument(help="Run folder: the demo's, or any folder the verbs wrote into.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.html.", show_default="the run folder"),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """One self-contained HTML page of a run: towers, skill, memory, drivers, maps, budgets."""
    result = api.report(run, out, overwrite=overwrite)
    for section in result.sections:
        if section.present:
            out_console.print(f"  [green]✓[/green] {section.title}", highlight=False)
        else:
            out_console.print(
                f"  [yellow]–[/yellow] {section.title}: {escape(section.note)}", highlight=False
            )
    _written({"report": result.path})
    out_console.print("open it in a browser; it needs no network", highlight=False)


def _classes(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    classes = {}
    for pair in pairs:
        source, sep, ecosystem = pair.rpartition("=")
        if not (sep and source and ecosystem):
            raise typer.BadParameter(f"{pair!r}: write the class as 'SOURCE CLASS=ecosystem'")
        classes[source] = ecosystem
    return classes


@app.command()
@_friendly
def mask(
    cube: Cube,
    out: Annotated[Path, typer.Option(help="Mask store to write.")] = Path("mask.zarr"),
    vectors: Annotated[
        list[Path] | None,
        typer.Option(help="Vector file whose polygons name their ecosystem; repeatable."),
    ] = None,
    mangrove: Annotated[
        list[Path] | None,
        typer.Option(help="Vector or raster (e.g. Global Mangrove Watch tile) of mangroves."),
    ] = None,
    saltmarsh: Annotated[
        list[Path] | None, typer.Option(help="Vector or raster of saltmarshes.")
    ] = None,
    ecosystem_column: Annotated[
        str, typer.Option(help="Column of --vectors naming the ecosystem.")
    ] = "ecosystem",
    class_: Annotated[
        list[str] | None,
        typer.Option(
            "--class", help="Map a source class to an ecosystem: 'SOURCE CLASS=saltmarsh'."
        ),
    ] = None,
    min_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Leave out pixels with less wetland cover.")
    ] = 0.0,
    overwrite: Overwrite = False,
) -> None:
    """Build the wetland mask on the cube's grid as fractional cover, from vectors or rasters."""
    report = api.mask(
        cube,
        out,
        vectors=vectors or [],
        sources={"mangrove": mangrove or [], "saltmarsh": saltmarsh or []},
        ecosystem_column=ecosystem_column,
        classes=_classes(class_ or []),
        min_fraction=min_fraction,
        overwrite=overwrite,
    )
    out_console.print(
        _table(report.areas, "wetland area: mask (pixel area x cover) against the sources", 3)
    )
    _written({"mask": report.path, "picture": report.picture})


@app.command()
@_friendly
def ingest(
    config: Annotated[
        Path, typer.Argument(help="Ingest config (YAML): grid, period, sources, fill.")
    ],
    out: Annotated[Path, typer.Option(help="Cube store to write.")] = Path("cube.zarr"),
    overwrite: Overwrite = False,
) -> None:
    """Build the monthly driver cube from local NetCDF, Zarr and GeoTIFF files."""
    report = api.ingest(config, out, overwrite=overwrite)
    if report.gaps:
        gaps = pd.DataFrame({"driver": list(report.gaps), "missing": list(report.gaps.values())})
        out_console.print(_table(gaps, "gaps filled (share of pixel-months missing)", 3))
    _written({"cube": report.path})


@app.command()
@_friendly
def fetch(
    period: Annotated[str, typer.Option(help="First and last month: YYYY-MM:YYYY-MM.")],
    project: Annotated[
        str | None,
        typer.Option(help="Google Cloud project with Earth Engine (--source earthengine)."),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="Where the drivers come from: earthengine, or stac (MODIS and ERA5 from a STAC "
            "catalogue, Planetary Computer by default)."
        ),
    ] = "earthengine",
    catalog: Annotated[
        str | None,
        typer.Option(
            help="With --source stac: STAC API URL or static catalog.json (default: Planetary "
            "Computer). Not the region --catalogue."
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            "-r",
            help="Area to cover: a catalogue name, a vector file, a bbox 'west,south,east,"
            "north' (lon/lat) or a GeoJSON/WKT polygon; repeat for more.",
        ),
    ] = None,
    resolution: Annotated[
        float | None, typer.Option(help="Pixel size in the CRS's units (with --region).")
    ] = None,
    crs: Annotated[str, typer.Option(help="CRS of the cube.")] = "EPSG:4326",
    sites: Annotated[
        Path | None,
        typer.Option(
            help="Instead of --region: folder with sites.csv; writes the drivers at the "
            "towers (a CSV, as `upscale extract`), no cube."
        ),
    ] = None,
    scale: Annotated[
        float | None,
        typer.Option(help="With --sites: sampling scale in metres (default: each driver's own)."),
    ] = None,
    variables: Annotated[
        str | None, typer.Option(help="Drivers, comma-separated (default: all).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Cube store to write (cube.zarr), or with --sites a CSV (drivers.csv)."),
    ] = None,
    catalogue: Catalogue = None,
    service_account: Annotated[
        str | None, typer.Option(help="Service account e-mail (with --key-file).")
    ] = None,
    key_file: Annotated[Path | None, typer.Option(help="Service account JSON key.")] = None,
    export_to: Annotated[
        str | None,
        typer.Option(help="Export instead: gs://BUCKET, gs://BUCKET/PREFIX or drive:FOLDER."),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Build the monthly driver cube of a region from Earth Engine or a STAC catalogue (resumable).

    With --sites instead of --region and --resolution, write the drivers at the towers (Earth
    Engine only).
    """
    result = api.fetch(
        project,
        out or Path("drivers.csv" if sites else "cube.zarr"),
        region=region or None,
        crs=crs,
        resolution=resolution,
        period=_period(period),
        variables=variables.split(",") if variables else None,
        source=source,  # type: ignore[arg-type]  # checked by api.fetch
        catalog=catalog,
        sites=sites,
        scale=scale,
        catalogue=catalogue,
        service_account=service_account,
        key_file=key_file,
        export_to=export_to,
        overwrite=overwrite,
    )
    if isinstance(result, Path):
        _written({"drivers" if sites else "cube": result})
    else:
        out_console.print(f"started {len(result)} export task(s): {', '.join(result)}")


@app.command()
@_friendly
def extract(
    sites: Sites,
    cube: Cube,
    out: Annotated[Path, typer.Option(help="CSV to write: site_id, time, <DRIVER>...")] = Path(
        "drivers.csv"
    ),
    features: Annotated[
        str | None,
        typer.Option(help="Drivers, comma-separated, in this order (default: all the cube's)."),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write the monthly drivers of the cube at the pixel under each tower, and that pixel."""
    report = api.extract(
        sites,
        cube,
        out,
        features=features.split(",") if features else None,
        overwrite=overwrite,
    )
    columns = ["site_id", "row", "col", "pixel_lon", "pixel_lat", "distance_m"]
    out_console.print(_table(report.pixels[columns], "pixel under each tower (distance in m)", 4))
    _written({"drivers": report.path, "pixels": report.pixels_path})


@app.command()
@_friendly
def bench(
    out: Annotated[Path, typer.Option(help="JSON report to write.")] = Path("bench.json"),
    ny: Annotated[int, typer.Option(min=8, help="Rows of the generated grid.")] = 128,
    nx: Annotated[int, typer.Option(min=8, help="Columns of the generated grid.")] = 168,
    years: Annotated[int, typer.Option(min=2, help="Years of monthly drivers.")] = 12,
    wetland_share: Annotated[
        float, typer.Option(min=0.001, max=0.25, help="Share of the grid kept as wetland.")
    ] = 0.10,
    tile: Annotated[int, typer.Option(min=4, help="Spatial tile size.")] = 64,
    explain: Annotated[
        bool, typer.Option(help="Also time the SHAP summary rasters of explain.")
    ] = True,
    architectures: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated architectures timed at L = 6 and 12 against the LSTM; "
            "by default every registered one."
        ),
    ] = None,
) -> None:
    """Measure predict against its floors and the baselines users write, for every net."""
    with tempfile.TemporaryDirectory(prefix="upscale-bench-") as work:
        report = run_bench(
            work,
            ny=ny,
            nx=nx,
            years=years,
            wetland_share=wetland_share,
            tile=tile,
            explain=explain,
            architectures=_names(architectures),
            status=console.print,
        )
    seconds = pd.DataFrame(
        {"step": list(report["seconds"]), "seconds": list(report["seconds"].values())}
    )
    out_console.print(
        _table(seconds, f"{report['wetland_pixels']} wetland pixels, {report['device']}")
    )
    for name, seconds in report["baselines"].items():
        ratio = report["baseline_over_predict"][name]
        out_console.print(f"baseline {name}: {seconds:.2f} s, {ratio:.1f}x predict")
    out_console.print(
        f"{report['pixel_months_per_second'] / 1e6:.2f} M pixel-months/s; predict / floor "
        f"{report['predict_over_floor']:.2f}; peak memory of predict "
        f"{report['peak_memory_mb']:.0f} MB"
    )
    peer = report["peer"]
    rows = [
        {
            "net": f"{name} (peer)" if name == peer else name,
            "L": memory.removeprefix("L"),
            "nets": run["nets_pixel_months_per_second"] / 1e3,
            "predict": run["predict_pixel_months_per_second"] / 1e3,
            "nets x": run["nets_speedup"],
            "model x": run["model_speedup"],
            "predict x": run["predict_speedup"],
            "/ floor": run["predict_over_floor"],
        }
        for name, memories in report["architectures"].items()
        for memory, run in memories.items()
    ]
    title = (
        f"thousand pixel-months/s; x: speed-up over {report['speedups_over']} (model: nets "
        "and domain distance); predict / its floor"
    )
    out_console.print(_table(pd.DataFrame(rows), title, 2))
    if peer:
        memory, line = next(iter(report["architectures"][peer].items()))
        out_console.print(
            f"peer line, boosted trees ({peer} {memory}, {line['trees_kept']:.0f} trees per flux"
            f" and member): {line['predict_pixel_months_per_second'] / 1e3:.1f} thousand "
            f"pixel-months/s end to end, {line['predict_speedup']:.2f}x "
            f"{report['speedups_over']}"
        )
    _written({"report": write_report(report, out)})


regions_app = typer.Typer(no_args_is_help=True, help="The region catalogue: list and show.")
app.add_typer(regions_app, name="regions")


RegionsMask = Annotated[
    Path | None, typer.Option(help="Mask or maps.zarr: add wetland area per ecosystem.")
]


@regions_app.command("list")
@_friendly
def regions_list(catalogue: Catalogue = None, mask: RegionsMask = None) -> None:
    """List the catalogue's regions with their area (and wetland area per ecosystem)."""
    table = api.list_regions(catalogue, mask=mask)
    table = table.drop(columns=["west", "south", "east", "north"])
    table.columns = [c.removesuffix("_km2").replace("area", "region") for c in table.columns]
    out_console.print(_table(table, "regions (areas in km2: the region, and its wetland)", 1))


@regions_app.command("show")
@_friendly
def regions_show(
    name: Annotated[str, typer.Argument(help="Region name.")],
    catalogue: Catalogue = None,
    mask: RegionsMask = None,
) -> None:
    """Show one region: its file, area, bounds (lon/lat) and wetland per ecosystem."""
    region = api.show_region(name, catalogue, mask=mask)
    details = pd.DataFrame({"field": region.index, "value": [str(v) for v in region]})
    out_console.print(_table(details, name))


def _period(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    first, _, last = text.partition(":")
    if not (first and last):
        raise typer.BadParameter(f"{text!r}: write the period as YYYY-MM:YYYY-MM")
    return first, last


def _numbers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of months") from None


@app.command()
@_friendly
def sweep(
    sites: Sites,
    cube: TowerCube = None,
    out: Annotated[Path, typer.Option(help="Folder for the tables and figure.")] = Path("sweep"),
    config: Annotated[
        Path | None, typer.Option(help="Base training config: a YAML file, or a preset.")
    ] = None,
    architectures: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated architectures; by default every registered one, "
            "as listed by upscale train --help."
        ),
    ] = None,
    memories: Annotated[
        str, typer.Option(help="Comma-separated memory lengths (months); 1 is always added.")
    ] = ",".join(map(str, DEFAULT_MEMORIES)),
    nee_modes: Annotated[
        str, typer.Option(help="NEE modes compared at the config's memory.")
    ] = ",".join(NEE_MODES),
    features: Features = None,
    cv: CrossValidation = None,
    test_fraction: TestFraction = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum training epochs.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Parallel training processes (without --scheduler).")
    ] = None,
    scheduler: Scheduler = None,
    site_drivers_table: SiteDriversTable = None,
    partitioning: Partitioning = "NT",
    overwrite: Overwrite = False,
) -> None:
    """Cross-validate architectures x memory lengths x ecosystems; choose the memory per flux."""
    settings = _settings(
        config, features=_names(features), cv=cv, test_fraction=test_fraction, epochs=epochs
    )
    report = api.sweep(
        sites,
        cube,
        out,
        config=settings,
        architectures=_names(architectures),
        memories=_numbers(memories),
        nee_modes=list(_names(nee_modes) or ()),
        partitioning=partitioning,
        site_drivers_table=site_drivers_table,
        workers=workers,
        scheduler=scheduler,
        overwrite=overwrite,
    )
    optimum = report.result.optimum.rename(
        columns={
            "ecosystem": "eco",
            "architecture": "arch",
            "chosen_memory": "L",
            "chosen_nse": "nse",
            "best_memory": "L best",
            "best_nse": "nse best",
            "baseline_nse": "nse L=1",
        }
    )
    out_console.print(_table(optimum, "memory chosen per flux (1-SE rule on fold NSE)"))
    if not report.result.nee_modes.empty:
        out_console.print(_table(report.result.nee_modes, "NEE skill by NEE mode"))
    _written(report.outputs)


@app.command()
@_friendly
def explain(
    model: Annotated[list[Path], typer.Option(help="Model folder; repeat once per ecosystem.")],
    sites: Sites,
    cube: TowerCube = None,
    out: Annotated[Path, typer.Option(help="Folder for the tables and figures.")] = Path("explain"),
    features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated drivers shown in the importance table and figure "
            "[default: all the models' features]."
        ),
    ] = None,
    site_drivers_table: SiteDriversTable = None,
    windows: Annotated[int, typer.Option(min=1, help="Tower windows explained.")] = 300,
    background: Annotated[int, typer.Option(min=1, help="Background tower windows.")] = 200,
    samples: Annotated[int, typer.Option(min=1, help="Expected-gradients samples.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the draws.")] = 0,
    null: Annotated[
        bool, typer.Option(help="Train a memoryless null model to test the memory against.")
    ] = True,
    mask: Annotated[
        Path | None, typer.Option(help="Wetland mask: also map the explanation (shap.zarr).")
    ] = None,
    months: Annotated[int, typer.Option(min=1, help="Months explained per pixel (maps).")] = 4,
    period: Annotated[
        str | None, typer.Option(help="Period of the maps, YYYY-MM:YYYY-MM (default: all).")
    ] = None,
    partitioning: Partitioning = "NT",
    overwrite: Overwrite = False,
) -> None:
    """Explain models at their towers: driver ranking and memory (gradient SHAP)."""
    report = api.explain(
        sites,
        cube,
        model,
        out,
        features=_names(features),
        site_drivers_table=site_drivers_table,
        windows=windows,
        background=background,
        samples=samples,
        seed=seed,
        null=null,
        mask=mask,
        months=months,
        period=_period(period),
        partitioning=partitioning,
        overwrite=overwrite,
    )
    memory = pd.concat([e.lag_summary() for e in report.explanations])
    columns = ["ecosystem", "target", "mean_lag", "members_sd_lag", "lag50", "lag90"]
    columns += [c for c in ("null_mean_lag", "z_vs_null") if c in memory]
    out_console.print(_table(memory[columns], "memory (months back; SHAP-weighted)"))
    top = pd.concat(
        [e.attribution.importance().assign(ecosystem=e.ecosystem) for e in report.explanations]
    )
    top = top[top["rank"] <= 3][["ecosystem", "target", "rank", "feature", "mean_abs"]]
    out_console.print(_table(top, "top drivers (mean |SHAP|, gC m-2 d-1)", digits=3))
    _written(report.outputs)
