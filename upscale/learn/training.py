"""Training: an ensemble of sequence models, one per cross-validation fold of towers.

Folds are by tower (``kfold``, ``loso``) or by time (``temporal``), never by random months:
neighbouring months of one tower are nearly the same sample, so a random split of months leaks
and inflates skill. With folds of towers, each fold's member is trained on the other towers and
predicts its fold's towers; with ``temporal``, every member is trained on the first months of
every tower and predicts their last months, which no training window reaches. Those held-out
predictions give the cross-validated skill, and the members together are the ensemble whose
mean is mapped and whose spread is the uncertainty. A member stops early on a share of its
towers, or on the last months of its towers when it has a single tower or the split is
temporal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upscale.errors import InvalidTowerDataError
from upscale.io.durable import utc_now
from upscale.learn.artifact import (
    DomainCard,
    Member,
    MemberCard,
    Model,
    ModelCard,
    as_float_list,
    software_versions,
)
from upscale.learn.balance import NeeMode, derive_nee, imbalance
from upscale.learn.metrics import decomposed_skill, skill
from upscale.learn.nets import (
    DEFAULT_ARCHITECTURE,
    BoostedTrees,
    architecture_versions,
    build_net,
    check_architecture,
    is_tree_ensemble,
    resolve_hyperparameters,
)
from upscale.learn.samples import SiteSeries, window_views
from upscale.learn.tasks import Executor, carried
from upscale.progress import Status
from upscale.schema import DEFAULT_FEATURES, TARGETS

CrossValidation = Literal["kfold", "loso", "temporal"]
"""Folds of towers (k of them, or one per tower), or each tower's last months held out."""
MIN_TOWERS = 2
"""Tower pixels an ecosystem needs to be cross-validated by tower: one held out, one to learn."""
DOMAIN_QUANTILE = 0.95
"""Share of tower windows whose nearest other-tower window sets the extrapolation threshold."""


class TrainConfig(BaseModel):
    """Everything that decides a training run; stored in the model card.

    The same config, data and seed give the same weights and metrics on CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str = Field(
        DEFAULT_ARCHITECTURE, description="a name registered in upscale.learn.nets.NETS"
    )
    memory: int = Field(6, ge=1, le=36, description="window length L in months")
    features: tuple[str, ...] = DEFAULT_FEATURES
    site_drivers: tuple[str, ...] = Field(
        (), description="features taken from the towers' own data instead of the cube"
    )
    targets: tuple[str, ...] = TARGETS
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    nee_mode: NeeMode = Field("direct", description="how NEE relates to RE - GPP")
    balance_weight: float = Field(1.0, ge=0, description="weight of the penalty nee_mode")
    cv: CrossValidation = Field(
        "kfold", description="k folds of towers, one fold per tower, or the last months held out"
    )
    folds: int = Field(
        4, ge=2, description="folds of towers with cv='kfold'; ensemble members with 'temporal'"
    )
    test_fraction: float = Field(
        0.3, gt=0, lt=1, description="share of each tower's months held out with cv='temporal'"
    )
    uncertainty: Literal["RANDUNC", "JOINTUNC"] = Field(
        "RANDUNC", description="tower uncertainty taken as measurement noise: random or joint"
    )
    weight_by_uncertainty: bool = Field(
        False, description="weight each month's loss by 1 / uncertainty^2 where towers give it"
    )
    epochs: int = Field(200, ge=1, description="most epochs of a net (trees: see hyperparameters)")
    patience: int = Field(
        25, ge=1, description="epochs (boosting rounds of trees) without validation gain to stop"
    )
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    validation_fraction: float = Field(
        0.25, gt=0, lt=1, description="share of towers (or of their last months) to stop early on"
    )
    reference_windows: int = Field(4000, ge=10, description="tower windows kept for the domain")
    seed: int = 0

    @field_validator("architecture")
    @classmethod
    def _registered(cls, name: str) -> str:
        """Refuse a name the registry does not hold, listing those it does."""
        return check_architecture(name)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        """Refuse configs that would only fail later, deep inside training."""
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown target(s) {unknown}; targets are among {list(TARGETS)}")
        outside = [name for name in self.site_drivers if name not in self.features]
        if outside:
            raise ValueError(f"site_drivers {outside} must also be features")
        for name in ("features", "targets"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be non-empty and without repeats")
        if self.nee_mode != "direct" and set(TARGETS) - set(self.targets):
            raise ValueError(f"nee_mode {self.nee_mode!r} needs the targets {list(TARGETS)}")
        if self.nee_mode == "penalty" and is_tree_ensemble(self.architecture):
            raise ValueError(
                f"nee_mode 'penalty' is a loss term of nets trained by gradient; the trees of "
                f"{self.architecture} are grown per flux: use nee_mode direct or derived"
            )
        hyper = resolve_hyperparameters(self.architecture, **self.hyperparameters)
        try:
            build_net(
                self.architecture,
                n_features=len(self.features),
                n_targets=len(self.targets),
                memory=self.memory,
                **hyper,
            )
        except (AssertionError, ValueError, RuntimeError, TypeError) as err:
            raise ValueError(
                f"hyperparameters {hyper} do not build a {self.architecture}: {err}"
            ) from None
        return self


@dataclass(frozen=True)
class EnsembleFit:
    """A trained ensemble with its held-out predictions.

    Attributes
    ----------
    model
        The ensemble, one member per fold, with cross-validated metrics in its card.
    predictions
        ``(S, T, K)`` held-out prediction of each tower: by the member that never saw it
        (folds of towers), or by the ensemble on the held-out months (``temporal``); NaN
        before the first full window.
    folds
        The towers held out by each member, in member order; with ``temporal``, the towers
        whose last months each fold scores (every member is held out from all of them).
    observed
        ``(S, T, K)`` the tower fluxes the predictions are scored against: every month with
        folds of towers, the held-out months with ``temporal``.
    """

    model: Model
    predictions: np.ndarray
    folds: list[list[str]]
    observed: np.ndarray


def split_months(series: SiteSeries, fraction: float) -> tuple[SiteSeries, SiteSeries]:
    """Split each tower's record in time: its last ``fraction`` of measured months apart.

    Parameters
    ----------
    series
        Towers to split.
    fraction
        Share of each tower's measured months (months with a flux) to hold out, at least one.

    Returns
    -------
    before, after
        ``before`` keeps the drivers and fluxes of the months before each tower's cut (both
        NaN from the cut on), so no window of it reaches a held-out month; ``after`` keeps
        the fluxes from the cut on and every driver, so its windows may look back into the
        months before, as a forecast of those months would.
    """
    held = held_out_months(series, fraction)
    before = replace(
        series,
        drivers=np.where(held[..., None], np.nan, series.drivers).astype("float32"),
        fluxes=np.where(held[..., None], np.nan, series.fluxes).astype("float32"),
    )
    after = replace(
        series, fluxes=np.where(held[..., None], series.fluxes, np.nan).astype("float32")
    )
    return before, after


def held_out_months(series: SiteSeries, fraction: float) -> np.ndarray:
    """``(S, T)`` True from each tower's cut on: its last ``fraction`` of measured months.

    At least one month of each tower with a measured month is held out.
    """
    measured = np.isfinite(series.fluxes).any(axis=-1)
    held = np.zeros(measured.shape, dtype=bool)
    for s, months in enumerate(measured):
        months = np.flatnonzero(months)
        if len(months):
            held[s, months[len(months) - max(1, round(fraction * len(months)))] :] = True
    return held


def require_temporal_split(series: SiteSeries, config: TrainConfig) -> None:
    """Check that the temporal split leaves every tower windows to learn from and to score.

    Raises
    ------
    InvalidTowerDataError
        Naming the first tower whose months before its held-out share are fewer than the
        memory needs for one window, or whose held-out months have no full window.
    """
    before, after = split_months(series, config.test_fraction)
    learn, score = before.trainable(config.memory), after.trainable(config.memory)
    measured = np.isfinite(series.fluxes).any(axis=-1)
    for s, site in enumerate(series.site_ids):
        if learn[s].any() and score[s].any():
            continue
        n_months = int(measured[s].sum())
        kept = int(np.isfinite(before.fluxes[s]).any(axis=-1).sum())
        raise InvalidTowerDataError(
            f"site {site}: holding out its last {config.test_fraction:.0%} of {n_months} "
            f"measured months leaves {kept} before them, with no full window of "
            f"L={config.memory} months of drivers to {'learn' if not learn[s].any() else 'score'}"
            f" on; use a shorter memory, another --test-fraction, or leave the tower out"
        )


def uncertainty_weights(sigma: np.ndarray) -> torch.Tensor:
    """Loss weights ``1 / sigma^2`` of windows' fluxes ``(N, K)``, within each flux.

    The weights rank a flux's months against each other and are scaled to a median of 1,
    so a flux whose towers give an uncertainty (often NEE alone) does not outweigh the
    others. A flux's uncertainties are floored at their 5th percentile, so a few near-zero
    values do not take the whole loss; months without an uncertainty get weight 1.
    """
    weights = np.ones(sigma.shape, dtype="float32")
    for k in range(sigma.shape[1]):
        known = np.isfinite(sigma[:, k]) & (sigma[:, k] > 0)
        if not known.any():
            continue
        floor = np.percentile(sigma[known, k], 5)
        weight = 1.0 / np.maximum(sigma[:, k], floor) ** 2
        weights[:, k] = np.where(known, weight / np.median(weight[known]), 1.0)
    return torch.from_numpy(weights)


def _loss(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    member: Member,
    config: TrainConfig,
) -> torch.Tensor:
    """Masked, weighted mean squared error on scaled fluxes, with the carbon balance applied."""
    if config.nee_mode == "derived":
        fluxes = derive_nee(member.denormalise(outputs), config.targets)
        outputs = member.normalise_targets(fluxes)
    valid = torch.isfinite(targets)
    squared = (outputs - torch.nan_to_num(targets)) ** 2
    loss = (squared * weights)[valid].sum() / weights[valid].sum()
    if config.nee_mode == "penalty":
        gap = imbalance(member.denormalise(outputs), config.targets)
        nee_scale = member.card.target_std[list(config.targets).index(TARGETS[2])]
        loss = loss + config.balance_weight * ((gap / nee_scale) ** 2).mean()
    return loss


def split_sites(site_ids: Sequence[str], n_groups: int, seed: int) -> list[list[str]]:
    """Deal sorted site ids into ``n_groups`` groups after a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(sorted(site_ids))
    return [sorted(order[i::n_groups].tolist()) for i in range(n_groups)]


def site_folds(groups: Sequence[Sequence[str]], config: TrainConfig) -> list[list[str]]:
    """Split towers into folds, keeping each pixel's towers together.

    Parameters
    ----------
    groups
        Towers grouped by cube pixel
        ([`pixel_groups`][upscale.learn.samples.SiteSeries.pixel_groups]).
    config
        ``cv="loso"``: one fold per pixel (per tower when every tower has its own pixel);
        ``cv="kfold"``: ``config.folds`` folds of pixels dealt after a seeded shuffle;
        ``cv="temporal"``: one fold per pixel too, its towers' last months (every member
        is held out from all of them; the folds are the units the skill is scored in).
    """
    by_first = {min(group): sorted(group) for group in groups}
    if config.cv in ("loso", "temporal"):
        keys = [[key] for key in sorted(by_first)]
    else:
        keys = split_sites(list(by_first), min(config.folds, len(by_first)), config.seed)
    return [sorted(site for key in fold for site in by_first[key]) for fold in keys]


def cv_scheme(config: TrainConfig, n_sites: int) -> str:
    """Describe the cross-validation of a run, for cards and tables."""
    if config.cv == "temporal":
        return (
            f"temporal: each tower's last {config.test_fraction:.0%} of months held out, "
            f"{config.folds} members, seed {config.seed}"
        )
    if config.cv == "loso":
        return f"leave-one-site-out ({n_sites} folds)"
    return f"{min(config.folds, n_sites)}-fold by site, seed {config.seed}"


def feature_scale(flat: np.ndarray) -> np.ndarray:
    """Return the spread of each feature over tower months, to normalise it by.

    A feature (nearly) constant at the towers, such as the ``FILLED`` flag where no tower
    pixel was gap-filled, keeps unit scale: dividing by its tiny spread would turn any
    other value on the map into a huge input and an apparent extrapolation. Months a tower
    did not measure (NaN) are left out.
    """
    std = np.nanstd(flat, axis=0)
    constant = std <= 1e-6 * np.maximum(1.0, np.abs(np.nanmean(flat, axis=0)))
    return np.where(constant, 1.0, std + 1e-6)


def _early_stopping_split(
    series: SiteSeries, config: TrainConfig, seed: int
) -> tuple[SiteSeries, SiteSeries]:
    """Split a member's towers into what it learns from and what it stops early on.

    A share of the tower pixels when there are two or more and the cross-validation is by
    tower; otherwise (a single tower left, or a temporal split, whose members all see the
    same towers) the last share of each tower's learning months.
    """
    groups = series.pixel_groups()
    if config.cv == "temporal" or len(groups) < 2:
        return split_months(series, config.validation_fraction)
    n_validation = min(max(1, round(config.validation_fraction * len(groups))), len(groups) - 1)
    shuffled = np.random.default_rng(seed).permutation(len(groups))
    validation_sites = sorted(s for g in shuffled[:n_validation] for s in groups[g])
    training_sites = sorted(s for g in shuffled[n_validation:] for s in groups[g])
    return series.subset(training_sites), series.subset(validation_sites)


def fit_member(
    series: SiteSeries,
    config: TrainConfig,
    *,
    held_out: Sequence[str] = (),
    held_out_months: dict[str, str] | None = None,
    seed: int | None = None,
    status: Status | None = None,
) -> Member:
    """Train one net on the towers of ``series``, stopping early on a share of them.

    Parameters
    ----------
    series
        Towers to learn from (one ecosystem), without the held-out fold or months.
    config
        Architecture, memory, carbon balance and optimisation settings.
    held_out
        Towers of the member's cross-validation fold, recorded in its card.
    held_out_months
        With a temporal split, each tower's first held-out month, recorded in its card.
    seed
        Seed of this member (weights, shuffling, validation towers); ``config.seed`` when
        not given.
    status
        Called with a short status line after each epoch.

    Returns
    -------
    Member
        The net at its best validation epoch, with its normalisation.

    Raises
    ------
    InvalidTowerDataError
        When no tower is left, or the towers have no full window to learn or stop on.
    """
    seed = config.seed if seed is None else seed
    if not series.site_ids:
        raise InvalidTowerDataError("no tower is left to train on; add towers or use --cv temporal")
    torch.manual_seed(seed)
    train, valid = _early_stopping_split(series, config, seed)
    x_train, y_train, sigma_train = train.trainable_windows(config.memory)
    x_valid, y_valid, sigma_valid = valid.trainable_windows(config.memory)
    for role, found, part in (("training", x_train, train), ("validation", x_valid, valid)):
        if len(found) == 0:
            raise InvalidTowerDataError(
                f"the {role} windows of tower(s) {', '.join(part.site_ids)} are empty: no "
                f"measured month after a full {config.memory}-month window of drivers; use "
                "drivers that start earlier, a shorter memory, or towers with longer records"
            )

    flat_x = train.drivers.reshape(-1, len(series.features))
    flat_y = train.fluxes.reshape(-1, len(series.targets))
    member = Member(
        net=build_net(
            config.architecture,
            n_features=len(series.features),
            n_targets=len(series.targets),
            memory=config.memory,
            **config.hyperparameters,
        ),
        card=MemberCard(
            training_sites=sorted(train.site_ids),
            validation_sites=sorted(valid.site_ids),
            held_out_sites=sorted(held_out),
            held_out_months=held_out_months or {},
            feature_mean=as_float_list(np.nanmean(flat_x, axis=0)),
            feature_std=as_float_list(feature_scale(flat_x)),
            target_mean=as_float_list(np.nanmean(flat_y, axis=0)),
            target_std=as_float_list(np.nanstd(flat_y, axis=0) + 1e-6),
        ),
    )
    x_train, x_valid = member.normalise(x_train), member.normalise(x_valid)
    y_train, y_valid = member.normalise_targets(y_train), member.normalise_targets(y_valid)
    if config.weight_by_uncertainty:
        w_train, w_valid = uncertainty_weights(sigma_train), uncertainty_weights(sigma_valid)
    else:
        w_train, w_valid = torch.ones_like(y_train), torch.ones_like(y_valid)
    train_set, valid_set = (x_train, y_train, w_train), (x_valid, y_valid, w_valid)
    if isinstance(member.net, BoostedTrees):
        try:
            kept = member.net.fit(train_set, valid_set, patience=config.patience, seed=seed)
        except ValueError as err:
            raise InvalidTowerDataError(
                f"tower(s) {', '.join(train.site_ids)}: {err}; leave that flux out of the targets"
            ) from None
        if status:
            status("trees kept: " + ", ".join(f"{series.targets[k]} {n}" for k, n in kept.items()))
        return member
    _descend(member, train_set, valid_set, config, seed, status)
    return member


def _descend(
    member: Member,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    config: TrainConfig,
    seed: int,
    status: Status | None,
) -> None:
    """Train a member's net by minibatch gradient descent; keep its best validation epoch.

    ``train`` and ``valid`` are normalised windows, normalised fluxes and loss weights.
    """
    net = member.net
    (x_train, y_train, w_train), (x_valid, y_valid, w_valid) = train, valid
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    shuffler = torch.Generator().manual_seed(seed)
    best_loss, best_state, stale = float("inf"), None, 0
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=shuffler)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = _loss(net(x_train[batch]), y_train[batch], w_train[batch], member, config)
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            valid_loss = float(_loss(net(x_valid), y_valid, w_valid, member, config))
        if valid_loss < best_loss - 1e-5:
            best_loss, stale = valid_loss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        if status:
            status(f"epoch {epoch + 1}: validation loss {valid_loss:.3f} (best {best_loss:.3f})")
        if stale >= config.patience:
            break
    net.load_state_dict(best_state)
    net.eval()


_YEAR = 12
"""Months apart that windows of one series must be to stand in for another tower's."""


def domain_reference(series: SiteSeries, config: TrainConfig) -> tuple[DomainCard, torch.Tensor]:
    """Build the reference windows and extrapolation threshold of the domain of applicability.

    The reference is every tower window ending on a measured month (at most
    ``config.reference_windows``, drawn with the seed), scaled by the towers' driver mean
    and standard deviation and flattened. The threshold is the 95th percentile, over the
    reference windows, of the RMS distance to the nearest window of another tower: how far
    apart towers are from each other. Towers that share one pixel (or a single tower, which a
    temporal split allows) have no other tower: their windows are compared with those of the
    same series at least a year apart instead, how far apart its years are.
    """
    flat = series.drivers.reshape(-1, len(series.features))
    mean, std = np.nanmean(flat, axis=0), feature_scale(flat)
    drivers = torch.from_numpy(((series.drivers - mean) / std).astype("float32"))
    views = window_views(drivers, config.memory)
    keep = torch.from_numpy(series.trainable(config.memory))
    pixel_of = {s: number for number, group in enumerate(series.pixel_groups()) for s in group}
    pixel = torch.tensor([pixel_of[s] for s in series.site_ids])
    origin = pixel[:, None].expand_as(keep)[keep]  # windows of one pixel are not "other towers"
    month = torch.arange(keep.shape[1]).expand_as(keep)[keep]
    windows = views[keep].reshape(int(keep.sum()), -1)
    if len(windows) > config.reference_windows:
        pick = np.random.default_rng(config.seed).choice(
            len(windows), config.reference_windows, replace=False
        )
        pick = torch.from_numpy(np.sort(pick))
        windows, origin, month = windows[pick], origin[pick], month[pick]
    distance = torch.cdist(windows, windows) / windows.shape[1] ** 0.5
    same = origin[:, None] == origin[None, :]
    if bool(same.all()):
        same &= (month[:, None] - month[None, :]).abs() < _YEAR
    distance[same] = float("inf")
    nearest = distance.amin(dim=1)
    threshold = float(torch.quantile(nearest[torch.isfinite(nearest)], DOMAIN_QUANTILE))
    card = DomainCard(
        feature_mean=as_float_list(mean),
        feature_std=as_float_list(std),
        threshold=threshold,
        reference_windows=len(windows),
    )
    return card, windows.contiguous()


def train_ensemble(
    series: SiteSeries,
    config: TrainConfig,
    *,
    name: str,
    ecosystem: str,
    data: dict[str, str] | None = None,
    executor: Executor | None = None,
    status: Status | None = None,
) -> EnsembleFit:
    """Cross-validate and keep the folds' nets as an ensemble, for one ecosystem.

    Parameters
    ----------
    series
        The ecosystem's towers: at least [`MIN_TOWERS`][upscale.learn.training.MIN_TOWERS] pixels
        with folds of towers, one with ``temporal``.
    config
        Training settings, including the cross-validation scheme.
    name, ecosystem
        Recorded in the card.
    data
        Input paths to record in the card.
    executor
        Runs each member's fit as a task (a ``concurrent.futures`` executor, or a
        ``distributed.Client`` to fit on a cluster); by default the members are fitted here,
        one after the other. Either way a fit has the torch threads of the ``threads`` option
        ([`carried`][upscale.learn.tasks.carried]), so the members are the same.
    status
        Called with a status line per member: before its fit here, once it is fitted with an
        executor.

    Returns
    -------
    EnsembleFit
        The model (card with decomposed cross-validated metrics), the held-out predictions
        and the folds.
    """
    folds = site_folds(series.pixel_groups(), config)
    if config.cv == "temporal":
        require_temporal_split(series, config)
        learn, scored = split_months(series, config.test_fraction)
        first_held = {
            site: f"{series.times[np.isfinite(scored.fluxes[s]).any(axis=-1)][0]:%Y-%m}"
            for s, site in enumerate(series.site_ids)
        }
        fits = [
            (
                "last months of each tower held out",
                learn,
                {"held_out_months": first_held, "seed": config.seed + number},
            )
            for number in range(config.folds)
        ]
    else:
        learn = scored = series
        fits = [
            (
                f"without {', '.join(held_out)}",
                series.subset([s for s in series.site_ids if s not in held_out]),
                {"held_out": held_out, "seed": config.seed + number},
            )
            for number, held_out in enumerate(folds)
        ]
    members = _fit_members(fits, config, executor=executor, status=status)
    # What the members learned from: not a temporal split's held-out months.
    domain, reference = domain_reference(learn, config)
    measured = series.times[np.isfinite(learn.fluxes).any(axis=(0, 2))]
    card = ModelCard(
        name=name,
        architecture=config.architecture,
        hyperparameters=resolve_hyperparameters(config.architecture, **config.hyperparameters),
        memory=config.memory,
        features=list(series.features),
        feature_sources=dict(zip(series.features, series.feature_sources, strict=True)),
        feature_units=dict(zip(series.features, series.feature_units, strict=True)),
        targets=list(series.targets),
        nee_mode=config.nee_mode,
        ecosystem=ecosystem,
        sites=list(series.site_ids),
        training_period=(f"{measured[0]:%Y-%m}", f"{measured[-1]:%Y-%m}"),
        members=[m.card for m in members],
        domain=domain,
        cv_scheme=cv_scheme(config, len(series.site_ids)),
        cv_metrics={},
        train_config=config.model_dump(mode="json"),
        data=data or {},
        versions=software_versions() | architecture_versions(config.architecture),
        created=utc_now(),
    )
    model = Model(members=members, card=card, reference=reference)
    predictions = np.full(series.fluxes.shape, np.nan, dtype="float32")
    drivers = torch.from_numpy(series.drivers)
    if config.cv == "temporal":  # every member is held out from the same months
        predictions[:, config.memory - 1 :] = model.predict_series(drivers)
        predictions[~held_out_months(series, config.test_fraction)] = np.nan
    else:
        for number, held_out in enumerate(folds):
            rows = [series.site_ids.index(s) for s in held_out]
            predictions[rows, config.memory - 1 :] = model.predict_members(
                drivers[rows], members=[number]
            )[0]
    observed = scored.fluxes
    metrics = {
        target: decomposed_skill(
            observed[..., k], predictions[..., k], series.times, series.uncertainty[..., k]
        )
        for k, target in enumerate(series.targets)
    }
    by_fold, by_tower = held_out_skill(series, observed, predictions, folds)
    model.card = card.model_copy(
        update={
            "cv_metrics": metrics,
            "cv_folds": by_fold,
            "cv_fold_sites": folds,
            "cv_towers": by_tower,
        }
    )
    return EnsembleFit(model=model, predictions=predictions, folds=folds, observed=observed)


def _fit_members(
    fits: list[tuple[str, SiteSeries, dict[str, Any]]],
    config: TrainConfig,
    *,
    executor: Executor | None,
    status: Status | None,
) -> list[Member]:
    """Fit one member per ``(label, towers, fit_member keywords)``, here or as tasks."""
    fit = carried(fit_member)
    if executor is None:
        members = []
        for number, (label, towers, keywords) in enumerate(fits, start=1):
            if status:
                status(f"member {number}/{len(fits)} ({label})")
            members.append(fit(towers, config, **keywords))
        return members
    futures = [executor.submit(fit, towers, config, **keywords) for _, towers, keywords in fits]
    members = []
    for number, ((label, _, _), future) in enumerate(zip(fits, futures, strict=True), start=1):
        members.append(future.result())
        if status:
            status(f"member {number}/{len(fits)} ({label}) fitted")
    return members


def held_out_skill(
    series: SiteSeries, observed: np.ndarray, predicted: np.ndarray, folds: list[list[str]]
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, dict[str, float]]]]:
    """Scores of held-out predictions per fold and per tower, with the noise ceiling.

    Parameters
    ----------
    series
        The towers (their uncertainty gives the noise ceiling).
    observed, predicted
        ``(S, T, K)`` the fluxes scored against and the held-out predictions.
    folds
        The towers of each fold, numbered from 1 in the result.

    Returns
    -------
    by_fold, by_tower
        Flux -> fold number (or tower) -> [`skill`][upscale.learn.metrics.skill] scores.
    """
    by_fold: dict[str, dict[str, dict[str, float]]] = {}
    by_tower: dict[str, dict[str, dict[str, float]]] = {}
    for k, flux in enumerate(series.targets):
        obs, pred, sigma = observed[..., k], predicted[..., k], series.uncertainty[..., k]
        by_fold[flux] = {}
        for number, towers in enumerate(folds, start=1):
            rows = [series.site_ids.index(s) for s in towers]
            by_fold[flux][str(number)] = skill(obs[rows], pred[rows], sigma[rows])
        by_tower[flux] = {
            site: skill(obs[s], pred[s], sigma[s]) for s, site in enumerate(series.site_ids)
        }
    return by_fold, by_tower


def memoryless_series(
    series: SiteSeries, config: TrainConfig, *, ecosystem: str, status: Status | None = None
) -> SiteSeries:
    """Replace the towers' fluxes with those of a model without memory: the null of memory.

    A cross-validated ensemble with L = 1 learns each flux from the current month's drivers
    alone; its predictions, on the months the towers measured, are a target with the towers'
    driver correlations and seasonality but no memory. A model of memory L trained on that
    target, and explained, shows how much attribution reaches past months without any memory
    in the target: through the correlation of seasonal drivers between lags, and noise.

    Parameters
    ----------
    series
        The towers of one ecosystem.
    config
        Settings of the model whose memory is tested; the teacher uses them with L = 1.
    ecosystem
        Recorded in the teacher's card.
    status
        Called with a status line per member.
    """
    teacher_config = TrainConfig(**(config.model_dump() | {"memory": 1}))
    teacher = train_ensemble(
        series, teacher_config, name="memoryless", ecosystem=ecosystem, status=status
    )
    fluxes = teacher.model.predict_series(torch.from_numpy(series.drivers)).numpy()
    fluxes = np.where(np.isfinite(series.fluxes), fluxes, np.nan).astype("float32")
    return replace(series, fluxes=fluxes)
