"""Sequence-to-one networks that map L months of drivers to the fluxes of the last month.

The registry [`NETS`][upscale.learn.nets.NETS] is the one list of architectures: every architecture
lives in its own module and is registered here by name, so that a model card's
``architecture`` name and hyper-parameters are all that is needed to rebuild a net before its
weights are loaded, and the command line's choices, the shipped presets and a sweep's
default grid all follow the registry.

See Also
--------
upscale.learn.artifact : saving and loading trained nets with their cards.
upscale.learn.config.presets : the registered architectures with a shipped preset.

Notes
-----
The boosted trees ([`BoostedTrees`][upscale.learn.nets.trees.BoostedTrees]) are registered too:
an ``nn.Module`` over the same windows, grown by XGBoost instead of trained by gradient
([`is_tree_ensemble`][upscale.learn.nets.is_tree_ensemble]).

Adding an architecture is one module with an ``nn.Module`` whose constructor takes
``n_features, n_targets, memory`` and keyword-only hyper-parameters with defaults, one
[`register`][upscale.learn.nets.register] call, and optionally a preset
``upscale/presets/<name>.yaml``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from upscale.learn.nets.causal_transformer import CausalTransformerRegressor
from upscale.learn.nets.lstm import LSTMRegressor
from upscale.learn.nets.streaming import StreamingNet
from upscale.learn.nets.tcn import TCNRegressor
from upscale.learn.nets.transformer import TransformerRegressor
from upscale.learn.nets.trees import LIBRARY, BoostedTrees, installed, library_version

Constructor = TypeVar("Constructor", bound=Callable[..., nn.Module])

NETS: dict[str, Callable[..., nn.Module]] = {}
"""Architecture name -> constructor taking ``n_features, n_targets, memory, **hparams``.

Filled by [`register`][upscale.learn.nets.register]; read it, register into it."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def register(name: str, constructor: Constructor) -> Constructor:
    """Add an architecture to the registry under ``name``.

    Parameters
    ----------
    name
        Registry name: letters, digits, ``_``, ``.`` and ``-``, since it is also the preset's
        file name and an item of the comma-separated ``--architectures`` of ``upscale sweep``.
    constructor
        Called as ``constructor(n_features=F, n_targets=K, memory=L, **hparams)``; its
        keyword-only parameters, each with a default, are the hyper-parameters.

    Returns
    -------
    Callable
        ``constructor``, unchanged.

    Raises
    ------
    ValueError
        When the name is malformed or taken, or the constructor does not take the
        arguments above.

    Notes
    -----
    A sweep's worker processes get the registry of the process that starts them, so an
    architecture registered by a script is swept too, as long as its constructor can be
    pickled (defined at the top of an importable module).
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"architecture name {name!r}: use letters, digits, '_', '.' and '-' only")
    if name in NETS:
        raise ValueError(f"architecture {name!r} is already registered ({NETS[name]!r})")
    try:  # a keyword-only hyper-parameter without a default fails here too
        inspect.signature(constructor).bind(n_features=1, n_targets=1, memory=1)
    except TypeError as err:
        raise ValueError(
            f"architecture {name!r}: {err}; a constructor takes n_features, n_targets, memory "
            "and keyword-only hyper-parameters with defaults"
        ) from None
    NETS[name] = constructor
    return constructor


register("lstm", LSTMRegressor)
register("transformer", TransformerRegressor)
register("tcn", TCNRegressor)
register("causal_transformer", CausalTransformerRegressor)
register("xgboost", BoostedTrees)

DEFAULT_ARCHITECTURE = "lstm"
"""Architecture of a [`TrainConfig`][upscale.learn.training.TrainConfig] that names none."""


def check_architecture(name: str) -> str:
    """Return ``name`` if it is registered.

    Raises
    ------
    ValueError
        Naming the registered architectures, for an unknown name.
    """
    if name not in NETS:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(NETS)}")
    return name


def is_tree_ensemble(name: str) -> bool:
    """Whether a registered architecture is boosted trees, grown rather than trained by gradient.

    Such a model is saved as tree files, explained with exact tree SHAP, and cannot take the
    carbon-balance penalty of a loss (see [`BoostedTrees`][upscale.learn.nets.trees.BoostedTrees]).
    """
    constructor = NETS[check_architecture(name)]
    return isinstance(constructor, type) and issubclass(constructor, BoostedTrees)


def available(name: str) -> bool:
    """Whether a registered architecture's packages are installed (XGBoost for the trees).

    Defaults that mean "every architecture" (a sweep's grid, the bench) take the available
    ones and say which they leave out.
    """
    return installed() if is_tree_ensemble(name) else True


def architecture_versions(name: str) -> dict[str, str]:
    """Versions of the packages an architecture needs beyond torch, for model cards."""
    return {LIBRARY: library_version()} if is_tree_ensemble(name) else {}


def resolve_hyperparameters(architecture: str, **hparams: Any) -> dict[str, Any]:
    """Complete hyper-parameters with the architecture's defaults.

    Cards store the resolved set, so a model rebuilds the same net even if a default
    changes in a later version.

    Raises
    ------
    ValueError
        For an unknown architecture or hyper-parameter name.
    """
    constructor = NETS[check_architecture(architecture)]
    options = {
        name: parameter.default
        for name, parameter in inspect.signature(constructor).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(hparams) - set(options))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {', '.join(unknown)} for {architecture}; "
            f"it takes {', '.join(options)}"
        )
    return options | hparams


def build_net(
    architecture: str, *, n_features: int, n_targets: int, memory: int, **hparams: Any
) -> nn.Module:
    """Build an untrained network by registry name.

    Parameters
    ----------
    architecture
        A key of [`NETS`][upscale.learn.nets.NETS].
    n_features, n_targets
        Input drivers per month and output fluxes.
    memory
        Window length L in months.
    **hparams
        Architecture-specific hyper-parameters (e.g. ``hidden``, ``layers``, ``dropout``).

    Raises
    ------
    ValueError
        For an unknown architecture name.
    """
    hparams = resolve_hyperparameters(architecture, **hparams)
    return NETS[architecture](n_features=n_features, n_targets=n_targets, memory=memory, **hparams)


__all__ = [
    "DEFAULT_ARCHITECTURE",
    "NETS",
    "BoostedTrees",
    "CausalTransformerRegressor",
    "LSTMRegressor",
    "StreamingNet",
    "TCNRegressor",
    "TransformerRegressor",
    "architecture_versions",
    "available",
    "build_net",
    "check_architecture",
    "is_tree_ensemble",
    "register",
    "resolve_hyperparameters",
]
