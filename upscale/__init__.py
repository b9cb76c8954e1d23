"""upscale: coastal-wetland tower fluxes to regional carbon-sink maps.

The functions below are the Python face of the command line (``upscale --help``), with the
readers of the stores they write (``open_cube``, ``open_mask``, ``open_maps``), the demo
region's inputs to try them on (``demo_inputs``), and the package's settings (tile size,
batch sizes, COG block size, threads: ``set_options``, ``get_options``).
"""

from importlib.metadata import version

__version__ = version("upscale")

from upscale.api import (  # noqa: E402
    demo,
    demo_inputs,
    explain,
    export,
    extract,
    fetch,
    ingest,
    list_regions,
    mask,
    predict,
    query,
    sweep,
    train,
)
from upscale.cube import open_cube, open_maps, open_mask  # noqa: E402
from upscale.demo_region import DemoSpec  # noqa: E402
from upscale.options import get_options, set_options  # noqa: E402
from upscale.training import TrainConfig  # noqa: E402

__all__ = [
    "DemoSpec",
    "TrainConfig",
    "__version__",
    "demo",
    "demo_inputs",
    "explain",
    "export",
    "extract",
    "fetch",
    "get_options",
    "ingest",
    "list_regions",
    "mask",
    "open_cube",
    "open_mask",
    "open_maps",
    "predict",
    "query",
    "set_options",
    "sweep",
    "train",
]
