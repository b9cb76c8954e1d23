"""Benchmark: the streaming nets' and the boosted trees' skill against the LSTM's, on two truths.

A streaming net (``tcn``, ``causal_transformer``) computes each month once where a windowed
one computes it L times; it is only worth its speed if it learns as well. This script sweeps
every registered architecture over a few memory lengths on two generated regions with
different process models (the demo's light-use truth, and the ``salinity`` truth with longer
memories, ``upscale.demo_region.PROCESS_MODELS``), and prints per ecosystem and flux each
architecture's cross-validated NSE (pooled over held-out towers) at its best memory and at
the memory the one-standard-error rule chooses, and the gap to the LSTM's. The boosted trees
(``xgboost``, installed by the ``trees`` extra) are swept too: does memory in a sequence model
beat lagged drivers in trees? The study tables (skill per memory) are kept in ``--out``.

Run: ``.venv/bin/python benchmarks/streaming_skill.py [--memories 1,3,6,12]
[--architectures lstm,transformer,xgboost] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

import upscale
from upscale.demo_region import PROCESS_MODELS, DemoSpec, make_demo_region, write_demo_region
from upscale.learn.nets import DEFAULT_ARCHITECTURE


def skill_table(study: pd.DataFrame) -> pd.DataFrame:
    """Best and chosen NSE per ecosystem, flux and architecture, with the gap to the default's.

    Parameters
    ----------
    study
        The ``study`` table of a sweep.
    """
    keys = ["ecosystem", "flux", "architecture"]
    best = study.groupby(keys)["nse"].max().rename("best_nse")
    chosen = study[study["chosen"]].set_index(keys)["nse"].rename("chosen_nse")
    table = pd.concat([best, chosen], axis=1).reset_index()
    default = table[table["architecture"] == DEFAULT_ARCHITECTURE].set_index(keys[:2])
    for column in ("best_nse", "chosen_nse"):
        reference = default[column].reindex(pd.MultiIndex.from_frame(table[keys[:2]])).values
        table[f"{column}_minus_{DEFAULT_ARCHITECTURE}"] = table[column] - reference
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", default="1,3,6,12")
    parser.add_argument("--architectures", default=None, help="comma-separated; all by default")
    parser.add_argument("--out", type=Path, default=None, help="keep the sweeps here")
    args = parser.parse_args()
    memories = [int(m) for m in args.memories.split(",")]
    architectures = args.architectures.split(",") if args.architectures else None
    out = args.out or Path(tempfile.mkdtemp(prefix="upscale-streaming-skill-"))
    tables, studies = [], []
    for process in PROCESS_MODELS:
        inputs = write_demo_region(
            make_demo_region(DemoSpec(process=process)), out / process / "inputs"
        )
        report = upscale.sweep(
            inputs.sites,
            inputs.cube,
            out / process / "sweep",
            architectures=architectures,
            memories=memories,
            nee_modes=["direct"],
            overwrite=True,
            status=lambda line: None,
        )
        tables.append(skill_table(report.result.study).assign(truth=process))
        studies.append(report.result.study.assign(truth=process))
    pd.concat(studies, ignore_index=True).to_csv(out / "study.csv", index=False)
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "streaming_skill.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.round(3).to_string(index=False))
    gaps = table.filter(like="_minus_").min(axis=1).groupby(table["architecture"]).min()
    for architecture, gap in gaps.items():
        print(f"{architecture}: largest shortfall against {DEFAULT_ARCHITECTURE} {gap:+.3f} NSE")
    print(f"tables: {out}")


if __name__ == "__main__":
    main()
