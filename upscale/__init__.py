"""upscale: coastal-wetland tower fluxes to regional carbon-sink maps.

The functions below are the Python face of the command line (``upscale --help``), with the
readers of the stores they write (``open_cube``, ``open_mask``, ``open_maps``), the demo
region's inputs to try them on (``demo_inputs``), and the package's settings (tile size,
batch sizes, COG block size, threads: ``set_options``, ``get_options``).
"""

from importlib.metadata import version

__version__ = version("upscale")

# From the verbs' own modules, which share their names: `upscale.train` is the function.
from upscale.api.demo import demo, demo_inputs  # noqa: E402
from upscale.api.explain import explain  # noqa: E402
from upscale.api.export import export  # noqa: E402
from upscale.api.extract import extract  # noqa: E402
from upscale.api.fetch import fetch  # noqa: E402
from upscale.api.ingest import ingest  # noqa: E402
from upscale.api.mask import mask  # noqa: E402
from upscale.api.predict import predict  # noqa: E402
from upscale.api.query import query  # noqa: E402
from upscale.api.regions import list_regions  # noqa: E402
from upscale.api.sweep import sweep  # noqa: E402
from upscale.api.train import train  # noqa: E402
from upscale.demo_region import DemoSpec  # noqa: E402
from upscale.io.stores import open_cube, open_maps, open_mask  # noqa: E402
from upscale.learn.training import TrainConfig  # noqa: E402
from upscale.options import get_options, set_options  # noqa: E402

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
