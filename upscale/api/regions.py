"""Regions: list the region catalogue and show one region, with its wetland."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from upscale.budgets.catalogue import catalogue_regions, catalogue_table
from upscale.budgets.regions import wetland_area_km2
from upscale.errors import InvalidRegionsError
from upscale.io.stores import open_mask


def list_regions(
    catalogue: str | Path | None = None, *, mask: str | Path | None = None
) -> pd.DataFrame:
    """List the catalogue regions: file, geodesic area, bounds, and wetland by ecosystem.

    Parameters
    ----------
    catalogue
        Catalogue folder (default ``$UPSCALE_REGIONS`` or ``./regions``).
    mask
        A wetland mask or ``maps.zarr``: adds the wetland area of each region per
        ecosystem (``<ecosystem>_km2``, 0 for regions off the mask).
    """
    regions = catalogue_regions(catalogue)
    table = catalogue_table(regions)
    if mask is not None:
        wetland = wetland_area_km2(regions, open_mask(mask))
        wetland.columns = [f"{column}_km2" for column in wetland.columns]
        table = table.merge(wetland, left_on="name", right_index=True)
    return table


def show_region(
    name: str, catalogue: str | Path | None = None, *, mask: str | Path | None = None
) -> pd.Series:
    """Return one catalogue region's row of [`list_regions`][upscale.api.regions.list_regions].

    Raises
    ------
    InvalidRegionsError
        When the catalogue holds no region of that name.
    """
    table = list_regions(catalogue, mask=mask)
    match = table[table["name"] == name]
    if match.empty:
        raise InvalidRegionsError(
            f"{name!r} is not in the catalogue; it holds {', '.join(map(repr, table['name']))}"
        )
    return match.iloc[0]
