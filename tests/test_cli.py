import importlib

import numpy as np
import pytest
from typer.testing import CliRunner

from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.io.stores import write_store

runner = CliRunner()


@pytest.mark.parametrize(
    "verb",
    [
        "demo",
        "sweep",
        "train",
        "explain",
        "predict",
        "export",
        "query",
        "report",
        "mask",
        "ingest",
        "fetch",
        "extract",
        "bench",
    ],
)
def test_every_verb_has_help(verb):
    result = runner.invoke(app, [verb, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.fixture
def demo_inputs(small_region, tmp_path):
    return write_demo_region(small_region, tmp_path / "inputs")


def train(demo_inputs, *options, cube=None):
    """Run ``upscale train`` on the demo inputs with extra options."""
    command = ["train", "--sites", demo_inputs.sites, "--cube", cube or demo_inputs.cube]
    return runner.invoke(app, [str(part) for part in (*command, *options)])


def predict(demo_inputs, *options, mask=None):
    """Run ``upscale predict`` on the demo cube with extra options (models, output...)."""
    command = ["predict", "--cube", demo_inputs.cube, "--mask", mask or demo_inputs.mask]
    return runner.invoke(app, [str(part) for part in (*command, *options)])


def one_clear_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in result.output.replace("\n", " ")


def test_missing_variable(small_region, demo_inputs, tmp_path):
    write_store(small_region.cube.drop_vars("FAPAR"), tmp_path / "nofapar.zarr")
    result = train(demo_inputs, "--out", str(tmp_path / "models"), cube=tmp_path / "nofapar.zarr")
    one_clear_error(result, "nofapar.zarr", "missing driver variable(s) FAPAR")


def test_site_outside_the_cube(demo_inputs, tmp_path):
    table = demo_inputs.sites / "sites.csv"
    text = table.read_text().splitlines()
    first = text[1].split(",")
    first[1] = "10.0"
    table.write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n")
    result = train(demo_inputs, "--out", str(tmp_path / "models"))
    one_clear_error(result, "outside the cube extent", first[0])


def test_csv_without_flux_columns(demo_inputs, tmp_path):
    path = next(demo_inputs.sites.glob("FLX_ZZ-Mg1_*.csv"))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, column in enumerate(header) if not column.startswith(("GPP", "RECO", "NEE"))]
    path.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n")
    result = train(demo_inputs, "--out", str(tmp_path / "models"))
    one_clear_error(result, path.name)


def test_mask_on_another_grid(small_region, demo_inputs, model_folders, tmp_path):
    coarse = small_region.mask.isel(y=slice(0, None, 2), x=slice(0, None, 2))
    write_store(coarse, tmp_path / "coarse.zarr")
    models = [part for folder in model_folders.values() for part in ("--model", folder)]
    result = predict(
        demo_inputs, "--out", tmp_path / "maps.zarr", *models, mask=tmp_path / "coarse.zarr"
    )
    one_clear_error(result, "coarse.zarr", "mask grid is (10, 12)")
    assert not (tmp_path / "maps.zarr").exists()


def test_missing_model_folder(demo_inputs, tmp_path):
    result = predict(demo_inputs, "--model", tmp_path / "nothing", "--out", tmp_path / "maps.zarr")
    one_clear_error(result, "nothing: no card.json")


def test_verbs_chain_on_small_inputs(demo_inputs, tmp_path):
    """train (Transformer) -> predict -> export -> query, each through the CLI."""
    models = tmp_path / "models"
    result = train(
        demo_inputs,
        "--out",
        str(models),
        "--name",
        "t",
        "--architecture",
        "transformer",
        "--memory",
        "4",
        "--epochs",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "cross-validated skill" in result.output
    card = (models / "t-mangrove" / "card.json").read_text()
    assert '"architecture": "transformer"' in card and '"memory": 4' in card

    maps = tmp_path / "maps.zarr"
    result = predict(
        demo_inputs,
        *("--model", models / "t-mangrove", "--model", models / "t-saltmarsh"),
        *("--out", maps, "--tile", 8),
    )
    assert result.exit_code == 0, result.output
    assert str(maps) in " ".join(result.output.split())

    result = runner.invoke(
        app, ["export", "--maps", str(maps), "--out", str(tmp_path / "cogs"), "--monthly"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "cogs").glob("*.tif"))) == 13

    result = runner.invoke(
        app,
        [
            "query",
            "--maps",
            str(maps),
            "--regions",
            str(demo_inputs.regions),
            "--out",
            str(tmp_path / "b.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Lostmans River" in result.output
    assert (tmp_path / "b.json").read_text().startswith("[")

    result = runner.invoke(
        app,
        [
            "query",
            "--maps",
            str(maps),
            "--regions",
            str(demo_inputs.regions),
            "--out",
            str(tmp_path / "b.geojson"),
        ],
    )
    assert result.exit_code == 0, result.output
    import geopandas as gpd

    features = gpd.read_file(tmp_path / "b.geojson")
    assert features.crs.to_epsg() == 4326
    assert {"name", "year", "ecosystem", "sink_total", "GPP_total_std"} <= set(features.columns)
    # regions x complete years x (all wetland, mangrove, saltmarsh): every region has both
    assert len(features) == 3 * features["year"].nunique() * 3


def test_unknown_architecture_is_refused_by_the_parser(demo_inputs):
    result = train(demo_inputs, "--architecture", "gru")
    assert result.exit_code == 2
    assert "gru" in result.output


def test_version():
    from upscale import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"upscale {__version__}"


def test_out_of_range_options_are_refused_by_the_parser(demo_inputs):
    result = train(demo_inputs, "--memory", "0")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "memory" in result.output


def test_error_text_in_brackets_survives(small_region, demo_inputs, tmp_path):
    bad = small_region.mask.copy()
    bad["wetland"] = bad["wetland"].where(bad["wetland"] != 2, 7).astype("uint8")
    write_store(bad, tmp_path / "bad.zarr")
    result = predict(demo_inputs, "--model", "m", mask=tmp_path / "bad.zarr")
    one_clear_error(result)


def test_budget_table_format(demo_inputs, tmp_path):
    result = runner.invoke(
        app,
        [
            "query",
            "--maps",
            "maps.zarr",
            "--regions",
            str(demo_inputs.regions),
            "--out",
            str(tmp_path / "b.parquet"),
        ],
    )
    one_clear_error(result, "b.parquet: write the budget as .csv, .json or .geojson")


def test_too_few_towers(demo_inputs, tmp_path):
    table = demo_inputs.sites / "sites.csv"
    lines = table.read_text().splitlines()
    dropped = ("ZZ-Sm2", "ZZ-Sm3")
    table.write_text("\n".join(line for line in lines if not line.startswith(dropped)) + "\n")
    for site in dropped:
        for path in demo_inputs.sites.glob(f"FLX_{site}_*.csv"):
            path.unlink()
    result = train(demo_inputs, "--out", str(tmp_path / "models"))
    one_clear_error(
        result,
        "saltmarsh has 1 tower(s) with 1 distinct driver series",
        "cross-validating by tower needs at least 2",
        "--cv temporal",
    )


def test_sweep_command_and_sample_cache(demo_inputs, tmp_path):
    args = [
        "sweep",
        "--sites",
        str(demo_inputs.sites),
        "--cube",
        str(demo_inputs.cube),
        "--out",
        str(tmp_path / "sweep"),
        "--architectures",
        "lstm",
        "--memories",
        "2",
        "--nee-modes",
        "direct",
        "--epochs",
        "2",
        "--workers",
        "1",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for name in ("skill.csv", "optimum.csv", "nee_modes.csv", "skill_vs_memory.png", "samples.npz"):
        assert (tmp_path / "sweep" / name).exists()
    assert "memory chosen per flux" in first.output
    again = runner.invoke(app, args)
    one_clear_error(again, "pass --overwrite")
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    assert "reusing the tower samples cached" in again.output
    bad = runner.invoke(app, [*args[:-2], "--memories", "2,x", "--overwrite"])
    assert bad.exit_code == 2 and "comma-separated" in bad.output


def test_explain_command(demo_inputs, tmp_path):
    models = tmp_path / "models"
    assert train(demo_inputs, "--out", str(models), "--epochs", "2", "--memory", "3").exit_code == 0
    result = runner.invoke(
        app,
        [
            "explain",
            "--sites",
            str(demo_inputs.sites),
            "--cube",
            str(demo_inputs.cube),
            "--model",
            str(models / "model-mangrove"),
            "--model",
            str(models / "model-saltmarsh"),
            "--out",
            str(tmp_path / "explain"),
            "--windows",
            "30",
            "--samples",
            "8",
            "--mask",
            str(demo_inputs.mask),
            "--months",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in (
        "importance.csv",
        "memory.csv",
        "memory_profile.csv",
        "importance.png",
        "memory_profile.png",
        "shap.zarr",
        "shap_cogs/mean_lag.tif",
    ):
        assert (tmp_path / "explain" / name).exists()
    assert "top drivers" in result.output
    import pandas as pd

    memory = pd.read_csv(tmp_path / "explain" / "memory.csv")
    assert set(memory["ecosystem"]) == {"mangrove", "saltmarsh"}
    assert (memory["windows"] == 30).all() and (memory["samples"] == 8).all()
    profile = pd.read_csv(tmp_path / "explain" / "memory_profile.csv")
    sums = profile.groupby(["ecosystem", "target", "feature"])["share"].sum()
    assert ((sums - 1).abs() < 1e-3).all()


def test_a_temporal_split_too_short_for_the_memory_is_refused_before_any_training(
    demo_inputs, tmp_path
):
    # 4 years of towers, half held out: 24 months before the cut, fewer than L = 30.
    options = ("--cv", "temporal", "--test-fraction", "0.5", "--memory", "30")
    result = train(demo_inputs, "--out", str(tmp_path / "models"), *options)
    one_clear_error(result, "holding out its last 50% of", "use a shorter memory")
    assert not (tmp_path / "models").exists()  # no mangrove model first, then the error


class Killed(Exception):
    """Stands for a kill of the process at the step that raises it."""


def killed(*args, **kwargs):
    raise Killed


@pytest.fixture
def quick_explain(demo_inputs, tmp_path):
    """Run ``upscale.explain`` of small trained models with the SHAP rasters, quickly."""
    import upscale

    models = tmp_path / "models"
    assert train(demo_inputs, "--out", str(models), "--epochs", "2", "--memory", "3").exit_code == 0

    def explain(out, mask=demo_inputs.mask, **options):
        return upscale.explain(
            demo_inputs.sites,
            demo_inputs.cube,
            [models / "model-mangrove", models / "model-saltmarsh"],
            out,
            windows=10,
            background=10,
            samples=4,
            null=False,
            mask=mask,
            months=1,
            raster_samples=4,
            status=lambda line: None,
            **options,
        )

    return explain


def test_explain_killed_after_its_shap_store_finishes_without_redoing_it(
    quick_explain, tmp_path, monkeypatch
):
    from upscale.api.explain import EXPLAIN_PLAN

    out = tmp_path / "explain"
    with monkeypatch.context() as patch:
        # The module by import_module: `upscale.api.explain` is the function it holds.
        patch.setattr(importlib.import_module("upscale.api.explain"), "export_shap_cogs", killed)
        with pytest.raises(Killed):
            quick_explain(out)
    written = (out / "shap.zarr" / "zarr.json").stat().st_mtime_ns
    quick_explain(out)  # the same command again: no --overwrite needed
    assert (out / "shap_cogs" / "mean_lag.tif").exists() and not (out / EXPLAIN_PLAN).exists()
    assert (out / "shap.zarr" / "zarr.json").stat().st_mtime_ns == written


def test_explain_rows_left_by_a_run_on_another_mask_are_not_taken(
    quick_explain, demo_inputs, small_region, tmp_path, monkeypatch
):
    from upscale.io.stores import open_store
    from upscale.schema import ECOSYSTEM_CODES, WETLAND

    codes = small_region.mask[WETLAND]
    no_mangrove = small_region.mask.assign(
        {WETLAND: codes.where(codes != ECOSYSTEM_CODES["mangrove"], 0)}
    )
    other_mask = write_store(no_mangrove, tmp_path / "saltmarsh-only.zarr")
    from upscale.io import stores as cube

    record = cube._record_row

    def record_one_then_die(stored, marker):
        record(stored, marker)
        raise Killed

    out = tmp_path / "explain"
    with monkeypatch.context() as patch:  # killed after a row on the demo mask is recorded
        patch.setattr(cube, "_record_row", record_one_then_die)
        with pytest.raises(Killed):
            quick_explain(out)
    assert list((out / "shap.zarr.partial.tiles").glob("y*"))
    quick_explain(out, mask=other_mask, overwrite=True)
    quick_explain(tmp_path / "whole", mask=other_mask)
    resumed, whole = open_store(out / "shap.zarr"), open_store(tmp_path / "whole" / "shap.zarr")
    for name in resumed.data_vars:
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


def test_warnings_are_one_line_each(small_region, demo_inputs, tmp_path):
    import zarr

    # A cube written with an encoding of its own: the grid_mapping attribute is lost.
    cube = small_region.cube[["TA", "NDVI"]]
    encoding = {v: {"compressors": (zarr.codecs.ZstdCodec(level=3),)} for v in cube.data_vars}
    cube.to_zarr(tmp_path / "own.zarr", zarr_format=3, consolidated=False, encoding=encoding)
    command = ["extract", "--sites", demo_inputs.sites, "--cube", tmp_path / "own.zarr"]
    result = runner.invoke(app, [str(part) for part in (*command, "--out", tmp_path / "d.csv")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: " in text and "using its CRS EPSG:4326" in text
    assert "GridMappingWarning" not in text and ".py:" not in text  # no file and line
