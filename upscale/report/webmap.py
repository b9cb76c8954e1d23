"""An interactive map of the carbon sink for the report: Leaflet through folium, all inline.

folium links Leaflet, jQuery, Bootstrap and icon fonts from CDNs and offers web basemaps;
a report must open offline, and a failed fetch is an error in the reader's console. So the
map here loads nothing: Leaflet's script and style sheet come from the ``xstatic-leaflet``
package (the images its style sheet names become ``data:`` URLs), folium's other links are
dropped, there are no basemap tiles, the sink is an image overlay (an embedded PNG), the
regions are GeoJSON and the towers circle markers (vectors, no marker images). Both
packages are the ``report`` extra: ``pip install 'upscale[report]'``.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import Normalize, TwoSlopeNorm

from upscale.report.plots import ECOSYSTEM_COLOURS
from upscale.schema import ANNUAL_FLUX_UNITS

REPORT_EXTRA = "pip install 'upscale[report]'"
"""What to install for the interactive map."""

_LEGEND_STOPS = 11  # colours sampled along the scale for the CSS gradient of the legend


def missing_extra() -> str | None:
    """Say what the interactive map lacks and how to install it; None when all is here."""
    try:
        import folium  # noqa: F401
        import xstatic.pkg.leaflet  # noqa: F401
    except ImportError as err:
        return f"the interactive map needs the package {err.name}, not installed: {REPORT_EXTRA}"
    return None


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's script and its style sheet, with the images it names inlined as data URLs.

    Returns
    -------
    tuple of str
        The JavaScript and the CSS of the Leaflet release that ``xstatic-leaflet`` ships.
    """
    import xstatic.pkg.leaflet as leaflet

    folder = Path(leaflet.BASE_DIR)
    script = (folder / "leaflet.js").read_text(encoding="utf-8")
    style = (folder / "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        image = folder / match.group(1)
        encoded = base64.b64encode(image.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{encoded})"

    return script, re.sub(r"url\((images/[\w.-]+\.png)\)", inline, style)


def _sink_style(sink: xr.DataArray) -> tuple[matplotlib.colors.Colormap, Normalize]:
    """Pick the static sink maps' scale: diverging around zero when there are sources."""
    low, high = float(sink.min()), float(sink.max())
    if low < 0 < high:
        return matplotlib.colormaps["RdBu"], TwoSlopeNorm(0.0, low, high)
    return matplotlib.colormaps["Blues"], Normalize(low, high)


def _legend_html(cmap: matplotlib.colors.Colormap, norm: Normalize, label: str) -> str:
    """Draw a colour bar as a CSS gradient with its end values: no image, no script."""
    stops = ", ".join(
        matplotlib.colors.to_hex(cmap(norm(value)))
        for value in np.linspace(norm.vmin, norm.vmax, _LEGEND_STOPS)
    )
    return (
        f'<div class="legend"><span>{norm.vmin:,.0f}</span>'
        f'<span class="bar" style="background: linear-gradient(to right, {stops})"></span>'
        f"<span>{norm.vmax:,.0f}</span><span>{html.escape(label)}</span></div>"
    )


def sink_webmap(
    sink: xr.DataArray,
    *,
    regions: gpd.GeoDataFrame | None = None,
    sites: pd.DataFrame | None = None,
    title: str = "carbon sink (-NEE)",
) -> str:
    """Build a pannable, zoomable map of the sink with the regions and towers, as HTML.

    Parameters
    ----------
    sink
        Mean annual sink (-NEE, gC m-2 yr-1) ``(y, x)`` with a CRS; NaN outside wetlands
        is transparent.
    regions
        Optional regions with a ``name`` column, any CRS: outlines with their name on hover.
    sites
        Optional towers indexed by ``site_id`` with ``lat``, ``lon`` and ``ecosystem``.
    title
        Name of the overlay in the layer control.

    Returns
    -------
    str
        An ``<iframe>`` whose ``srcdoc`` holds the whole Leaflet page (so that folium's page
        style stays inside it), followed by the legend.

    Raises
    ------
    ImportError
        When folium or xstatic-leaflet is missing (see
        [`missing_extra`][upscale.report.webmap.missing_extra]).
    """
    import folium
    from branca.element import Element

    if sink.rio.crs is None or not sink.rio.crs.is_geographic:
        sink = sink.rio.reproject("EPSG:4326")  # Leaflet places images by longitude, latitude
    west, south, east, north = sink.rio.bounds()
    cmap, norm = _sink_style(sink)
    rgba = cmap(norm(sink.values))
    rgba[..., 3] = np.where(np.isfinite(sink.values), 0.85, 0.0)
    rows_north_up = sink["y"].values[0] > sink["y"].values[-1]
    webmap = folium.Map(tiles=None, control_scale=True, width="100%", height="100%")
    webmap.default_js, webmap.default_css = [], []  # nothing from CDNs: Leaflet is inlined below
    script, style = leaflet_assets()
    root = webmap.get_root()
    root.header.add_child(Element(f"<style>{style}</style>"), name="leaflet_css")
    root.header.add_child(Element(f"<script>{script}</script>"), name="leaflet_js")
    folium.raster_layers.ImageOverlay(
        (rgba * 255).astype(np.uint8),
        bounds=[[south, west], [north, east]],
        origin="upper" if rows_north_up else "lower",
        mercator_project=True,  # rows evenly spaced in latitude, drawn on Web Mercator
        name=title,
    ).add_to(webmap)
    if regions is not None:
        folium.GeoJson(
            regions[["name", "geometry"]].to_crs("EPSG:4326"),
            name="regions",
            style_function=lambda _: {"color": "#000000", "weight": 2, "fillOpacity": 0.0},
            tooltip=folium.GeoJsonTooltip(["name"], labels=False),
        ).add_to(webmap)
    if sites is not None:
        towers = folium.FeatureGroup(name="towers").add_to(webmap)
        for site, row in sites.iterrows():
            colour = matplotlib.colors.to_hex(ECOSYSTEM_COLOURS.get(row["ecosystem"], "k"))
            folium.CircleMarker(
                (float(row["lat"]), float(row["lon"])),
                radius=6,
                color="#000000",
                weight=1,
                fill=True,
                fill_color=colour,
                fill_opacity=0.9,
                tooltip=f"{site} ({row['ecosystem']})",
            ).add_to(towers)
    folium.LayerControl(collapsed=False).add_to(webmap)
    webmap.fit_bounds([[south, west], [north, east]])
    page = root.render()
    frame = (
        f'<iframe class="webmap" title="{html.escape(title)}" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
    )
    return frame + _legend_html(cmap, norm, f"{title} ({ANNUAL_FLUX_UNITS})")
