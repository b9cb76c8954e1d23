"""What to read from STAC catalogues: a recipe per canonical driver, and Planetary Computer's.

A [`StacRecipe`][upscale.drivers.stac_recipes.StacRecipe] names a collection, the asset holding
a driver's values, its encoding (scale factor, offset, fill values, valid range) and its QC
asset with the bits that must be zero (MODIS QC) or the highest acceptable value. The defaults,
[`PLANETARY_COMPUTER_RECIPES`][upscale.drivers.stac_recipes.PLANETARY_COMPUTER_RECIPES], follow
the published metadata of Planetary Computer's MODIS 6.1 and ERA5 collections; an ingest
config's ``stac`` section ([`StacSection`][upscale.drivers.stac_recipes.StacSection]) replaces
or adds recipes for other catalogues. [`upscale.drivers.stac`][upscale.drivers.stac] reads
them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from upscale.schema import check_driver_names

PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
"""Microsoft Planetary Computer's STAC API: the default catalogue of `fetch --source stac`."""


class StacRecipe(BaseModel):
    """How one canonical driver is made from the items of a STAC collection.

    Attributes
    ----------
    collection
        Collection id in the catalogue (``modis-15A3H-061``).
    asset
        Asset key of the values (``Lai_500m``).
    format
        ``raster`` (GeoTIFF/COG assets, loaded with odc-stac) or ``zarr`` (a Zarr store per
        item, opened with xarray; ERA5 on Planetary Computer).
    variable
        With ``zarr``: the variable in the store (default: the asset key).
    scale, offset
        Canonical = raw x scale + offset (MODIS scale factors, Kelvin to Celsius, hourly
        accumulations to rates).
    fill
        Raw values that mean "no data" (MODIS ``-3000``, LST ``0``).
    valid_range
        Raw values outside it are no data either (MODIS LAI/FPAR codes 249-255 for water,
        barren land, fill...).
    qc_asset, qc_mask, qc_max
        QC asset and the bits that must be zero, or (``qc_max``) the highest acceptable
        value (MOD13 pixel reliability); give one of the two with a QC asset.
    dewpoint
        Asset of the dew point: the driver is then the vapour pressure deficit (hPa, Tetens)
        of each observation's air temperature (``asset``) and dew point, both made Celsius
        by ``scale`` and ``offset``, averaged over the month.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    collection: str
    asset: str
    format: Literal["raster", "zarr"] = "raster"
    variable: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    fill: tuple[float, ...] = ()
    valid_range: tuple[float, float] | None = None
    qc_asset: str | None = None
    qc_mask: int | None = None
    qc_max: float | None = None
    dewpoint: str | None = None

    @model_validator(mode="after")
    def _one_qc_rule(self) -> StacRecipe:
        rules = (self.qc_mask is not None) + (self.qc_max is not None)
        if (self.qc_asset is None and rules) or (self.qc_asset is not None and rules != 1):
            raise ValueError("a QC asset needs exactly one of qc_mask (bits) or qc_max")
        if self.format == "zarr" and self.qc_asset is not None:
            raise ValueError("QC assets are read from raster collections only")
        return self

    @property
    def assets(self) -> list[str]:
        """Every asset the recipe reads."""
        return [a for a in (self.asset, self.dewpoint, self.qc_asset) if a is not None]


_ERA5 = "era5-pds"

PLANETARY_COMPUTER_RECIPES: dict[str, StacRecipe] = {
    # MCD15A3H (Terra + Aqua, 4-day): values 0-100, 249-255 are class codes and fill;
    # FparLai_QC bit 0 (MODLAND) = 0: main algorithm, good quality.
    "LAI": StacRecipe(
        collection="modis-15A3H-061",
        asset="Lai_500m",
        scale=0.1,
        fill=(255,),
        valid_range=(0, 100),
        qc_asset="FparLai_QC",
        qc_mask=0b1,
    ),
    "FAPAR": StacRecipe(
        collection="modis-15A3H-061",
        asset="Fpar_500m",
        scale=0.01,
        fill=(255,),
        valid_range=(0, 100),
        qc_asset="FparLai_QC",
        qc_mask=0b1,
    ),
    # MOD13A1/MYD13A1 (16-day): fill -3000; pixel reliability 0 good, 1 marginal.
    "NDVI": StacRecipe(
        collection="modis-13A1-061",
        asset="500m_16_days_NDVI",
        scale=0.0001,
        fill=(-3000,),
        valid_range=(-2000, 10000),
        qc_asset="500m_16_days_pixel_reliability",
        qc_max=1,
    ),
    "EVI": StacRecipe(
        collection="modis-13A1-061",
        asset="500m_16_days_EVI",
        scale=0.0001,
        fill=(-3000,),
        valid_range=(-2000, 10000),
        qc_asset="500m_16_days_pixel_reliability",
        qc_max=1,
    ),
    # MOD11A2/MYD11A2 (8-day): Kelvin x 0.02, fill 0; QC bits 0-1 = 00, good quality.
    "LST_DAY": StacRecipe(
        collection="modis-11A2-061",
        asset="LST_Day_1km",
        scale=0.02,
        offset=-273.15,
        fill=(0,),
        valid_range=(7500, 65535),
        qc_asset="QC_Day",
        qc_mask=0b11,
    ),
    "LST_NIGHT": StacRecipe(
        collection="modis-11A2-061",
        asset="LST_Night_1km",
        scale=0.02,
        offset=-273.15,
        fill=(0,),
        valid_range=(7500, 65535),
        qc_asset="QC_Night",
        qc_mask=0b11,
    ),
    # ERA5 (0.25 degree, hourly, one Zarr store per variable and month).
    "TA": StacRecipe(
        collection=_ERA5, asset="air_temperature_at_2_metres", format="zarr", offset=-273.15
    ),
    "VPD": StacRecipe(
        collection=_ERA5,
        asset="air_temperature_at_2_metres",
        dewpoint="dew_point_temperature_at_2_metres",
        format="zarr",
        offset=-273.15,
    ),
    # Hourly accumulations: J m-2 per hour to W m-2, m per hour to mm d-1.
    "SW_IN": StacRecipe(
        collection=_ERA5,
        asset="integral_wrt_time_of_surface_direct_downwelling_shortwave_flux_in_air_1hour_Accumulation",
        format="zarr",
        scale=1 / 3600,
    ),
    "PRECIP": StacRecipe(
        collection=_ERA5,
        asset="precipitation_amount_1hour_Accumulation",
        format="zarr",
        scale=24_000.0,
    ),
}
"""Canonical driver -> recipe on Planetary Computer's collections (MODIS 6.1 and ERA5)."""

STAC_DRIVERS: tuple[str, ...] = tuple(PLANETARY_COMPUTER_RECIPES)
"""Canonical drivers `fetch --source stac` builds by default."""


class StacSection(BaseModel):
    """The ``stac`` section of an ingest config: a catalogue and the drivers to read from it.

    Attributes
    ----------
    catalog
        URL of a STAC API or of a static catalogue's ``catalog.json`` (a path works too).
    variables
        Canonical drivers to read (default: every recipe).
    recipes
        Recipes by canonical driver, replacing or adding to
        [`PLANETARY_COMPUTER_RECIPES`][upscale.drivers.stac_recipes.PLANETARY_COMPUTER_RECIPES].
    """

    model_config = ConfigDict(extra="forbid")

    catalog: str
    variables: list[str] | None = None
    recipes: dict[str, StacRecipe] = {}

    @field_validator("recipes")
    @classmethod
    def _canonical(cls, recipes: dict[str, StacRecipe]) -> dict[str, StacRecipe]:
        check_driver_names(recipes)
        return recipes

    @model_validator(mode="after")
    def _known_variables(self) -> StacSection:
        missing = sorted(set(self.variables or []) - set(self.all_recipes()))
        if missing:
            raise ValueError(f"no STAC recipe for {missing}: add them under recipes")
        return self

    def all_recipes(self) -> dict[str, StacRecipe]:
        """Planetary Computer's recipes with this section's on top."""
        return PLANETARY_COMPUTER_RECIPES | self.recipes

    def chosen(self) -> tuple[str, ...]:
        """Return the drivers to read."""
        return tuple(self.variables or self.all_recipes())
