"""The Python API behind each CLI verb: paths in, paths (or tables) out.

Each function reads its inputs once, calls the library, writes its outputs and returns where
they are, so a notebook can run exactly what the command line runs. One module per verb:
``fetch``, ``ingest``, ``extract``, ``mask``, ``train``, ``sweep``, ``explain``, ``predict``,
``export``, ``query``, ``regions`` (list and show), ``report`` and ``demo``. The command line
imports nothing else of upscale: the names it needs besides the verbs (option choices, the config
readers, the error root, the console, the bench) are re-exported here too.
"""

from upscale.api._towers import compare_drivers, tower_series
from upscale.api.demo import DemoReport, demo, demo_inputs, truth_skill
from upscale.api.explain import ExplainReport, explain
from upscale.api.export import export
from upscale.api.extract import ExtractReport, extract
from upscale.api.fetch import fetch
from upscale.api.ingest import IngestReport, ingest
from upscale.api.mask import MaskReport, mask
from upscale.api.predict import predict
from upscale.api.query import QUERY_PICTURES, RegionSpec, query, write_budget
from upscale.api.regions import list_regions, show_region
from upscale.api.report import ReportResult, report
from upscale.api.sweep import SweepReport, sweep
from upscale.api.train import TrainResult, train
from upscale.bench.suite import run_bench as run_bench
from upscale.bench.suite import write_report as write_report
from upscale.drivers.earthengine import EE_DRIVERS
from upscale.errors import UpscaleError as UpscaleError
from upscale.learn.balance import NEE_MODES as NEE_MODES
from upscale.learn.balance import NeeMode as NeeMode
from upscale.learn.config import load_train_config as load_train_config
from upscale.learn.config import make_train_config as make_train_config
from upscale.learn.nets import NETS as NETS
from upscale.learn.sweep import DEFAULT_MEMORIES as DEFAULT_MEMORIES
from upscale.learn.training import CrossValidation as CrossValidation
from upscale.learn.training import TrainConfig as TrainConfig
from upscale.progress import console as console
from upscale.schema import FLUXES as FLUXES
from upscale.towers.sites import Partitioning as Partitioning

__all__ = [
    "EE_DRIVERS",
    "QUERY_PICTURES",
    "DemoReport",
    "ExplainReport",
    "ExtractReport",
    "IngestReport",
    "MaskReport",
    "RegionSpec",
    "ReportResult",
    "SweepReport",
    "TrainResult",
    "compare_drivers",
    "demo",
    "demo_inputs",
    "explain",
    "export",
    "extract",
    "fetch",
    "ingest",
    "list_regions",
    "mask",
    "predict",
    "query",
    "report",
    "show_region",
    "sweep",
    "tower_series",
    "train",
    "truth_skill",
    "write_budget",
]
