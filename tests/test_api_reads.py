"""Each verb opens each of its inputs once: the cube, the mask, the tower files, the models."""

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

import upscale
from upscale.demo_region import write_demo_region
from upscale.learn import artifact
from upscale.learn.training import TrainConfig

QUICK = TrainConfig(epochs=1, folds=3, memory=3, reference_windows=50)


@pytest.fixture(scope="module")
def inputs(small_region, tmp_path_factory):
    return write_demo_region(small_region, tmp_path_factory.mktemp("inputs"))


def counting(monkeypatch, owner, name: str) -> Counter:
    """Wrap the real ``owner.name`` to count its calls by the resolved path it is given.

    A call that reads no rows (``nrows=0``: a reader looking at a file's header before
    reading it) is not counted.
    """
    calls: Counter = Counter()
    real = getattr(owner, name)

    def wrapper(path, *args, **kwargs):
        if kwargs.get("nrows") != 0:
            calls[Path(path).resolve()] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_train_with_a_mask_opens_the_cube_the_mask_and_each_tower_file_once(
    inputs, tmp_path, monkeypatch
):
    stores = counting(monkeypatch, xr, "open_zarr")
    tables = counting(monkeypatch, pd, "read_csv")
    upscale.train(
        inputs.sites,
        inputs.cube,
        tmp_path / "models",
        config=QUICK,
        mask=inputs.mask,
        status=lambda line: None,
    )
    assert stores[inputs.cube.resolve()] == 1
    assert stores[inputs.mask.resolve()] == 1
    tower_files = {path.resolve() for path in Path(inputs.sites).glob("*.csv")}
    assert {path: tables[path] for path in tower_files} == dict.fromkeys(tower_files, 1)


def test_predict_opens_the_cube_the_mask_and_each_model_once(
    inputs, model_folders, tmp_path, monkeypatch
):
    stores = counting(monkeypatch, xr, "open_zarr")
    cards = counting(monkeypatch, artifact, "read_card")  # every load reads the card first
    upscale.predict(inputs.cube, inputs.mask, list(model_folders.values()), tmp_path / "m.zarr")
    assert stores[inputs.cube.resolve()] == 1
    assert stores[inputs.mask.resolve()] == 1
    assert dict(cards) == {folder.resolve(): 1 for folder in model_folders.values()}
