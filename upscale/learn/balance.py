"""Carbon-balance consistency between the three fluxes: NEE = RE - GPP.

Three ways to get NEE from a model that has one output per flux:

* ``direct``: the NEE output as it is (trained on tower NEE like the others);
* ``derived``: NEE = RE - GPP from the other two outputs, in training and in prediction, so
  the maps balance exactly;
* ``penalty``: the NEE output, trained with an extra loss on NEE - (RE - GPP), so the maps
  balance nearly while NEE keeps its own, directly measured, target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from upscale.schema import TARGETS

NeeMode = Literal["direct", "derived", "penalty"]
NEE_MODES: tuple[str, ...] = ("direct", "derived", "penalty")


def _indices(targets: Sequence[str]) -> tuple[int, int, int]:
    gpp, re, nee = TARGETS
    missing = [t for t in TARGETS if t not in targets]
    if missing:
        raise ValueError(
            f"carbon balance needs the targets {', '.join(TARGETS)}; missing {missing}"
        )
    return targets.index(gpp), targets.index(re), targets.index(nee)


def derive_nee(fluxes: torch.Tensor, targets: Sequence[str]) -> torch.Tensor:
    """Replace NEE by RE - GPP in fluxes ``(..., K)`` (gC m-2 d-1); returns a new tensor."""
    gpp, re, nee = _indices(targets)
    out = fluxes.clone()
    out[..., nee] = fluxes[..., re] - fluxes[..., gpp]
    return out


def imbalance(fluxes: torch.Tensor, targets: Sequence[str]) -> torch.Tensor:
    """NEE - (RE - GPP) of fluxes ``(..., K)``, in their units."""
    gpp, re, nee = _indices(targets)
    return fluxes[..., nee] - (fluxes[..., re] - fluxes[..., gpp])
