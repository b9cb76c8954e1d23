"""The registry is the one list of architectures: adding one is a module and a registration."""

import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from torch import nn
from typer.testing import CliRunner

from upscale.cli import app
from upscale.learn.config import presets
from upscale.learn.nets import DEFAULT_ARCHITECTURE, NETS, build_net, register
from upscale.learn.samples import extract_site_series
from upscale.learn.sweep import run_sweep
from upscale.learn.training import TrainConfig
from upscale.schema import DEFAULT_FEATURES
from upscale.towers.sites import SiteData

runner = CliRunner()


class LastMonth(nn.Module):
    """A toy architecture: a linear map of the window's last month.

    At the top of an importable module, so a sweep's worker processes can unpickle it.
    """

    def __init__(self, n_features: int, n_targets: int, memory: int, *, width: int = 4) -> None:
        super().__init__()
        self.memory = memory
        self.layers = nn.Sequential(
            nn.Linear(n_features, width), nn.Tanh(), nn.Linear(width, n_targets)
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.layers(windows[:, -1])


@pytest.fixture
def toy():
    register("toy", LastMonth)
    yield "toy"
    del NETS["toy"]


def test_a_registered_architecture_builds_and_configures(toy):
    net = build_net(toy, n_features=5, n_targets=3, memory=4, width=2)
    assert net(torch.randn(7, 4, 5)).shape == (7, 3)
    assert TrainConfig(architecture=toy, hyperparameters={"width": 2}).architecture == toy
    assert TrainConfig().architecture == DEFAULT_ARCHITECTURE


def test_an_unknown_architecture_is_refused_naming_the_registered_ones(toy):
    with pytest.raises(ValidationError, match="unknown architecture 'gru'; choose one of .*toy"):
        TrainConfig(architecture="gru")


def test_presets_are_the_registered_architectures_with_a_shipped_file(toy):
    assert toy not in presets()  # no upscale/presets/toy.yaml
    assert set(presets()) == {name for name in NETS if name != toy}


def test_the_cli_offers_what_is_registered_when_it_runs(toy):
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "lstm|transformer|tcn|causal_transformer|xgboost|toy" in help_text
    refused = runner.invoke(app, ["train", "--sites", "towers", "--architecture", "gru"])
    assert refused.exit_code == 2
    assert "'gru' is not one of" in refused.output and "'toy'" in refused.output


def test_the_cli_forgets_an_architecture_removed_from_the_registry():
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "toy" not in help_text


@pytest.mark.parametrize(
    ("name", "constructor", "message"),
    [
        ("lstm", LastMonth, "already registered"),
        ("two,names", LastMonth, "letters, digits"),
        ("bare", nn.Linear, "a constructor takes n_features, n_targets, memory"),
    ],
)
def test_register_refuses_what_would_break_later(name, constructor, message):
    before = dict(NETS)
    with pytest.raises(ValueError, match=message):
        register(name, constructor)
    assert NETS == before


@pytest.mark.slow
def test_a_sweep_by_default_compares_every_registered_architecture(toy, small_region):
    frames = [r.reset_index().assign(site_id=s) for s, r in small_region.tower_records.items()]
    sites = SiteData(meta=small_region.sites, fluxes=pd.concat(frames, ignore_index=True))
    series = extract_site_series(small_region.cube, sites, DEFAULT_FEATURES)
    result = run_sweep(
        series,
        TrainConfig(epochs=1, patience=1, folds=3, memory=2),
        memories=[2],
        nee_modes=["direct"],
        ecosystems=["mangrove"],
        workers=1,  # a process of its own: the toy reaches it with the registry
    )
    assert set(result.skill["architecture"]) == set(NETS) >= {toy, "lstm", "transformer"}
    assert set(result.optimum["architecture"]) == set(NETS)
