"""Gradient-boosted trees over lagged drivers: the baseline a sequence model must beat.

The upscaling products users compare against are tree ensembles (FLUXCOM-X uses XGBoost).
[`BoostedTrees`][upscale.learn.nets.trees.BoostedTrees] sees the same windows as the sequence
models, flattened to lags x features (``L * F`` inputs, the oldest month first), and fits one
XGBoost regressor per flux, so a flux that a tower did not measure in some month still
trains on the months it did. It stands in the registry as a net does: it maps windows
``(N, L, F)`` to fluxes ``(N, K)``, trains in the same folds, on the same normalised targets,
and stops early on the same validation towers. Its trees are saved in XGBoost's own UBJSON
format ([`upscale.learn.artifact`][upscale.learn.artifact]), never pickled.

XGBoost is an optional extra (``pip install 'upscale[trees]'``), imported where it is used.
"""

from __future__ import annotations

from importlib.metadata import version
from importlib.util import find_spec
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from upscale.errors import InvalidConfigError
from upscale.options import OPTIONS

LIBRARY = "xgboost"
"""The package that fits and runs the trees, installed by the ``trees`` extra."""


def xgboost() -> ModuleType:
    """Import XGBoost, or say which extra installs it.

    Raises
    ------
    InvalidConfigError
        When XGBoost is not installed.
    """
    try:
        import xgboost as xgb
    except ImportError:
        raise InvalidConfigError(
            "the boosted-trees architecture needs XGBoost, which is not installed: "
            "pip install 'upscale[trees]'"
        ) from None
    return xgb


def installed() -> bool:
    """Whether XGBoost is installed (the ``trees`` extra), without importing it."""
    return find_spec(LIBRARY) is not None


def library_version() -> str:
    """Version of the installed XGBoost, for model cards."""
    return version(LIBRARY)


class BoostedTrees(nn.Module):
    """One gradient-boosted tree ensemble per flux over a window's lags x features.

    Parameters
    ----------
    n_features
        Drivers per month (F).
    n_targets
        Fluxes predicted for the window's last month (K): one tree ensemble each.
    memory
        Window length L: the trees see ``L * F`` inputs.
    trees
        Most boosting rounds per flux; early stopping on the validation towers keeps fewer.
    depth
        Depth of each tree.
    shrinkage
        Learning rate of the boosting (XGBoost's ``eta``).
    subsample
        Share of the training windows drawn for each tree.
    colsample
        Share of the inputs (lags x features) drawn for each tree.
    min_child_weight
        Least summed weight (windows, for squared error) in a leaf.
    l2
        L2 penalty on the leaf values (XGBoost's ``lambda``).

    Notes
    -----
    Trees are not trained by gradient descent through the module:
    [`fit`][upscale.learn.nets.trees.BoostedTrees.fit] grows them, so the carbon-balance
    penalty of the nets' loss does not apply (``nee_mode`` ``direct`` or ``derived``). The
    module has no parameters; before it is fitted or its trees are loaded it refuses to
    predict. XGBoost runs with the
    ``threads`` option's threads ([`set_options`][upscale.options.set_options]), the torch
    threads of a net beside it, and a fixed seed: the same data give the same trees.
    """

    def __init__(
        self,
        n_features: int,
        n_targets: int,
        memory: int,
        *,
        trees: int = 500,
        depth: int = 6,
        shrinkage: float = 0.05,
        subsample: float = 0.8,
        colsample: float = 0.8,
        min_child_weight: float = 1.0,
        l2: float = 1.0,
    ) -> None:
        super().__init__()
        if trees < 1 or depth < 1:
            raise ValueError(f"trees ({trees}) and depth ({depth}) must be at least 1")
        if not (0 < subsample <= 1 and 0 < colsample <= 1 and shrinkage > 0):
            raise ValueError("subsample and colsample must be in (0, 1], shrinkage above 0")
        self.n_features, self.n_targets, self.memory = n_features, n_targets, memory
        self.rounds = trees
        self.params: dict[str, Any] = {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "max_depth": depth,
            "eta": shrinkage,
            "subsample": subsample,
            "colsample_bytree": colsample,
            "min_child_weight": min_child_weight,
            "lambda": l2,
        }
        self.boosters: list[Any] = []

    @property
    def fitted(self) -> bool:
        """Whether every flux has its trees."""
        return len(self.boosters) == self.n_targets

    @property
    def kept(self) -> list[int]:
        """Trees of each flux (boosting rounds), in flux order."""
        return [booster.num_boosted_rounds() for booster in self.boosters]

    def flatten(self, windows: torch.Tensor) -> np.ndarray:
        """Windows ``(N, L, F)`` as the trees' inputs ``(N, L * F)`` (oldest month first)."""
        if windows.shape[1:] != (self.memory, self.n_features):
            raise ValueError(
                f"expected windows of {self.memory} months x {self.n_features} features, got "
                f"{tuple(windows.shape[1:])}"
            )
        return windows.detach().reshape(len(windows), -1).cpu().numpy()

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Map normalised windows ``(N, L, F)`` to normalised fluxes ``(N, K)``.

        Raises
        ------
        RuntimeError
            When the trees are neither fitted nor loaded.
        """
        if not self.fitted:
            raise RuntimeError("the boosted trees are not fitted: fit them or load a model")
        flat = self.flatten(windows)
        out = np.stack([booster.inplace_predict(flat) for booster in self.boosters], axis=1)
        return torch.from_numpy(out.astype("float32", copy=False)).to(windows.device)

    def fit(
        self,
        train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        valid: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        *,
        patience: int,
        seed: int,
    ) -> dict[int, int]:
        """Grow each flux's trees, stopping when the validation windows stop improving.

        Parameters
        ----------
        train, valid
            Normalised windows ``(N, L, F)``, normalised fluxes ``(N, K)`` (NaN where a
            tower did not measure) and loss weights ``(N, K)``: what the member learns
            from and what it stops early on.
        patience
            Rounds without a lower validation error before a flux stops; the trees of its
            best round are kept.
        seed
            Seed of the row and column draws.

        Returns
        -------
        dict
            Flux index -> trees kept.

        Raises
        ------
        ValueError
            When a flux has no measured training window.
        """
        xgb = xgboost()
        params = self.params | {"seed": seed, "nthread": OPTIONS["threads"]}
        (x_train, y_train, w_train), (x_valid, y_valid, w_valid) = train, valid
        flat_train, flat_valid = self.flatten(x_train), self.flatten(x_valid)
        self.boosters, kept = [], {}
        for k in range(self.n_targets):
            rows = np.isfinite(y_train[:, k].numpy())
            if not rows.any():
                raise ValueError(f"flux {k} has no measured training window to grow trees on")
            learn = xgb.DMatrix(
                flat_train[rows], label=y_train[rows, k].numpy(), weight=w_train[rows, k].numpy()
            )
            check = np.isfinite(y_valid[:, k].numpy())
            evals = []
            if check.any():  # with no measured validation month, all rounds are kept
                evals = [
                    (
                        xgb.DMatrix(
                            flat_valid[check],
                            label=y_valid[check, k].numpy(),
                            weight=w_valid[check, k].numpy(),
                        ),
                        "validation",
                    )
                ]
            booster = xgb.train(
                params,
                learn,
                num_boost_round=self.rounds,
                evals=evals,
                early_stopping_rounds=patience if evals else None,
                verbose_eval=False,
            )
            if evals:
                booster = booster[: booster.best_iteration + 1]
            booster.set_param({"nthread": OPTIONS["threads"]})
            self.boosters.append(booster)
            kept[k] = booster.num_boosted_rounds()
        return kept

    def to_ubjson(self) -> list[bytes]:
        """Each flux's trees in XGBoost's UBJSON model format, in flux order."""
        return [bytes(booster.save_raw(raw_format="ubj")) for booster in self.boosters]

    def load_ubjson(self, models: list[bytes]) -> None:
        """Load each flux's trees from XGBoost's JSON or UBJSON model format.

        XGBoost parses the bytes itself; nothing is unpickled. Callers check what the bytes
        are ([`load_model`][upscale.learn.artifact.load_model]) before handing them here.

        Raises
        ------
        ValueError
            When the number of models is not the number of fluxes, or XGBoost cannot parse
            one (its message is given).
        """
        xgb = xgboost()
        if len(models) != self.n_targets:
            raise ValueError(f"{len(models)} tree models for {self.n_targets} fluxes")
        boosters = []
        for raw in models:
            booster = xgb.Booster()
            try:
                booster.load_model(bytearray(raw))
            except xgb.core.XGBoostError as err:
                raise ValueError(str(err).splitlines()[0]) from None
            if booster.num_features() != self.memory * self.n_features:
                raise ValueError(
                    f"trees of {booster.num_features()} inputs, the card gives "
                    f"{self.memory} months x {self.n_features} features"
                )
            booster.set_param({"nthread": OPTIONS["threads"]})
            boosters.append(booster)
        self.boosters = boosters
