"""Sequence-to-one networks that map L months of drivers to the fluxes of the last month.

Every architecture lives in its own module and registers a constructor here, so that a model
card's ``architecture`` name and hyper-parameters are all that is needed to rebuild a net
before its weights are loaded.

See Also
--------
upscale.artifact : saving and loading trained nets with their cards.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from torch import nn

from upscale.nets.lstm import LSTMRegressor
from upscale.nets.transformer import TransformerRegressor

ArchitectureName = Literal["lstm", "transformer"]
"""Names of the registered architectures."""

NETS: dict[str, Callable[..., nn.Module]] = {
    "lstm": LSTMRegressor,
    "transformer": TransformerRegressor,
}
"""Architecture name -> constructor taking ``n_features, n_targets, memory, **hparams``."""


def resolve_hyperparameters(architecture: str, **hparams: Any) -> dict[str, Any]:
    """Complete hyper-parameters with the architecture's defaults.

    Cards store the resolved set, so a model rebuilds the same net even if a default
    changes in a later version.

    Raises
    ------
    ValueError
        For an unknown architecture or hyper-parameter name.
    """
    try:
        constructor = NETS[architecture]
    except KeyError:
        raise ValueError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(NETS)}"
        ) from None
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
        A key of [`NETS`][upscale.nets.NETS].
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
    "NETS",
    "ArchitectureName",
    "resolve_hyperparameters",
    "LSTMRegressor",
    "TransformerRegressor",
    "build_net",
]
