"""upscale: coastal-wetland tower fluxes to regional carbon-sink maps.

The functions below are the Python face of the command line (``upscale --help``).
"""

from importlib.metadata import version

__version__ = version("upscale")

from upscale.api import (  # noqa: E402
    demo,
    explain,
    export,
    fetch,
    ingest,
    list_regions,
    mask,
    predict,
    query,
    sweep,
    train,
)
from upscale.training import TrainConfig  # noqa: E402

__all__ = [
    "TrainConfig",
    "__version__",
    "demo",
    "explain",
    "export",
    "fetch",
    "ingest",
    "list_regions",
    "mask",
    "predict",
    "query",
    "sweep",
    "train",
]
