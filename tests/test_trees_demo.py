"""The demo chain with the boosted trees: their maps pass the nets' checks (CRS, COGs, budgets).

The checks are those of ``test_demo_chain``, collected here against a demo run whose models
are the trees' preset.
"""

import pytest

import upscale
from upscale.learn.artifact import load_model
from upscale.learn.config import load_train_config

from .test_demo_chain import (  # noqa: F401 - collected here against the trees' run
    test_budget_equals_the_map_integrated_over_geodesic_areas,
    test_cogs_validate,
    test_cross_validated_skill,
    test_maps_carry_the_cube_grid_and_crs,
    test_maps_recover_the_truth,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-trees") / "upscale-demo"
    upscale.demo(out, config=load_train_config("xgboost"), status=lambda line: None)
    return out, ""


def test_the_demo_models_are_trees(demo_run):
    out, _ = demo_run
    for ecosystem in ("mangrove", "saltmarsh"):
        model = load_model(out / "models" / f"demo-{ecosystem}")
        assert model.card.architecture == "xgboost"
        assert len(model.card.tree_files) == 4 * 3  # 4 members x 3 fluxes
