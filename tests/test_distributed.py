"""The same predict on a dask.distributed cluster given by address."""

import numpy as np
import pytest
from distributed import Client, LocalCluster

import upscale
from upscale.demo_region import write_demo_region
from upscale.io.stores import open_maps

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


def test_unreachable_scheduler_is_one_clear_error(small_region, model_folders, tmp_path):
    from upscale.errors import UpscaleError

    inputs = write_demo_region(small_region, tmp_path / "inputs")
    with pytest.raises(UpscaleError, match="no dask scheduler answers at tcp://127.0.0.1:1"):
        upscale.predict(
            inputs.cube,
            inputs.mask,
            [model_folders["mangrove"], model_folders["saltmarsh"]],
            tmp_path / "maps.zarr",
            scheduler="tcp://127.0.0.1:1",
        )
