"""The region catalogue, and turning what a user types into regions to query.

The catalogue is a folder of vector files of named regions (``regions/`` by default, or
``$UPSCALE_REGIONS``); names are unique across it. A query names regions from it, or gives
a file, a bounding box, or a GeoJSON or WKT polygon directly.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
import shapely.errors
import shapely.geometry
from pyproj import CRS
from pyproj.exceptions import CRSError

from upscale.budgets.regions import in_lonlat, read_regions, region_area_km2, valid_regions
from upscale.errors import InvalidRegionsError

CATALOGUE_ENV = "UPSCALE_REGIONS"
"""Environment variable naming the catalogue folder."""

VECTOR_SUFFIXES = frozenset(
    {".geojson", ".json", ".gpkg", ".shp", ".parquet", ".geoparquet", ".fgb"}
)
"""Files of the catalogue folder read as regions."""

_NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"
_BBOX = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$")


def default_catalogue() -> Path:
    """Return the catalogue folder: ``$UPSCALE_REGIONS`` when set, else ``./regions``."""
    return Path(os.environ.get(CATALOGUE_ENV, "regions"))


def catalogue_regions(folder: str | Path | None = None) -> gpd.GeoDataFrame:
    """Every region of the catalogue, in EPSG:4326, with the ``file`` it comes from.

    Raises
    ------
    InvalidRegionsError
        When the folder is missing or empty, a file is unusable, or two regions share a name.
    """
    folder = Path(folder) if folder is not None else default_catalogue()
    if not folder.is_dir():
        raise InvalidRegionsError(
            f"{folder}: no region catalogue folder; create it and put vector files of named "
            f"regions in it, or point {CATALOGUE_ENV} (--catalogue) to one"
        )
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in VECTOR_SUFFIXES)
    if not files:
        raise InvalidRegionsError(
            f"{folder}: holds no region file ({', '.join(sorted(VECTOR_SUFFIXES))})"
        )
    frames = []
    for path in files:
        frames.append(in_lonlat(read_regions(path)).assign(file=path.name))
    merged = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    clash = merged[merged["name"].duplicated(keep=False)]
    if not clash.empty:
        where = "; ".join(f"{n!r} in {', '.join(g['file'])}" for n, g in clash.groupby("name"))
        raise InvalidRegionsError(f"{folder}: region names must be unique across files: {where}")
    return merged


def catalogue_table(regions: gpd.GeoDataFrame) -> pd.DataFrame:
    """Name, file, geodesic area and lon/lat bounds of each catalogue region."""
    bounds = regions.geometry.bounds.round(4)
    return pd.DataFrame(
        {
            "name": regions["name"].to_numpy(),
            "file": regions["file"].to_numpy(),
            "area_km2": region_area_km2(regions).to_numpy(),
            "west": bounds["minx"].to_numpy(),
            "south": bounds["miny"].to_numpy(),
            "east": bounds["maxx"].to_numpy(),
            "north": bounds["maxy"].to_numpy(),
        }
    )


def resolve_regions(
    specs: Sequence[str | Path] | str | Path,
    *,
    catalogue: str | Path | None = None,
    crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Regions for a query from what the user gave, in EPSG:4326.

    Parameters
    ----------
    specs
        Each one of: a vector file (all its named regions); a region name from the
        catalogue; a bounding box ``west,south,east,north``; a GeoJSON geometry, Feature or
        FeatureCollection; a WKT polygon.
    catalogue
        Catalogue folder for names (default:
        [`default_catalogue`][upscale.budgets.catalogue.default_catalogue]).
    crs
        CRS of bounding boxes and WKT polygons (default EPSG:4326). GeoJSON is always
        EPSG:4326, as its specification says; files carry their own CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        ``name`` and ``geometry``; names of typed shapes say what they were.

    Raises
    ------
    InvalidRegionsError
        When a spec is none of the above, or names repeat.
    """
    if isinstance(specs, (str, Path)):
        specs = [specs]
    if not specs:
        raise InvalidRegionsError("no region given; name one, or give a file, a bbox or a polygon")
    typed_crs = _crs(crs)
    frames: list[gpd.GeoDataFrame] = []
    known: gpd.GeoDataFrame | None = None
    for number, spec in enumerate(specs, start=1):
        text = str(spec).strip()
        if (
            isinstance(spec, Path)
            or Path(text).suffix.lower() in VECTOR_SUFFIXES
            or Path(text).is_file()
        ):
            frames.append(in_lonlat(read_regions(Path(text)))[["name", "geometry"]])
        elif _BBOX.match(text):
            west, south, east, north = (float(v) for v in text.split(","))
            if not (west < east and south < north):
                raise InvalidRegionsError(
                    f"bbox {text!r}: give west,south,east,north with west < east"
                )
            if typed_crs.is_geographic and max(abs(south), abs(north)) > 90:
                raise InvalidRegionsError(
                    f"bbox {text!r} is not in degrees; give its CRS (--crs EPSG:...)"
                )
            frames.append(
                _shape_frame(f"bbox {text}", shapely.box(west, south, east, north), typed_crs)
            )
        elif text.startswith("{"):
            frames.append(_geojson_regions(text, number))
        elif re.match(r"^(MULTI)?POLYGON\s*\(", text, flags=re.IGNORECASE):
            try:
                shape = shapely.from_wkt(text)
            except shapely.errors.GEOSException as err:
                raise InvalidRegionsError(
                    f"region {number}: not a valid WKT polygon ({err})"
                ) from None
            frames.append(_shape_frame(f"polygon {number}", shape, typed_crs))
        else:
            if known is None:
                known = _catalogue_or_hint(catalogue, text)
            match = known[known["name"] == text]
            if match.empty:
                close = [n for n in known["name"] if text.lower() in n.lower()]
                hint = (
                    f"; did you mean {close}?"
                    if close
                    else "; list them with `upscale regions list`"
                )
                raise InvalidRegionsError(
                    f"{text!r} is not a region of the catalogue, a file, a bbox "
                    f"(west,south,east,north) or a polygon{hint}"
                )
            frames.append(match[["name", "geometry"]])
    regions = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    twice = sorted(set(regions.loc[regions["name"].duplicated(), "name"]))
    if twice:
        raise InvalidRegionsError(f"region(s) {twice} given twice; give each region once")
    return regions[["name", "geometry"]]


def _crs(text: str | None) -> CRS:
    try:
        return CRS.from_user_input(text or "EPSG:4326")
    except CRSError as err:
        raise InvalidRegionsError(f"--crs {text!r}: not a CRS pyproj knows ({err})") from None


def _shape_frame(name: str, shape: shapely.Geometry, crs: CRS) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame({"name": [name]}, geometry=[shape], crs=crs)
    return in_lonlat(valid_regions(frame, name))[["name", "geometry"]]


def _geojson_regions(text: str, number: int) -> gpd.GeoDataFrame:
    try:
        data = json.loads(text)
        if data.get("type") == "FeatureCollection":
            frame = gpd.GeoDataFrame.from_features(data, crs="EPSG:4326")
        elif data.get("type") == "Feature":
            frame = gpd.GeoDataFrame.from_features([data], crs="EPSG:4326")
        else:
            frame = gpd.GeoDataFrame(geometry=[shapely.geometry.shape(data)], crs="EPSG:4326")
    except (ValueError, AttributeError, TypeError, KeyError) as err:
        raise InvalidRegionsError(
            f"region {number}: not a GeoJSON geometry or feature ({err})"
        ) from None
    if "name" not in frame.columns:
        count = len(frame)
        frame["name"] = (
            [f"polygon {number}"]
            if count == 1
            else [f"polygon {number}.{i}" for i in range(1, count + 1)]
        )
    return in_lonlat(valid_regions(frame, f"region {number}"))[["name", "geometry"]]


def _catalogue_or_hint(folder: str | Path | None, name: str) -> gpd.GeoDataFrame:
    try:
        return catalogue_regions(folder)
    except InvalidRegionsError as err:
        raise InvalidRegionsError(
            f"{name!r} is not a file, a bbox or a polygon, and no catalogue to look it up: {err}"
        ) from None
