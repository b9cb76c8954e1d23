"""The same predict, train and sweep on a dask.distributed cluster given by address."""

import numpy as np
import pandas as pd
import pytest
import torch
from distributed import Client, LocalCluster

import upscale
from tests.test_registry import LastMonth
from upscale.demo_region import write_demo_region
from upscale.io.stores import open_maps
from upscale.learn.artifact import load_model
from upscale.learn.nets import NETS, register
from upscale.learn.training import TrainConfig

# The transformer's weights change in their last bits with torch's thread count (measured:
# 2 threads against 1), and the workers start with 1 (dask sets OMP_NUM_THREADS=1): 2 threads
# here and on the cluster test that a member's fit takes the threads option along.
ADDRESS = "tcp://127.0.0.1:1"
"""Where no scheduler answers."""
CONFIG = TrainConfig(
    architecture="transformer", epochs=2, folds=3, memory=3, reference_windows=50, seed=3
)

pytestmark = pytest.mark.slow


def model_loads() -> int:
    from upscale.engine.tiles import _cached_model

    return _cached_model.cache_info().misses


def test_predict_on_a_cluster_equals_the_local_run(
    small_region, model_folders, tmp_path, monkeypatch
):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    models = [model_folders["mangrove"], model_folders["saltmarsh"]]
    local = upscale.predict(inputs.cube, inputs.mask, models, tmp_path / "local.zarr", tile=4)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        # Paths as a user types them, relative to a folder the workers were not started in.
        monkeypatch.chdir(tmp_path)
        remote = upscale.predict(
            "inputs/cube.zarr",
            "inputs/mask.zarr",
            models,
            "remote.zarr",
            tile=4,
            scheduler=cluster.scheduler_address,
        )
        with Client(cluster.scheduler_address) as client:
            loads = client.run(model_loads)
    assert len(loads) == 2
    # 30 tiles, 2 ecosystems: each worker loads each model once, not once per tile.
    assert all(0 < count <= 2 for count in loads.values()), loads
    a, b = open_maps(local), open_maps(remote)
    for name in ("GPP", "RE", "NEE", "GPP_std", "doa_distance"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        yield cluster


@pytest.fixture
def toy():
    """An architecture registered by the caller only: the workers must receive it."""
    register("toy", LastMonth)
    yield "toy"
    del NETS["toy"]


def test_training_on_a_cluster_equals_the_local_run(small_region, cluster, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    lines = []
    with upscale.set_options(threads=2):
        local = upscale.train(
            inputs.sites, inputs.cube, tmp_path / "local", config=CONFIG, status=lambda _: None
        )
        remote = upscale.train(
            inputs.sites,
            inputs.cube,
            tmp_path / "remote",
            config=CONFIG,
            scheduler=cluster.scheduler_address,
            status=lines.append,
        )
    assert sum("fitted" in line for line in lines) == 3 * len(local.models)  # one per member
    for eco, folder in local.models.items():
        a, b = load_model(folder), load_model(remote.models[eco])
        assert a.card.cv_metrics == b.card.cv_metrics
        assert a.card.cv_towers == b.card.cv_towers
        for x, y in zip(a.members, b.members, strict=True):
            for name, weights in x.net.state_dict().items():
                torch.testing.assert_close(weights, y.net.state_dict()[name], rtol=0, atol=0)


def test_a_sweep_on_a_cluster_equals_the_local_run(small_region, cluster, toy, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    grid = {"architectures": [toy, "transformer"], "memories": [1, 3], "nee_modes": ["direct"]}
    with upscale.set_options(threads=2):
        local = upscale.sweep(
            inputs.sites, inputs.cube, tmp_path / "local", config=CONFIG, workers=1, **grid
        )
        remote = upscale.sweep(
            inputs.sites,
            inputs.cube,
            tmp_path / "remote",
            config=CONFIG,
            scheduler=cluster.scheduler_address,
            **grid,
        )
    assert_same_sweep(local.result, remote.result)
    assert set(remote.result.study["architecture"]) == {toy, "transformer"}


def assert_same_sweep(a, b):
    """The tables of two sweeps are equal but for the time the runs took."""
    for name in ("skill", "towers", "study", "optimum", "nee_modes"):
        pd.testing.assert_frame_equal(
            getattr(a, name).drop(columns="seconds_per_member", errors="ignore"),
            getattr(b, name).drop(columns="seconds_per_member", errors="ignore"),
        )


def test_a_sweep_takes_local_workers_or_a_scheduler(small_region, tmp_path):
    from upscale.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="give one or the other"):
        upscale.sweep(tmp_path, None, tmp_path / "out", workers=2, scheduler=ADDRESS)


@pytest.mark.parametrize("verb", ["predict", "train", "sweep"])
def test_unreachable_scheduler_is_one_clear_error(verb, small_region, model_folders, tmp_path):
    from upscale.errors import SchedulerUnreachableError

    inputs = write_demo_region(small_region, tmp_path / "inputs")
    runs = {
        "predict": lambda: upscale.predict(
            inputs.cube,
            inputs.mask,
            [model_folders["mangrove"], model_folders["saltmarsh"]],
            tmp_path / "maps.zarr",
            scheduler=ADDRESS,
        ),
        "train": lambda: upscale.train(
            inputs.sites, inputs.cube, tmp_path / "models", config=CONFIG, scheduler=ADDRESS
        ),
        "sweep": lambda: upscale.sweep(
            inputs.sites, inputs.cube, tmp_path / "sweep", config=CONFIG, scheduler=ADDRESS
        ),
    }
    with pytest.raises(SchedulerUnreachableError, match=f"no dask scheduler answers at {ADDRESS}"):
        runs[verb]()
