"""upscale: coastal-wetland tower fluxes to regional carbon-sink maps.

The functions below are the Python face of the command line (``upscale --help``).
"""

from upscale.api import demo, export, predict, query, train
from upscale.training import TrainConfig

__version__ = "0.1.0"

__all__ = ["TrainConfig", "__version__", "demo", "export", "predict", "query", "train"]
