"""A cluster worker killed mid-run costs time only: the same maps, the same sweep tables.

The cluster has nannies (``processes=True``): a killed worker is restarted, and the scheduler
hands the killed worker's tasks to the workers it has, once each (dask gives up on a task
only after ``distributed.scheduler.allowed-failures`` deaths of the workers running it, 3).
"""

import os
import signal
import threading

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

import upscale
from upscale.demo_region import write_demo_region
from upscale.io.stores import open_maps
from upscale.learn.training import TrainConfig

pytestmark = pytest.mark.slow


class WorkerKiller(threading.Thread):
    """Kill one worker with SIGKILL as soon as the scheduler reports it running a task."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.finished = threading.Event()  # set by the test once the run has returned
        self.killed: int | None = None
        self.mid_run = False

    def run(self) -> None:
        # Not dask's default client: the run's computations must not go through this one.
        with Client(self.address, set_as_default=False) as client:
            pids = client.run(os.getpid)
            while not self.finished.is_set():
                busy = [worker for worker, tasks in client.processing().items() if tasks]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    self.killed, self.mid_run = pids[busy[0]], not self.finished.is_set()
                    return
                self.finished.wait(0.01)  # polls the scheduler; the kill waits for its answer


def run_killing_one_worker(run):
    """Run ``run(address)`` on a fresh cluster whose worker is killed mid-run; its result."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        killer = WorkerKiller(cluster.scheduler_address)
        killer.start()
        result = run(cluster.scheduler_address)
        killer.finished.set()
        killer.join()
        with Client(cluster.scheduler_address) as client:
            client.wait_for_workers(2)  # the nanny's restart of the killed one
            pids = client.run(os.getpid)
    assert killer.killed is not None and killer.mid_run, "no worker was killed mid-run"
    assert killer.killed not in pids.values() and len(pids) == 2, pids
    return result


def test_a_worker_killed_mid_predict_costs_time_only(small_region, model_folders, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    models = [model_folders["mangrove"], model_folders["saltmarsh"]]
    local = upscale.predict(inputs.cube, inputs.mask, models, tmp_path / "local.zarr", tile=4)
    remote = run_killing_one_worker(
        lambda address: upscale.predict(
            inputs.cube, inputs.mask, models, tmp_path / "remote.zarr", tile=4, scheduler=address
        )
    )
    a, b = open_maps(local), open_maps(remote)
    for name in ("GPP", "RE", "NEE", "GPP_std", "doa_distance"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_worker_killed_mid_sweep_costs_time_only(small_region, tmp_path):
    inputs = write_demo_region(small_region, tmp_path / "inputs")
    config = TrainConfig(
        epochs=2, folds=3, memory=3, hyperparameters={"hidden": 8, "layers": 1}, seed=5
    )
    grid = {"architectures": ["lstm"], "memories": [1, 3], "nee_modes": ["direct"]}
    local = upscale.sweep(inputs.sites, inputs.cube, tmp_path / "local", config=config, **grid)
    remote = run_killing_one_worker(
        lambda address: upscale.sweep(
            inputs.sites, inputs.cube, tmp_path / "remote", config=config, scheduler=address, **grid
        )
    )
    for name in ("skill", "towers", "study", "optimum", "nee_modes"):
        pd.testing.assert_frame_equal(
            getattr(local.result, name).drop(columns="seconds_per_member", errors="ignore"),
            getattr(remote.result, name).drop(columns="seconds_per_member", errors="ignore"),
        )
