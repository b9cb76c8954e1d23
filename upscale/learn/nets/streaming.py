"""Streaming nets: a memory of L months as a receptive field, so that each month is computed once.

A windowed net (the LSTM, the Transformer) computes every month of a pixel once for each of
the L windows that hold it. A streaming net maps a whole series to the fluxes of every month
that has L months behind it, in one pass whose layers share the work of overlapping windows;
its output at month t depends on months t - L + 1 .. t only, exactly as a window's. Applied to
one window of L months it gives that window's fluxes, so it trains, is cross-validated and is
explained on windows like any other net, while ``predict`` runs it over whole series.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class StreamingNet(nn.Module, ABC):
    """A net whose memory is a receptive field of ``memory`` months, applied to whole series.

    Subclasses implement ``forward_series`` with valid (unpadded) causal operations whose
    reaches add up to ``memory - 1`` months; ``forward`` applies it to windows.
    """

    memory: int

    @abstractmethod
    def forward_series(self, series: torch.Tensor) -> torch.Tensor:
        """Map series ``(N, T, F)`` to fluxes ``(N, T - L + 1, K)`` of every full window.

        Entry ``t`` is the fluxes of the window ending at month ``t + L - 1``.
        """

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Map windows ``(N, L, F)`` to fluxes ``(N, K)`` of each window's last month."""
        if windows.shape[1] != self.memory:
            raise ValueError(f"expected windows of {self.memory} months, got {windows.shape[1]}")
        return self.forward_series(windows)[:, -1]


def split_reach(memory: int, parts: int) -> list[int]:
    """Split the ``memory - 1`` months a receptive field reaches back into ``parts`` layers.

    As evenly as possible, longest first: the layers' reaches add up to ``memory - 1``, so
    the receptive field is exactly ``memory`` months.
    """
    whole, extra = divmod(memory - 1, parts)
    return [whole + (i < extra) for i in range(parts)]


def dilations(memory: int, least: int) -> list[int]:
    """Reaches of kernel-2 dilated layers (1, 2, 4, ...) adding up to ``memory - 1`` months.

    Doubling reaches cover long memories in few layers; the last layer takes what is left,
    so the receptive field is exactly ``memory``. Layers of reach 0 (pointwise) are added up
    to ``least`` layers, so a short memory keeps the net's depth.
    """
    reaches, total, step = [], 0, 1
    while total + step <= memory - 1:
        reaches.append(step)
        total, step = total + step, 2 * step
    if total < memory - 1:
        reaches.append(memory - 1 - total)
    return reaches + [0] * max(0, least - len(reaches))
