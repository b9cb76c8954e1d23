"""Exact tree SHAP of boosted-trees models, over the features and lags of a window.

The nets are explained with expected gradients
([`upscale.learn.attribution`][upscale.learn.attribution]), an estimate; trees have an exact
answer. ``shap.TreeExplainer`` with a background (interventional tree SHAP, Lundberg et al.
2020) gives each input of a window the Shapley value of the trees' output against the
background windows, so the attributions of a window add up to f(x) - E_b f(b) exactly, the
quantity the nets' expected gradients estimate: the two families' importance and memory tables
mean the same thing.

Each member has one tree ensemble per flux over normalised inputs and targets; a flux's
attributions are its trees' times the member's target scale. SHAP values are linear in the
model, so the ensemble mean's are the mean of the members', and derived NEE (RE - GPP) has
RE's minus GPP's.
"""

from __future__ import annotations

import numpy as np
import shap
import torch

from upscale.learn.artifact import Member, Model
from upscale.learn.balance import derive_nee
from upscale.learn.nets import BoostedTrees


def member_tree_shap(
    member: Member, windows: torch.Tensor, background: torch.Tensor
) -> torch.Tensor:
    """Exact SHAP values of one member's fluxes (its own outputs, no carbon balance).

    Parameters
    ----------
    member
        A member whose net is [`BoostedTrees`][upscale.learn.nets.trees.BoostedTrees].
    windows, background
        ``(N, L, F)`` windows to explain and ``(M, L, F)`` background windows, raw drivers.

    Returns
    -------
    torch.Tensor
        ``(K, N, L, F)`` attributions in gC m-2 d-1, on the device of ``windows``; for each
        window and flux they add up to the member's flux minus its mean over the background.
    """
    net = member.net
    if not isinstance(net, BoostedTrees):
        raise TypeError(f"tree SHAP explains boosted trees, not {type(net).__name__}")
    inputs = net.flatten(member.normalise(windows.cpu()))
    reference = net.flatten(member.normalise(background.cpu()))
    scale = member.card.target_std
    values = np.stack(
        [
            shap.TreeExplainer(
                booster, data=reference, feature_perturbation="interventional"
            ).shap_values(inputs, check_additivity=False)
            * scale[k]
            for k, booster in enumerate(net.boosters)
        ]
    )  # (K, N, L * F), lags then features as the trees see them
    shape = (len(values), len(windows), net.memory, net.n_features)
    return torch.from_numpy(values.reshape(shape).astype("float32")).to(windows.device)


def tree_shap(
    model: Model,
    windows: torch.Tensor,
    background: torch.Tensor,
    *,
    member: int | None = None,
) -> torch.Tensor:
    """Exact SHAP values ``(K, N, L, F)`` of a boosted-trees model's fluxes, gC m-2 d-1.

    Parameters
    ----------
    model
        A boosted-trees ensemble.
    windows, background
        ``(N, L, F)`` windows to explain and ``(M, L, F)`` background windows, raw drivers.
    member
        Explain this member's own fluxes
        ([`Member.fluxes`][upscale.learn.artifact.Member.fluxes]); by default the ensemble
        mean with the card's NEE mode
        ([`Model.ensemble_fluxes`][upscale.learn.artifact.Model.ensemble_fluxes]).
    """
    if member is not None:
        return member_tree_shap(model.members[member], windows, background)
    values = torch.stack([member_tree_shap(m, windows, background) for m in model.members]).mean(
        dim=0
    )
    if model.card.nee_mode == "derived":  # linear: NEE's attributions are RE's minus GPP's
        values = derive_nee(values.movedim(0, -1), model.card.targets).movedim(-1, 0)
    return values
