"""Exceptions raised by upscale, in families as rioxarray's are.

Every error a user can cause derives from [`UpscaleError`][upscale.errors.UpscaleError]; the CLI
prints its message (one line saying what was wrong, where, and what to do) instead of a
traceback. Three families say where to look:

- [`InvalidInputError`][upscale.errors.InvalidInputError]: an input breaks its contract (a
  cube, a mask, tower files, a model, maps, regions, a config); fix the input.
- [`ServiceError`][upscale.errors.ServiceError]: a service the run needs (Earth Engine, a dask
  scheduler) cannot be reached or refuses; retry, or fix the address or the account.
- [`OutputError`][upscale.errors.OutputError]: an output cannot be written where asked (it
  exists, another run holds it, the destination is full or read-only).

Catching a family catches its members, so a notebook can tell "my data" from "my disk".
"""

from __future__ import annotations


class UpscaleError(Exception):
    """Base class of the errors caused by input or usage, not by a bug."""


class InvalidInputError(UpscaleError):
    """An input does not follow its contract (see the formats page of the docs)."""


class InvalidCubeError(InvalidInputError):
    """The driver cube does not follow the contract (variables, units, time axis, CRS)."""


class InvalidMaskError(InvalidInputError):
    """The wetland mask is missing, malformed, or on another grid than the cube."""


class InvalidTowerDataError(InvalidInputError):
    """A tower file or ``sites.csv`` cannot be read as tower data."""


class InvalidModelError(InvalidInputError):
    """A model folder is missing files, or its card does not match its weights."""


class InvalidMapsError(InvalidInputError):
    """A maps store is not one written by ``predict``, or holds too little for the request."""


class InvalidRegionsError(InvalidInputError):
    """A regions file or region name cannot be used for a query."""


class InvalidConfigError(InvalidInputError):
    """A training or ingest config has an unknown field or an invalid value."""


class ServiceError(UpscaleError):
    """A service the run needs cannot be reached or refuses the request."""


class FetchFailedError(ServiceError):
    """A driver service (Earth Engine, a STAC catalogue) refuses, or lacks a recipe or extra."""


class SchedulerUnreachableError(ServiceError):
    """The dask.distributed scheduler given by address does not answer."""


class OutputError(UpscaleError):
    """An output cannot be written where it was asked for."""


class OutputExistsError(OutputError):
    """An output already exists and ``overwrite`` was not requested."""


class OutputLockedError(OutputError):
    """Another run is writing the same output ([`output_lock`][upscale.io.durable.output_lock])."""


class OutputNotWritableError(OutputError):
    """The destination of an output is full, read-only or not writable."""


class GridMappingWarning(UserWarning):
    """A store's CRS was taken from a grid-mapping variable that no variable names."""
