"""Every figure the tool writes has a title, units, a colour bar or legend and readable labels.

The figures are caught as the real chain saves them (demo, sweep, explain, mask, query on a
small region), so a new figure is checked without being listed here.
"""

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import shapely
import xarray as xr
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.text import Text

import upscale
from upscale.demo_region import DemoSpec
from upscale.report.plots import mask_figure, save_png

pytestmark = pytest.mark.slow

EXPECTED = {
    "annual_maps.png",
    "uncertainty_maps.png",
    "cross_validation.png",
    "region_sink.png",
    "region_fluxes.png",
    "skill_vs_memory.png",
    "importance.png",
    "memory_profile.png",
    "mask.png",
    "report: eddy-covariance towers, wetland pixels shaded by ecosystem",
    "report: mangrove: held-out R² by part of the signal",
    "report: mangrove: cross-validated skill vs memory",
    "report: gross primary productivity",
    "report: spread of annual GPP",
    "report: carbon sink of each region's wetlands per year (bars: ensemble spread)",
}
UNITS = re.compile(r"\(.+\)")
SMALLEST_FONT = 7  # points, at the 110 dpi of save_png


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict[str, Figure]:
    """Run the chain on a small region, keeping each figure as it is saved."""
    saved: dict[str, Figure] = {}
    write = Figure.savefig

    def keep(fig, fname, *args, **kwargs):
        if isinstance(fname, str | Path):
            saved[Path(fname).name] = fig
        else:  # embedded in the report: named by its first panel's title
            saved[f"report: {fig.axes[0].get_title().splitlines()[0]}"] = fig
        return write(fig, fname, *args, **kwargs)

    out = tmp_path_factory.mktemp("figures")
    config = upscale.TrainConfig(memory=3, epochs=3, folds=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", keep)
        report = upscale.demo(
            out / "demo",
            spec=DemoSpec(ny=24, nx=32, years=4, n_mangrove_sites=4, n_saltmarsh_sites=4),
            config=config,
            status=lambda _: None,
        )
        inputs = out / "demo" / "inputs"
        upscale.sweep(
            inputs / "sites",
            inputs / "cube.zarr",
            out / "sweep",
            config=config,
            architectures=("lstm",),
            memories=(1, 3),
            nee_modes=("direct",),
            workers=1,
        )
        models = sorted(p for p in (out / "demo" / "models").glob("demo-*") if p.is_dir())
        upscale.explain(
            inputs / "sites",
            inputs / "cube.zarr",
            models,
            out / "explain",
            windows=20,
            background=20,
            samples=4,
            null=False,
        )
        wetlands = gpd.GeoDataFrame(
            {"ecosystem": ["mangrove", "saltmarsh"]},
            geometry=[shapely.box(-81.6, 25.3, -81.4, 25.7), shapely.box(-81.4, 25.3, -81.2, 25.7)],
            crs=4326,
        )
        wetlands.to_file(out / "wetlands.gpkg")
        upscale.mask(inputs / "cube.zarr", out / "mask.zarr", vectors=[out / "wetlands.gpkg"])
        whole = upscale.api.report(out, status=lambda _: None)  # demo, sweep and explain
    assert report.outputs["maps_png"].exists()
    assert all(section.present for section in whole.sections)
    return saved


def test_every_figure_is_caught(figures):
    assert set(figures) == EXPECTED


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _numeric(labels) -> bool:
    text = [t.get_text().replace("−", "-") for t in labels if t.get_text()]
    return bool(text) and all(re.fullmatch(r"[-+0-9.,e ]+", t) for t in text)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_figure_is_labelled(figures, name):
    fig = figures[name]
    colourbars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax not in colourbars]
    assert panels
    for ax in panels:
        assert ax.get_title() or fig.get_suptitle(), f"{name}: a panel without a title"
        for axis in (ax.xaxis, ax.yaxis):
            label, ticks = axis.get_label_text(), axis.get_ticklabels()
            if not any(t.get_visible() and t.get_text() for t in ticks):
                continue  # shared axis: labelled on its neighbour
            assert label, f"{name}: {axis.axis_name} axis without a label"
            dates = type(axis.get_major_formatter()).__module__ == "matplotlib.dates"
            if _numeric(ticks) and not dates:
                assert UNITS.search(label), f"{name}: {axis.axis_name} label {label!r} has no units"
        images = [a for a in ax.get_children() if isinstance(a, AxesImage)]
        for image in images:
            bar = image.colorbar
            assert bar is not None, f"{name}: an image without a colour bar"
            assert UNITS.search(bar.ax.get_ylabel()), f"{name}: colour bar without units"
        if not images:
            series = [line for line in ax.get_lines() if line.get_label()[0] != "_"]
            markers = [c for c in ax.collections if isinstance(c, PathCollection)]
            if len(series) + len(markers) > 1:
                assert ax.get_legend() or any(other.get_legend() for other in panels), (
                    f"{name}: several series and no legend"
                )
    small = [t.get_text() for t in _texts(fig) if t.get_fontsize() < SMALLEST_FONT]
    assert not small, f"{name}: text smaller than {SMALLEST_FONT} pt: {small[:3]}"


def test_maps_on_a_projected_grid_name_its_units():
    x = 460_000 + 1000 * np.arange(6)
    y = 2_860_000 - 1000 * np.arange(5)
    cover = xr.DataArray(np.full((5, 6), 0.5), coords={"y": y, "x": x}, dims=("y", "x"))
    mask = xr.Dataset({"mangrove_fraction": cover}).rio.write_crs("EPSG:32617")
    ax = mask_figure(mask).axes[0]
    assert ax.get_xlabel() == "x (metre, EPSG:32617)" and ax.get_ylabel() == "y (metre)"
    assert "15.0 km²" in ax.get_title()  # 30 pixels of 1 km², half covered


def test_figures_save_as_png(figures, tmp_path):
    path = save_png(figures["annual_maps.png"], tmp_path / "again.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
