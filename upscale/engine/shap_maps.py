"""SHAP summary rasters: what drives each flux, and how far back, at every wetland pixel.

The same tile engine as the flux maps ([`prepare_run`][upscale.engine.tiles.prepare_run]): each
dask task takes one tile with the whole time axis, gathers its wetland pixels per ecosystem, builds
their windows at a sample of months, and attributes the ensemble-mean fluxes with the batched
expected-gradients estimator ([`upscale.learn.attribution`][upscale.learn.attribution]), or
exactly with tree SHAP for a boosted-trees model
([`attribute`][upscale.learn.attribution.attribute]). The background is a draw of the model's
own reference windows (its towers' windows). Months are sampled evenly over the valid period,
the same months at every pixel; the sampling is recorded in the attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from upscale.engine.tiles import pick_device, prepare_run, wetland_series
from upscale.errors import InvalidCubeError
from upscale.io.durable import refuse_overwrite, utc_now
from upscale.io.geotiff import write_cog
from upscale.learn.artifact import Model, software_versions
from upscale.learn.attribution import attribute

MEAN_ABS = "mean_abs_shap"
DOMINANT = "dominant_driver"
MEAN_LAG = "mean_lag"


def _background(model: Model, size: int, seed: int) -> torch.Tensor:
    """Raw driver windows ``(size, L, F)`` drawn from the model's reference windows."""
    windows = model.reference_windows()
    pick = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))[:size]
    return windows[pick.to(windows.device)]


def _shap_tile(
    drivers: np.ndarray,
    wetland: np.ndarray,
    *,
    models: tuple[tuple[int, str], ...],
    features: tuple[str, ...],
    n_targets: int,
    months: tuple[int, ...],
    samples: int,
    background: int,
    seed: int,
    device: str,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Summaries ``(K * F + 2 K, y, x)`` of one tile: mean |SHAP|, dominant driver, mean lag."""
    n_features = len(features)
    _, _, ny, nx = drivers.shape
    out = np.full((n_targets * n_features + 2 * n_targets, ny, nx), np.nan, dtype="float32")
    for model, rows, cols, series in wetland_series(
        drivers, wetland, models, features, device, origin
    ):
        index = [features.index(f) for f in model.card.features]
        windows = torch.stack([series[:, t - model.memory + 1 : t + 1] for t in months], dim=1)
        phi = attribute(
            model,
            windows.reshape(-1, model.memory, len(index)),
            _background(model, background, seed),
            samples=samples,
            seed=seed,
        ).abs()  # (K, P * months, L, F)
        phi = phi.reshape(n_targets, len(rows), len(months), model.memory, len(index)).mean(2)
        by_feature = torch.zeros(n_targets, len(rows), n_features, device=phi.device)
        by_feature[..., index] = phi.sum(dim=2)  # (K, P, F) in the run's feature order
        by_lag = phi.sum(dim=3).flip(dims=[2])  # (K, P, L), lag 0 first
        share = by_lag / by_lag.sum(dim=2, keepdim=True).clamp_min(1e-30)
        lag = (share * torch.arange(model.memory, device=share.device)).sum(dim=2)
        block = torch.cat(
            [
                by_feature.permute(0, 2, 1).reshape(-1, len(rows)),  # (K * F, P), target-major
                by_feature.argmax(dim=2).float(),
                lag,
            ]
        )
        out[:, rows, cols] = block.cpu().numpy()
    return out


def shap_maps(
    cube: xr.Dataset,
    mask: xr.Dataset,
    model_folders: Mapping[str, str | Path],
    *,
    months: int = 4,
    period: tuple[str, str] | None = None,
    samples: int = 16,
    background: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> xr.Dataset:
    """Build the lazy SHAP summary rasters of a region.

    Parameters
    ----------
    cube, mask, model_folders
        As for [`flux_maps`][upscale.engine.tiles.flux_maps].
    months
        Months explained per pixel, spread evenly over the period (the same at every pixel).
    period
        First and last month (``YYYY-MM``) to summarise; by default the valid period (from
        the first full window to the end).
    samples
        Expected-gradients samples per window.
    background
        Reference windows of each model drawn as the background.
    seed
        Seed of the draws.
    device
        Where the models run; by default the GPU when there is one.

    Returns
    -------
    xarray.Dataset
        ``mean_abs_shap`` (target, feature, y, x; gC m-2 d-1: mean over the sampled months
        of |SHAP| summed over lags), ``dominant_driver`` (target, y, x; index into the
        ``feature`` coordinate, the driver with the largest mean |SHAP|) and ``mean_lag``
        (target, y, x; months, attribution-weighted). NaN off wetland; the cube's CRS; the
        sampling in the attributes.
    """
    device = pick_device(device)
    run = prepare_run(cube, mask, model_folders, device)
    n_targets, n_features = len(run.targets), len(run.features)
    valid = np.arange(run.memory - 1, cube.sizes["time"])
    if period is not None:
        times = cube.indexes["time"][valid]
        inside = (times >= pd.Timestamp(period[0])) & (times <= pd.Timestamp(period[1]))
        valid = valid[inside]
        if len(valid) == 0:
            raise InvalidCubeError(
                f"no month of {period[0]}..{period[1]} has a full window in the cube "
                f"(valid from {cube.indexes['time'][run.memory - 1]:%Y-%m}); choose another period"
            )
    chosen = tuple(int(i) for i in np.unique(np.linspace(valid[0], valid[-1], months).round()))
    tiles = run.map_tiles(
        _shap_tile,
        n_targets * n_features + 2 * n_targets,
        keep_time=False,
        models=run.folders,
        features=run.features,
        n_targets=n_targets,
        months=chosen,
        samples=samples,
        background=background,
        seed=seed,
        device=device,
    )
    coords = {  # object (variable-length) strings: Zarr v3 has no fixed-width string type
        "target": np.array(run.targets, dtype=object),
        "feature": np.array(run.features, dtype=object),
        "y": cube["y"],
        "x": cube["x"],
    }
    split = n_targets * n_features
    out = xr.Dataset(
        {
            MEAN_ABS: (
                ("target", "feature", "y", "x"),
                tiles[:split].reshape(n_targets, n_features, *tiles.shape[1:]),
                {
                    "units": "gC m-2 d-1",
                    "long_name": "mean absolute SHAP value, summed over lags",
                },
            ),
            DOMINANT: (
                ("target", "y", "x"),
                tiles[split : split + n_targets],
                {
                    "long_name": "driver with the largest mean absolute SHAP value",
                    "flag_values": list(range(n_features)),
                    "flag_meanings": " ".join(run.features),
                },
            ),
            MEAN_LAG: (
                ("target", "y", "x"),
                tiles[split + n_targets :],
                {"units": "months", "long_name": "SHAP-weighted mean lag (0 = month predicted)"},
            ),
        },
        coords=coords,
    ).rio.write_crs(cube.rio.crs)
    out.attrs = {
        "title": "upscale SHAP summary rasters",
        "sampled_months": json.dumps([f"{t:%Y-%m}" for t in cube.indexes["time"][list(chosen)]]),
        "samples": samples,
        "background_windows": background,
        "seed": seed,
        "models": json.dumps({eco: m.card.name for eco, m in run.models.items()}),
        "software": json.dumps(software_versions()),
        "created": utc_now(),
        "device": device,
    }
    return out


def export_shap_cogs(
    shap: xr.Dataset, folder: str | Path, *, overwrite: bool = False
) -> list[Path]:
    """Write the SHAP rasters as Cloud-Optimized GeoTIFFs with band names.

    ``shap_<TARGET>.tif``: one band per driver (mean |SHAP|, gC m-2 d-1);
    ``mean_lag.tif`` and ``dominant_driver.tif``: one band per target (months; index of the
    driver, named in the ``flag_meanings`` tag).
    """
    folder = Path(folder)
    layers = [
        (
            folder / f"shap_{target}.tif",
            shap[MEAN_ABS].sel(target=target),
            [f"{target} {f}" for f in shap["feature"].values],
        )
        for target in shap["target"].values
    ]
    layers += [
        (folder / f"{name}.tif", shap[name], [f"{name} {t}" for t in shap["target"].values])
        for name in (MEAN_LAG, DOMINANT)
    ]
    refuse_overwrite((path for path, _, _ in layers), overwrite=overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_cog(data, labels, path) for path, data, labels in layers]
