"""Export formats: the files an export writes from the maps, as a registry.

An export turns the maps (and the layers made from them: annual totals, monthly means, the
extrapolated share) into files for other tools. Each format plans the files it writes and
how to write each one; [`export_maps`][upscale.io.exports.export_maps] writes the files of every
format asked for as one resumable run. A new format is one module that plans its files plus
one [`register_export_format`][upscale.io.exports.register_export_format] call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from upscale.io.durable import output_lock, resumable
from upscale.io.geotiff import cog_files
from upscale.io.netcdf import netcdf_files

Layer = tuple[xr.DataArray, Sequence[str]]
"""Bands ``(band, y, x)`` of one exported layer, and a label per band."""

FilePlanner = Callable[[xr.Dataset, Mapping[str, Layer], Path], dict[Path, Callable[[], Path]]]
"""Maps, layers and a folder -> each file a format writes there, with the call writing it."""

EXPORT_PLAN = ".upscale-export.json"
"""File in the export folder recording an export under way (see `upscale.io.durable.resumable`)."""


@dataclass(frozen=True)
class ExportFormat:
    """A kind of file an export writes.

    Attributes
    ----------
    name
        What a user asks for (``cog``, ``netcdf``).
    description
        One line for the docs and messages.
    files
        Plans the files of the format in an export folder (see
        [`FilePlanner`][upscale.io.exports.FilePlanner]); each writer stages its file and
        renames it into place, so a killed export leaves whole files only.
    """

    name: str
    description: str
    files: FilePlanner


EXPORT_FORMATS: dict[str, ExportFormat] = {}
"""The registered export formats, by name."""


def register_export_format(fmt: ExportFormat) -> ExportFormat:
    """Add an export format to [`EXPORT_FORMATS`][upscale.io.exports.EXPORT_FORMATS].

    Raises
    ------
    ValueError
        When the name is taken.
    """
    if fmt.name in EXPORT_FORMATS:
        raise ValueError(f"an export format is already called {fmt.name!r}")
    EXPORT_FORMATS[fmt.name] = fmt
    return fmt


register_export_format(
    ExportFormat("cog", "one Cloud-Optimized GeoTIFF per layer, <layer>.tif", cog_files)
)
register_export_format(
    ExportFormat("netcdf", "the maps as one CF-1.8 NetCDF, maps.nc", netcdf_files)
)


def export_maps(
    maps: xr.Dataset,
    layers: Mapping[str, Layer],
    folder: str | Path,
    *,
    formats: Sequence[str] = ("cog",),
    overwrite: bool = False,
) -> list[Path]:
    """Write the files of each format into ``folder``, as one resumable run.

    Parameters
    ----------
    maps
        Output of [`flux_maps`][upscale.engine.tiles.flux_maps], as written and reopened.
    layers
        Bands and labels by layer name, as [`export_layers`][upscale.budgets.annual.export_layers]
        makes them from the maps (annual totals, monthly means, the extrapolated share).
    folder
        Destination folder.
    formats
        Names of registered formats ([`EXPORT_FORMATS`][upscale.io.exports.EXPORT_FORMATS]).
    overwrite
        Replace existing files.

    Returns
    -------
    list of pathlib.Path
        The files written (each COG validated).

    Raises
    ------
    ValueError
        For a format that is not registered.

    Notes
    -----
    An export killed part-way and started again on the same maps writes only the files it
    had not finished; until all are written, its plan is in ``.upscale-export.json``.
    """
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(
            f"unknown export format(s) {unknown}; choose from {', '.join(EXPORT_FORMATS)}"
        )
    folder = Path(folder)
    writers: dict[Path, Callable[[], Path]] = {}
    for name in formats:
        writers |= EXPORT_FORMATS[name].files(maps, layers, folder)
    plan = {
        "maps": {key: maps.attrs.get(key) for key in ("created", "inputs", "models")},
        "files": [path.name for path in writers],
    }
    with (
        output_lock(folder),  # one run at a time writes into the folder
        resumable(folder / EXPORT_PLAN, plan, writers, overwrite=overwrite) as finished,
    ):
        for path, write in writers.items():
            if path not in finished:  # a killed export, started again, writes the rest
                write()
    return list(writers)
