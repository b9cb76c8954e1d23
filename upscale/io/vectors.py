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


VECTOR_SUFFIXES = frozenset({".geojson", ".gpkg", ".shp", ".fgb", *PARQUET_SUFFIXES})
"""Suffixes of the vector files a folder is searched for (regions, budgets with outlines)."""


def vector_columns(path: Path) -> list[str]:
    """Names of a vector file's attribute columns, read without its features; [] if unreadable.

    For telling files apart cheaply (regions have a ``name`` column, wetland inventories an
    ``ecosystem`` one) before reading a large one whole.
    """
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return [c for c in pq.read_schema(path).names if c != "geometry"]
        import pyogrio

        return list(pyogrio.read_info(path)["fields"])
    except Exception:  # GDAL and pyarrow raise many types; all mean "not a vector file"
        return []
