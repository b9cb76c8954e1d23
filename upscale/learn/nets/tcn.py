"""Temporal convolutional network: dilated causal convolutions, a receptive field of L months."""

from __future__ import annotations

import torch
from torch import nn

from upscale.learn.nets.streaming import StreamingNet, dilations, shifted


class _CausalBlock(nn.Module):
    """Residual block of a kernel-2 causal convolution reaching ``reach`` months back.

    The convolution is a linear map of each month and the month ``reach`` before it, made
    channels-last as one matrix product; it is valid (unpadded), so the series comes out
    ``reach`` months shorter and no month ever sees padding.
    """

    def __init__(self, width: int, reach: int, dropout: float) -> None:
        super().__init__()
        self.reach = reach
        self.convolve = nn.Linear(2 * width if reach else width, width)
        self.mix = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, series: torch.Tensor) -> torch.Tensor:
        if self.reach:
            back, now = shifted(series, self.reach)
            taps = torch.cat([back, now], dim=-1)
        else:
            now = taps = series
        return now + self.dropout(self.mix(torch.relu(self.convolve(taps))))


class TCNRegressor(StreamingNet):
    """Causal temporal convolutional network over monthly drivers; streams whole series.

    Kernel-2 convolutions dilated 1, 2, 4, ... months, the last one taking what is left, so
    that the receptive field is exactly ``memory`` months: the study's memory length stays
    exact, and over a whole series each layer computes each month once.

    Parameters
    ----------
    n_features
        Drivers per month (F).
    n_targets
        Fluxes predicted per month.
    memory
        Receptive field L in months.
    hidden
        Channels of every layer.
    blocks
        Least number of residual blocks: a short memory is padded with pointwise blocks
        (a memory of 1 month is then a residual perceptron of the month's drivers).
    dropout
        Dropout inside the blocks (training only).
    """

    def __init__(
        self,
        n_features: int,
        n_targets: int,
        memory: int,
        *,
        hidden: int = 64,
        blocks: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.embed = nn.Linear(n_features, hidden)
        self.blocks = nn.Sequential(
            *(_CausalBlock(hidden, reach, dropout) for reach in dilations(memory, blocks))
        )
        self.head = nn.Linear(hidden, n_targets)

    def forward_series(self, series: torch.Tensor) -> torch.Tensor:
        """Map series ``(N, T, F)`` to fluxes ``(N, T - L + 1, K)`` of every full window."""
        return self.head(self.blocks(self.embed(series)))
