"""Read vector files (anything GDAL reads, and GeoParquet) with one clear error."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from upscale.errors import UpscaleError

PARQUET_SUFFIXES = frozenset({".parquet", ".geoparquet"})


def read_vector(path: Path, error: type[UpscaleError]) -> gpd.GeoDataFrame:
    """Read a vector file, raising ``error`` with the path when it is missing or unreadable.

    Parameters
    ----------
    path
        GeoPackage, GeoJSON, Shapefile, FlatGeobuf... (through GDAL) or GeoParquet.
    error
        The project's error type for the caller's kind of input (masks, regions).
    """
    if not path.exists():
        raise error(f"{path}: no such file")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return gpd.read_parquet(path)
        return gpd.read_file(path)
    except Exception as err:  # GDAL and pyarrow raise many types; all mean the same here
        raise error(f"{path}: not a readable vector file ({err})") from None
