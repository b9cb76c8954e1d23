import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from upscale.bench.suite import _first_rows, _io_tile, peak_memory_mb, thin_mask
from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.io.stores import open_mask

pytestmark = pytest.mark.slow


def test_bench_measures_predict_against_its_floors(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--ny",
            "16",
            "--nx",
            "20",
            "--years",
            "3",
            "--tile",
            "8",
            "--out",
            str(tmp_path / "bench.json"),
            "--architectures",
            "tcn,xgboost",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["wetland_pixels"] == 32 and report["grid"]["months"] == 36
    assert report["ensemble_members"] == {"mangrove": 4, "saltmarsh": 4}  # the default
    seconds = report["seconds"]
    assert all(seconds[k] > 0 for k in ("io_floor", "model_floor", "predict", "explain_rasters"))
    floors = seconds["io_floor"], seconds["model_floor"]
    assert report["predict_over_floor"] == pytest.approx(seconds["predict"] / sum(floors))
    assert report["predict_over_slowest_floor"] == pytest.approx(seconds["predict"] / max(floors))
    assert report["device"] == "cpu" and report["peak_memory_mb"] > 0
    baselines = report["baselines"]
    assert set(baselines) == {"apply_ufunc_per_pixel", "xbatcher_loop", "unmasked"}
    for name, value in baselines.items():
        assert value > 0
        assert report["baseline_over_predict"][name] == pytest.approx(value / seconds["predict"])
    assert "x predict" in result.output
    assert report["architecture"] == {"name": "lstm", "memory": 6}
    assert report["speedups_over"] == "lstm"
    timed = report["architectures"]
    assert set(timed) == {"lstm", "tcn", "xgboost"}
    assert all(set(t) == {"L6", "L12"} for t in timed.values())
    assert report["peer"] == "xgboost"  # the boosted trees, timed beside the nets
    assert all(timed["xgboost"][m]["trees_kept"] >= 1 for m in ("L6", "L12"))
    assert "peer line, boosted trees (xgboost L6" in " ".join(result.output.split())
    headline = {k: timed["lstm"]["L6"]["seconds"][k] for k in ("model_floor", "predict")}
    assert headline == {k: seconds[k] for k in ("model_floor", "predict")}
    for name, memories in timed.items():
        for memory, run in memories.items():
            assert run["streaming"] == (name == "tcn")
            lstm = timed["lstm"][memory]["seconds"]
            assert run["model_speedup"] == pytest.approx(
                lstm["model_floor"] / run["seconds"]["model_floor"]
            )
            assert run["nets_speedup"] == pytest.approx(lstm["nets"] / run["seconds"]["nets"])
            parts = run["seconds"]["nets"] + run["seconds"]["domain_distance"]
            assert run["seconds"]["model_floor"] == pytest.approx(parts)
            assert run["predict_pixel_months_per_second"] == pytest.approx(
                32 * 36 / run["seconds"]["predict"]
            )
    assert timed["lstm"]["L12"]["model_speedup"] == 1


def test_bench_refuses_an_unknown_architecture_before_any_work(tmp_path):
    out = str(tmp_path / "b.json")
    result = CliRunner().invoke(app, ["bench", "--architectures", "gru", "--out", out])
    assert result.exit_code == 2
    assert "unknown architecture 'gru'; choose one of lstm" in result.output
    assert not (tmp_path / "b.json").exists()


def test_thin_mask_keeps_the_share_on_wetland(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    before = open_mask(inputs.mask)["wetland"].values
    path, kept = thin_mask(inputs.mask, 0.05, tmp_path / "thin.zarr")
    after = open_mask(path)["wetland"].values
    assert kept == round(0.05 * before.size) == int((after > 0).sum())
    assert ((after > 0) <= (before > 0)).all()  # only wetland pixels are kept
    with pytest.raises(ValueError, match="less than the 90% asked for"):
        thin_mask(inputs.mask, 0.9, tmp_path / "too_much.zarr")
    with pytest.raises(ValueError, match="keeps none"):
        thin_mask(inputs.mask, 0.0001, tmp_path / "none.zarr")


def test_first_rows_cover_the_share_of_wetland():
    wetland = np.zeros((12, 4), dtype=bool)
    wetland[1, :] = True  # 4 pixels in the first row of tiles (tiles of 4)
    wetland[9, :] = True  # 4 in the third
    assert _first_rows(wetland, 4, share=0.5) == slice(0, 4)
    assert _first_rows(wetland, 4, share=0.75) == slice(0, 12)


def test_io_tile_writes_wetland_drivers_and_nan_elsewhere():
    drivers = np.arange(2 * 3 * 2 * 2, dtype="float32").reshape(2, 3, 2, 2)
    wetland = np.array([[1, 0], [0, 2]])
    out = _io_tile(drivers, wetland, layers=3, origin=(0, 0))
    assert out.shape == (3, 3, 2, 2)
    assert np.isnan(out[:, :, 0, 1]).all() and np.isnan(out[:, :, 1, 0]).all()
    np.testing.assert_array_equal(out[0, :, 0, 0], drivers[0, :, 0, 0])
    np.testing.assert_array_equal(out[2, :, 1, 1], drivers[0, :, 1, 1])  # layers cycle


def test_peak_memory_counts_this_process_only():
    # A child forked from a process with a large peak must not report that peak, as
    # ru_maxrss does on Linux: VmHWM starts again at exec.
    block = np.ones(1536 * 2**20 // 8)  # 1.5 GB, touched
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from upscale.bench.suite import peak_memory_mb; print(peak_memory_mb())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert 50 < float(child.stdout) < block.nbytes / 2**20  # MB, not kB, and its own
    assert peak_memory_mb() > block.nbytes / 2**20
