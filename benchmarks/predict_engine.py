"""Benchmark: `predict` against its I/O and model floors, and the baselines users write.

The same measurement as ``upscale bench`` (see :func:`upscale.bench.suite.run_bench`): a
generated region, real one-epoch ensembles, the I/O floor, the model floor on every core,
`predict` end to end in a process of its own, the SHAP rasters, and the per-pixel
``apply_ufunc``, xbatcher and unmasked baselines, all in one run. Issue 7's targets, at
240 x 512 x 512 with 10 % wetland: ``predict <= 1.25x`` its floor, and at least 1.5x,
3x and 8x faster than the three baselines.

Run: ``.venv/bin/python benchmarks/predict_engine.py [--ny 512 --nx 512 --years 20]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from upscale.bench.suite import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ny", type=int, default=512)
    parser.add_argument("--nx", type=int, default=512)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--wetland-share", type=float, default=0.10)
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--no-explain", action="store_true", help="skip the SHAP rasters")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="upscale-engine-bench-") as work:
        report = run_bench(
            work,
            ny=args.ny,
            nx=args.nx,
            years=args.years,
            wetland_share=args.wetland_share,
            tile=args.tile,
            explain=not args.no_explain,
            status=print,
        )
    print(json.dumps(report, indent=2))
    floor = "I/O + model" if report["device"] == "cpu" else "the slower of I/O and model"
    print(f"predict / floor ({floor}): {report['predict_over_floor']:.2f} (<= 1.25)")
    print(f"predict / max(I/O floor, model floor): {report['predict_over_slowest_floor']:.2f}")
    for name, target in (("apply_ufunc_per_pixel", 1.5), ("xbatcher_loop", 3), ("unmasked", 8)):
        ratio = report["baseline_over_predict"][name]
        print(f"{name} / predict: {ratio:.2f} (>= {target})")


if __name__ == "__main__":
    main()
