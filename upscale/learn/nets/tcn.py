"""Temporal convolutional network: dilated causal convolutions, a receptive field of L months.

The series of a batch are laid end to end as the rows of one ``(N * T, C)`` matrix. A causal
layer of reach r then reads rows ``i - r`` and ``i``: two contiguous slices, so each layer is
plain matrix products on memory as it lies, without the copies that shifted 3-D views cost
(a quarter of the net's time at L = 12). A row whose receptive field would reach into the
series before it is one of the first L - 1 months of its own series, which no full window
ends on: those rows are dropped at the end.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from upscale.learn.nets.streaming import StreamingNet, dilations


class _CausalBlock(nn.Module):
    """Residual block of a kernel-2 causal convolution reaching ``reach`` months back.

    The convolution is a linear map of each month and the month ``reach`` before it: two
    matrix products over rows laid end to end (see the module), accumulated in place. It is
    valid (unpadded): the rows come out ``reach`` shorter and no month ever sees padding.
    """

    def __init__(self, width: int, reach: int, dropout: float) -> None:
        super().__init__()
        self.reach = reach
        self.convolve = nn.Linear(2 * width if reach else width, width)
        self.mix = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Map rows ``(R, C)`` of months laid end to end to rows ``(R - reach, C)``."""
        if self.reach:
            width = rows.shape[1]
            back, now = rows[: len(rows) - self.reach], rows[self.reach :]
            # The weight's columns take [month reach back, month], as a concatenation would.
            weight = self.convolve.weight
            hidden = torch.addmm(self.convolve.bias, back, weight[:, :width].t())
            hidden = hidden.addmm_(now, weight[:, width:].t())
        else:
            now, hidden = rows, self.convolve(rows)
        return now + self.dropout(self.mix(hidden.relu_()))


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
        n_series, months, _ = series.shape
        rows = self.head(self.blocks(self.embed(series.reshape(n_series * months, -1))))
        # Row j is month j + L - 1 of the rows laid end to end: padded back to N * T rows,
        # series n's full windows are its first T - L + 1 rows.
        rows = functional.pad(rows, (0, 0, 0, self.memory - 1))
        return rows.reshape(n_series, months, -1)[:, : months - self.memory + 1]
