"""Exceptions raised by upscale.

Every error a user can cause derives from [`UpscaleError`][upscale.errors.UpscaleError]; the CLI
prints its message (one line saying what was wrong, where, and what to do) instead of a traceback.
"""

from __future__ import annotations


class UpscaleError(Exception):
    """Base class of the errors caused by input or usage, not by a bug."""


class CubeError(UpscaleError):
    """The driver cube does not follow the contract (variables, units, time axis, CRS)."""


class MaskError(UpscaleError):
    """The wetland mask is missing, malformed, or on another grid than the cube."""


class SiteDataError(UpscaleError):
    """A site file or ``sites.csv`` cannot be read as tower data."""


class ModelArtifactError(UpscaleError):
    """A model folder is missing files, or its card does not match its weights."""


class MapsError(UpscaleError):
    """A maps store is not one written by ``predict``, or holds too little for the request."""


class RegionError(UpscaleError):
    """A regions file cannot be used for a query."""


class ConfigError(UpscaleError):
    """A training config has an unknown field or an invalid value."""


class FetchError(UpscaleError):
    """Earth Engine cannot be reached, refuses a request, or has no recipe for a driver."""


class SchedulerError(UpscaleError):
    """The dask.distributed scheduler given by address cannot be reached."""


class OutputExistsError(UpscaleError):
    """An output already exists and ``overwrite`` was not requested."""


class OutputLockedError(UpscaleError):
    """Another run is writing the same output (see [`output_lock`][upscale.durable.output_lock])."""


class OutputWriteError(UpscaleError):
    """The destination of an output is full, read-only or not writable."""


class GridMappingWarning(UserWarning):
    """A store's CRS was taken from a grid-mapping variable that no variable names."""
