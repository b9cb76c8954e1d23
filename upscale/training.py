"""Training: fit a sequence model on tower windows, with early stopping on held-out towers.

Folds are always by site, never by month: neighbouring months of one tower are nearly the
same sample, so a random split of months leaks and inflates skill.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from upscale.artifact import Model, ModelCard, as_float_list, software_versions, utc_now
from upscale.errors import SiteDataError
from upscale.metrics import decomposed_skill
from upscale.nets import ArchitectureName, build_net, resolve_hyperparameters
from upscale.samples import SiteSeries
from upscale.schema import DEFAULT_FEATURES, TARGETS

Progress = Callable[[str], None]
MIN_TOWERS = 3
"""Towers an ecosystem needs: every fold must keep one to train on and one to stop on."""


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run; stored in the model card.

    The same config and seed give the same weights on CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: ArchitectureName = "lstm"
    memory: int = Field(6, ge=1, le=36, description="window length L in months")
    features: tuple[str, ...] = DEFAULT_FEATURES
    targets: tuple[str, ...] = TARGETS
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(200, ge=1)
    patience: int = Field(25, ge=1, description="epochs without validation gain before stopping")
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    validation_fraction: float = Field(0.25, gt=0, lt=1, description="share of towers held out")
    folds: int = Field(4, ge=2, description="site folds of the cross-validation")
    seed: int = 0


def _windows(series: SiteSeries, memory: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``(N, L, F)`` ending on measured months and their fluxes ``(N, K)``."""
    drivers = torch.from_numpy(series.drivers)
    views = drivers.unfold(1, memory, 1).transpose(2, 3)  # (S, W, L, F), no copy
    fluxes = torch.from_numpy(series.fluxes[:, memory - 1 :])
    keep = torch.isfinite(fluxes).any(dim=-1)
    return views[keep], fluxes[keep]


def _masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(target)
    return ((pred - torch.nan_to_num(target)) ** 2)[valid].mean()


def split_sites(site_ids: Sequence[str], n_groups: int, seed: int) -> list[list[str]]:
    """Deal sorted site ids into ``n_groups`` groups after a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(sorted(site_ids))
    return [sorted(order[i::n_groups].tolist()) for i in range(n_groups)]


def fit(
    series: SiteSeries,
    config: TrainConfig,
    *,
    name: str,
    ecosystem: str,
    progress: Progress | None = None,
) -> Model:
    """Train one model on the towers of ``series``.

    A share of the towers (``config.validation_fraction``, at least one) is held out for
    early stopping; the weights of the best validation epoch are kept.

    Parameters
    ----------
    series
        Towers to learn from (one ecosystem).
    config
        Architecture, memory and optimisation settings.
    name, ecosystem
        Recorded in the card.
    progress
        Called with a short status line after each epoch.

    Returns
    -------
    Model
        The trained net with a card; ``cv_metrics`` is empty until set by the caller.
    """
    if len(series.site_ids) < 2:
        raise SiteDataError(
            f"{ecosystem}: {len(series.site_ids)} tower(s) left to train on; at least 2 are "
            "needed (one to train on, one to stop early on)"
        )
    torch.manual_seed(config.seed)
    n_validation = max(1, round(config.validation_fraction * len(series.site_ids)))
    shuffled = np.random.default_rng(config.seed).permutation(sorted(series.site_ids))
    validation_sites = sorted(shuffled[:n_validation].tolist())
    training_sites = sorted(shuffled[n_validation:].tolist())
    train, valid = series.subset(training_sites), series.subset(validation_sites)

    x_mean = train.drivers.reshape(-1, len(series.features)).mean(axis=0)
    x_std = train.drivers.reshape(-1, len(series.features)).std(axis=0) + 1e-6
    flat_y = train.fluxes.reshape(-1, len(series.targets))
    y_mean, y_std = np.nanmean(flat_y, axis=0), np.nanstd(flat_y, axis=0) + 1e-6
    net = build_net(
        config.architecture,
        n_features=len(series.features),
        n_targets=len(series.targets),
        memory=config.memory,
        **config.hyperparameters,
    )
    measured = series.times[np.isfinite(train.fluxes).any(axis=(0, 2))]
    card = ModelCard(
        name=name,
        architecture=config.architecture,
        hyperparameters=resolve_hyperparameters(config.architecture, **config.hyperparameters),
        memory=config.memory,
        features=list(series.features),
        feature_mean=as_float_list(x_mean),
        feature_std=as_float_list(x_std),
        targets=list(series.targets),
        target_mean=as_float_list(y_mean),
        target_std=as_float_list(y_std),
        ecosystem=ecosystem,
        training_sites=training_sites,
        validation_sites=validation_sites,
        training_period=(f"{measured[0]:%Y-%m}", f"{measured[-1]:%Y-%m}"),
        cv_scheme="",
        cv_metrics={},
        train_config=config.model_dump(mode="json"),
        data={},
        versions=software_versions(),
        created=utc_now(),
    )
    model = Model(net=net, card=card)
    x_train, y_train = _windows(train, config.memory)
    x_valid, y_valid = _windows(valid, config.memory)
    for role, windows, sites in (("training", x_train, train), ("validation", x_valid, valid)):
        if len(windows) == 0:
            raise SiteDataError(
                f"{ecosystem}: the {role} tower(s) {', '.join(sites.site_ids)} have no measured "
                f"month after a full {config.memory}-month window of cube drivers; use a cube "
                "that starts earlier, a shorter memory, or towers with longer records"
            )
    x_train, x_valid = model.normalise(x_train), model.normalise(x_valid)
    y_train, y_valid = model.normalise_targets(y_train), model.normalise_targets(y_valid)

    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    shuffler = torch.Generator().manual_seed(config.seed)
    best_loss, best_state, stale = float("inf"), None, 0
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=shuffler)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = _masked_mse(net(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            valid_loss = float(_masked_mse(net(x_valid), y_valid))
        if valid_loss < best_loss - 1e-5:
            best_loss, stale = valid_loss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        if progress:
            progress(f"epoch {epoch + 1}: validation loss {valid_loss:.3f} (best {best_loss:.3f})")
        if stale >= config.patience:
            break
    net.load_state_dict(best_state)
    net.eval()
    return model


def cross_validate(
    series: SiteSeries,
    config: TrainConfig,
    *,
    ecosystem: str,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, dict[str, float]]], np.ndarray]:
    """K-fold-by-site cross-validation of one ecosystem's towers.

    Each fold's towers are predicted by a model that never saw them (neither for training
    nor for early stopping).

    Returns
    -------
    metrics
        Per target and component (all months, across sites, seasonal cycle, anomalies; see
        :func:`upscale.metrics.decomposed_skill`): scores over held-out tower months.
    predictions
        ``(S, T, K)`` held-out predictions aligned with ``series.fluxes`` (NaN before the
        first full window).
    """
    folds = split_sites(series.site_ids, min(config.folds, len(series.site_ids)), config.seed)
    predictions = np.full(series.fluxes.shape, np.nan, dtype="float32")
    for number, held_out in enumerate(folds, start=1):
        if progress:
            progress(f"fold {number}/{len(folds)}")
        training = [s for s in series.site_ids if s not in held_out]
        model = fit(series.subset(training), config, name=f"cv-fold-{number}", ecosystem=ecosystem)
        rows = [series.site_ids.index(s) for s in held_out]
        drivers = torch.from_numpy(series.drivers[rows])
        predictions[rows, config.memory - 1 :] = model.predict_series(drivers).numpy()
    metrics = {
        target: decomposed_skill(series.fluxes[..., k], predictions[..., k], series.times)
        for k, target in enumerate(series.targets)
    }
    return metrics, predictions


def train_ecosystem(
    series: SiteSeries,
    config: TrainConfig,
    *,
    name: str,
    ecosystem: str,
    data: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> tuple[Model, np.ndarray]:
    """Cross-validate, then fit the model that is kept, for one ecosystem.

    Returns
    -------
    model
        Trained on all towers (early stopping on a held-out share), with the
        cross-validated metrics and scheme in its card.
    predictions
        Held-out cross-validation predictions ``(S, T, K)``.
    """
    metrics, predictions = cross_validate(series, config, ecosystem=ecosystem, progress=progress)
    if progress:
        progress("final model")
    model = fit(series, config, name=name, ecosystem=ecosystem)
    n_folds = min(config.folds, len(series.site_ids))
    model.card = model.card.model_copy(
        update={
            "cv_scheme": f"{n_folds}-fold by site, seed {config.seed}",
            "cv_metrics": metrics,
            "data": data or {},
        }
    )
    return model, predictions
