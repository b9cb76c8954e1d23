"""Benchmark: how long a memory-length sweep takes per model trained.

Trains cross-validated ensembles on the demo region's towers for each architecture at a few
memory lengths, in one process with one torch thread (what each sweep worker does), and
prints the seconds per ensemble member with the ratio to the no-memory LSTM measured in the
same run. A full demo sweep (2 architectures x 8 memories x 2 ecosystems + NEE modes, 4
members each) costs about the sum over its grid; `upscale sweep` runs two such processes
at once on 2 cores.

Run: ``.venv/bin/python benchmarks/sweep_cost.py [--memories 1,6,12,24]``.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import torch

from upscale.api import tower_series
from upscale.demo_region import make_demo_region, write_demo_region
from upscale.learn.training import TrainConfig, train_ensemble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", default="1,6,12,24")
    parser.add_argument("--ecosystem", default="mangrove")
    args = parser.parse_args()
    torch.set_num_threads(1)

    work = Path(tempfile.mkdtemp(prefix="upscale-sweep-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # several GB otherwise left
    inputs = write_demo_region(make_demo_region(), work / "inputs")
    config = TrainConfig()
    series = tower_series(inputs.sites, inputs.cube, config, status=lambda line: None)
    towers = series.of_ecosystem(args.ecosystem)
    print(
        f"{args.ecosystem}: {len(towers.site_ids)} towers, {config.folds}-fold ensembles, "
        f"up to {config.epochs} epochs (patience {config.patience}), 1 torch thread"
    )
    baseline = None
    for architecture in ("lstm", "transformer"):
        for memory in (int(m) for m in args.memories.split(",")):
            run = config.model_copy(update={"architecture": architecture, "memory": memory})
            start = time.perf_counter()
            fitted = train_ensemble(towers, run, name="bench", ecosystem=args.ecosystem)
            per_member = (time.perf_counter() - start) / len(fitted.folds)
            baseline = baseline or per_member
            print(
                f"  {architecture:<12} L={memory:<3} {per_member:6.2f} s per member "
                f"({per_member / baseline:4.1f}x LSTM L=1)"
            )


if __name__ == "__main__":
    main()
