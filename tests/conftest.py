"""Shared fixtures: a small generated demo region and untrained models with real cards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from upscale.demo_region import DemoRegion, DemoSpec, make_demo_region
from upscale.io.durable import utc_now
from upscale.learn.artifact import (
    DomainCard,
    Member,
    MemberCard,
    Model,
    ModelCard,
    as_float_list,
    save_model,
    software_versions,
)
from upscale.learn.nets import BoostedTrees, build_net
from upscale.schema import DEFAULT_FEATURES, TARGETS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SMALL_SPEC = DemoSpec(ny=20, nx=24, years=4, n_mangrove_sites=4, n_saltmarsh_sites=3, seed=7)


def shared_file(name: str) -> Path:
    """Path of a real file in ../shared/data, or skip when the folder is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data ships beside the project in CI only)")
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """The README's first command, ``upscale demo``, run once: its folder and what it printed."""
    from typer.testing import CliRunner

    from upscale.cli import app

    out = tmp_path_factory.mktemp("demo") / "upscale-demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def small_region() -> DemoRegion:
    """A 20 x 24 pixel, 4-year demo region with 7 towers."""
    return make_demo_region(SMALL_SPEC)


TINY_HYPERPARAMETERS = {
    "lstm": {"hidden": 8, "layers": 1},
    "transformer": {"d_model": 8, "heads": 2},
    "tcn": {"hidden": 8},
    "causal_transformer": {"d_model": 8, "heads": 2},
    "xgboost": {"trees": 20, "depth": 3},
}
"""Small nets of each shipped architecture, for tests that need their shapes, not skill."""


def grow_random_trees(net: BoostedTrees, seed: int) -> BoostedTrees:
    """Fit boosted trees to a random function of random windows: their "untrained" state.

    Trees have no random initialisation; trees grown on a random target stand in for the
    random weights of an untrained net (every lag and feature plays a part).
    """
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randn(256, net.memory, net.n_features, generator=generator)
    weights = torch.randn(net.memory * net.n_features, net.n_targets, generator=generator)
    fluxes = torch.tanh(windows.reshape(len(windows), -1) @ weights / 3)
    ones = torch.ones_like(fluxes)
    net.fit((windows, fluxes, ones), (windows[:64], fluxes[:64], ones[:64]), patience=5, seed=seed)
    return net


def untrained_model(
    ecosystem: str,
    *,
    memory: int = 3,
    architecture: str = "lstm",
    seed: int = 0,
    members: int = 2,
    nee_mode: str = "direct",
) -> Model:
    """Randomly initialised members with a complete card (normalisation of the demo's scale)."""
    torch.manual_seed(seed)
    features = list(DEFAULT_FEATURES)
    hyper = TINY_HYPERPARAMETERS[architecture]
    nets = [
        build_net(
            architecture, n_features=len(features), n_targets=len(TARGETS), memory=memory, **hyper
        )
        for _ in range(members)
    ]
    nets = [
        grow_random_trees(net, seed + m) if isinstance(net, BoostedTrees) else net
        for m, net in enumerate(nets)
    ]
    scale = {
        "feature_mean": as_float_list(np.linspace(0, 10, len(features))),
        "feature_std": as_float_list(np.linspace(1, 5, len(features))),
    }
    member_cards = [
        MemberCard(
            training_sites=["ZZ-Tst"],
            validation_sites=["ZZ-Val"],
            held_out_sites=[f"ZZ-Ho{m}"],
            target_mean=[5.0, 3.0, -2.0],
            target_std=[2.0, 1.0, 1.5],
            **scale,
        )
        for m in range(members)
    ]
    card = ModelCard(
        name=f"test-{ecosystem}",
        architecture=architecture,
        hyperparameters=hyper,
        memory=memory,
        features=features,
        targets=list(TARGETS),
        nee_mode=nee_mode,
        ecosystem=ecosystem,
        sites=["ZZ-Tst", "ZZ-Val"],
        training_period=("2010-01", "2013-12"),
        members=member_cards,
        domain=DomainCard(threshold=0.5, reference_windows=20, **scale),
        cv_scheme="none",
        cv_metrics={},
        train_config={},
        data={},
        versions=software_versions(),
        created=utc_now(),
    )
    reference = torch.randn(20, memory * len(features))
    return Model(
        members=[Member(net=n, card=c) for n, c in zip(nets, member_cards, strict=True)],
        card=card,
        reference=reference,
    )


@pytest.fixture
def model_folders(tmp_path) -> dict[str, Path]:
    """Untrained mangrove (L=3) and saltmarsh (L=2) models saved as artifacts."""
    return {
        "mangrove": save_model(untrained_model("mangrove", memory=3), tmp_path / "m-mangrove"),
        "saltmarsh": save_model(
            untrained_model("saltmarsh", memory=2, seed=1), tmp_path / "m-saltmarsh"
        ),
    }
