"""Benchmark: a site-level study with no cube, 20 towers x 10 years, on this machine.

Writes the towers of a generated demo region (10 mangrove and 10 saltmarsh towers, 10 years
of monthly FLUXNET files with each tower's own TA, SW_IN, VPD and PRECIP) and runs
`upscale.sweep` on them with no cube: 2 architectures x 5 memory lengths (and the no-memory
baseline) x 2 ecosystems, temporal cross-validation, the default training settings, on the
default workers (one process per core). Prints the wall time, the runs, the members trained
and the seconds per member, and the study's chosen memories.

Run: ``.venv/bin/python benchmarks/site_study_cost.py [--memories 2,3,6,9,12] [--cv temporal]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import upscale
from upscale.demo_region import DemoSpec, make_demo_region, write_demo_region


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", default="2,3,6,9,12")
    parser.add_argument("--cv", default="temporal", choices=["temporal", "loso", "kfold"])
    parser.add_argument("--years", type=int, default=10)
    args = parser.parse_args()
    memories = [int(m) for m in args.memories.split(",")]

    with tempfile.TemporaryDirectory(prefix="upscale-site-study-") as work:
        spec = DemoSpec(ny=32, nx=42, years=args.years, n_mangrove_sites=10, n_saltmarsh_sites=10)
        inputs = write_demo_region(make_demo_region(spec), Path(work) / "inputs")
        config = upscale.TrainConfig(cv=args.cv)
        start = time.perf_counter()
        report = upscale.sweep(
            inputs.sites,
            None,
            Path(work) / "sweep",
            config=config,
            architectures=["lstm", "transformer"],
            memories=memories,
            nee_modes=["direct"],
            status=lambda line: None,
        )
        seconds = time.perf_counter() - start
    skill = report.result.skill
    runs = skill[skill["fold"] == "all"].drop_duplicates(["ecosystem", "architecture", "memory"])
    # Members: one per fold of towers, or config.folds seeds for a temporal split.
    folds = skill[skill["fold"] != "all"].groupby(["ecosystem", "architecture", "memory", "flux"])
    per_run = folds.size().groupby(level=[0, 1, 2]).first()
    members = len(runs) * config.folds if args.cv == "temporal" else int(per_run.sum())
    print(
        f"20 towers x {args.years} years, no cube, cv {args.cv}: {len(runs)} cross-validated "
        f"ensembles ({members} members, up to {config.epochs} epochs each) on "
        f"{os.cpu_count()} cores in {seconds:.0f} s ({seconds / 60:.1f} min; "
        f"{seconds / members:.1f} s per member of wall time)"
    )
    print(f"mean training time per member in its worker: {runs['seconds_per_member'].mean():.1f} s")
    print(report.result.optimum.to_string(index=False))


if __name__ == "__main__":
    main()
