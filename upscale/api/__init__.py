"""The Python API behind each CLI verb: paths in, paths (or tables) out.

Each function reads its inputs, calls the library, writes its outputs and returns where
they are, so a notebook can run exactly what the command line runs. One module per kind of
work: ``inputs`` (fetch, ingest, extract, mask), ``models`` (train, sweep, explain), ``maps``
(predict, export), ``budgets`` (query and the region catalogue) and ``demo``.
"""

from upscale.api.budgets import (
    QUERY_PICTURES,
    RegionSpec,
    list_regions,
    query,
    show_region,
    write_budget,
)
from upscale.api.demo import DemoReport, demo, demo_inputs, truth_skill
from upscale.api.inputs import ExtractReport, IngestReport, MaskReport, extract, fetch, ingest, mask
from upscale.api.maps import export, predict
from upscale.api.models import (
    ExplainReport,
    SweepReport,
    TrainResult,
    compare_drivers,
    explain,
    sweep,
    tower_series,
    train,
)
from upscale.earthengine import EE_DRIVERS

__all__ = [
    "EE_DRIVERS",
    "QUERY_PICTURES",
    "DemoReport",
    "ExplainReport",
    "ExtractReport",
    "IngestReport",
    "MaskReport",
    "RegionSpec",
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
    "show_region",
    "sweep",
    "tower_series",
    "train",
    "truth_skill",
    "write_budget",
]
