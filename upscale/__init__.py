"""upscale: coastal-wetland tower fluxes to regional carbon-sink maps.

The functions below are the Python face of the command line (``upscale --help``).
"""

from importlib.metadata import version

__version__ = version("upscale")

from upscale.api import demo, explain, export, predict, query, sweep, train  # noqa: E402
from upscale.training import TrainConfig  # noqa: E402

__all__ = [
    "TrainConfig",
    "__version__",
    "demo",
    "explain",
    "export",
    "predict",
    "query",
    "sweep",
    "train",
]
