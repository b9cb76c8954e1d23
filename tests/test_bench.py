import json

import pytest
from typer.testing import CliRunner

from upscale.bench import thin_mask
from upscale.cli import app
from upscale.cube import open_mask
from upscale.demo_region import write_demo_region

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
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["wetland_pixels"] == 32 and report["grid"]["months"] == 36
    seconds = report["seconds"]
    assert all(seconds[k] > 0 for k in ("io_floor", "model_floor", "predict"))
    floor = max(seconds["io_floor"], seconds["model_floor"])
    assert report["predict_over_floor"] == pytest.approx(seconds["predict"] / floor)
    assert report["device"] == "cpu" and report["peak_memory_mb"] > 0
    assert report["baselines"]["apply_ufunc_per_pixel"] > 0
    assert report["baselines"]["unmasked"] == pytest.approx(seconds["model_floor"] * 10)
    assert "x predict" in result.output


def test_thin_mask_keeps_the_share_on_wetland(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    before = open_mask(inputs.mask)["wetland"].values
    path, kept = thin_mask(inputs.mask, 0.05, tmp_path / "thin.zarr")
    after = open_mask(path)["wetland"].values
    assert kept == round(0.05 * before.size) == int((after > 0).sum())
    assert ((after > 0) <= (before > 0)).all()  # only wetland pixels are kept
    with pytest.raises(ValueError, match="less than the 90% asked for"):
        thin_mask(inputs.mask, 0.9, tmp_path / "too_much.zarr")
