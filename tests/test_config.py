import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from upscale.cli import app
from upscale.demo_region import write_demo_region
from upscale.errors import InvalidConfigError
from upscale.learn.config import load_train_config, save_train_config
from upscale.learn.nets import resolve_hyperparameters
from upscale.learn.training import TrainConfig

PRESETS = Path(__file__).resolve().parents[1] / "upscale" / "presets"


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_are_valid_configs(preset):
    config = load_train_config(preset)
    assert preset.stem == config.architecture
    resolved = resolve_hyperparameters(config.architecture, **config.hyperparameters)
    assert resolved == config.hyperparameters  # presets spell out every hyper-parameter


def test_lstm_preset_is_the_default():
    preset = load_train_config(PRESETS / "lstm.yaml")
    default = TrainConfig()
    assert preset.model_dump(exclude={"hyperparameters"}) == default.model_dump(
        exclude={"hyperparameters"}
    )
    assert preset.hyperparameters == resolve_hyperparameters("lstm")


def test_round_trip_and_overrides(tmp_path):
    config = TrainConfig(architecture="transformer", memory=9, nee_mode="penalty", seed=4)
    path = save_train_config(config, tmp_path / "run.yaml")
    assert load_train_config(path) == config
    assert load_train_config(path, memory=3).memory == 3


def test_config_errors(tmp_path):
    (tmp_path / "typo.yaml").write_text("architecture: lstm\nmemroy: 6\n")
    with pytest.raises(
        InvalidConfigError, match=r"typo.yaml: memroy: Extra inputs are not permitted"
    ):
        load_train_config(tmp_path / "typo.yaml")
    (tmp_path / "bad.yaml").write_text("memory: 0\n")
    with pytest.raises(InvalidConfigError, match="bad.yaml: memory: Input should be greater than"):
        load_train_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidConfigError, match="a config is a mapping"):
        load_train_config(tmp_path / "list.yaml")
    with pytest.raises(InvalidConfigError, match="no such config file"):
        load_train_config(tmp_path / "none.yaml")


def test_a_saved_config_repeats_the_run(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    runner = CliRunner()
    common = ["train", "--sites", str(inputs.sites), "--cube", str(inputs.cube)]
    first = runner.invoke(
        app,
        [
            *common,
            "--out",
            str(tmp_path / "a"),
            "--config",
            str(PRESETS / "lstm.yaml"),
            "--epochs",
            "4",
            "--memory",
            "4",
            "--seed",
            "3",
        ],
    )
    assert first.exit_code == 0, first.output
    saved = tmp_path / "a" / "model.yaml"
    assert load_train_config(saved).epochs == 4
    again = runner.invoke(app, [*common, "--out", str(tmp_path / "b"), "--config", str(saved)])
    assert again.exit_code == 0, again.output
    for eco in ("mangrove", "saltmarsh"):
        a = json.loads((tmp_path / "a" / f"model-{eco}" / "card.json").read_text())
        b = json.loads((tmp_path / "b" / f"model-{eco}" / "card.json").read_text())
        assert a["cv_metrics"] == b["cv_metrics"]
        assert a["train_config"] == b["train_config"]
    assert first.output.split("written")[0] == again.output.split("written")[0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hyperparameters": {"bogus": 1}}, "unknown hyper-parameter"),
        (
            {"architecture": "transformer", "hyperparameters": {"d_model": 10, "heads": 3}},
            "do not build a transformer",
        ),
        ({"targets": ["GPP", "RE"], "nee_mode": "derived"}, "needs the targets"),
        ({"targets": ["FOO"]}, "unknown target"),
        ({"features": ["LAI", "LAI"]}, "without repeats"),
    ],
)
def test_configs_that_would_fail_in_training_are_refused(tmp_path, fields, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(fields))
    with pytest.raises(InvalidConfigError, match=message):
        load_train_config(path)


def test_a_preset_is_found_by_name_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no clone of the repository here
    assert load_train_config("transformer") == load_train_config(PRESETS / "transformer.yaml")
    with pytest.raises(InvalidConfigError, match=r"lstn: no such config file; .* preset: lstm"):
        load_train_config("lstn")


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lstm").mkdir()  # e.g. the output of `upscale sweep --out lstm`
    assert load_train_config("lstm").architecture == "lstm"
    with pytest.raises(InvalidConfigError, match=r"cannot be read as a config file"):
        load_train_config(tmp_path)
