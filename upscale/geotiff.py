"""Export maps to Cloud-Optimized GeoTIFFs for GIS: one file per variable, bands over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr
from rio_cogeo.cogeo import cog_validate

from upscale.annual import annual_totals, valid_period
from upscale.errors import OutputExistsError
from upscale.schema import FLUXES

Period = Literal["annual", "monthly"]


def _write_cog(bands: xr.DataArray, labels: Sequence[str], path: Path) -> Path:
    """Write ``(band, y, x)`` as a COG with band descriptions, units and NaN nodata."""
    bands = bands.astype("float32").rename({bands.dims[0]: "band"})
    bands = bands.assign_coords(band=np.arange(1, bands.sizes["band"] + 1))
    bands.attrs = {
        "long_name": tuple(labels),
        "units": bands.attrs.get("units", ""),
        "comment": bands.attrs.get("comment", ""),
    }
    bands = bands.rio.write_nodata(np.nan, encoded=False)
    partial = path.with_name(path.stem + ".partial.tif")
    bands.rio.to_raster(partial, driver="COG", compress="DEFLATE", predictor=3)
    valid, errors, _ = cog_validate(str(partial))
    if not valid:
        partial.unlink()
        raise RuntimeError(f"{path}: GDAL wrote an invalid COG: {errors}")
    partial.replace(path)
    return path


def export_cogs(
    maps: xr.Dataset,
    folder: str | Path,
    *,
    periods: Sequence[Period] = ("annual",),
    overwrite: bool = False,
) -> list[Path]:
    """Write each flux as a Cloud-Optimized GeoTIFF.

    Parameters
    ----------
    maps
        Output of :func:`upscale.engine.flux_maps`, as written and reopened.
    folder
        Destination folder.
    periods
        ``annual``: one band per complete year, totals in gC m-2 yr-1, file
        ``<VAR>_annual.tif``. ``monthly``: one band per valid month, in gC m-2 d-1, file
        ``<VAR>_monthly.tif``.
    overwrite
        Replace existing files.

    Returns
    -------
    list of pathlib.Path
        The files written, each validated as a COG.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers: list[tuple[Path, xr.DataArray, list[str]]] = []
    if "annual" in periods:
        totals = annual_totals(maps)
        for name in totals.data_vars:
            labels = [f"{name} {year} total" for year in totals["year"].values]
            layers.append((folder / f"{name}_annual.tif", totals[name], labels))
    if "monthly" in periods:
        monthly = valid_period(maps)
        for name in (n for n in FLUXES if n in maps):
            labels = [f"{name} {t:%Y-%m} mean" for t in monthly.indexes["time"]]
            layers.append((folder / f"{name}_monthly.tif", monthly[name], labels))
    existing = [str(path) for path, _, _ in layers if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{', '.join(existing)} exist; pass --overwrite to replace them")
    return [_write_cog(data.compute(), labels, path) for path, data, labels in layers]
