"""Transformer whose attention is masked to the last L months, lags counted from each query."""

from __future__ import annotations

import torch
from torch import nn

from upscale.learn.nets.streaming import StreamingNet, split_reach


class _BandLayer(nn.Module):
    """Encoder layer whose queries attend to the ``reach + 1`` months up to their own.

    Positions are lags behind the query (0 = the query's own month), not places in a window,
    so the layer is the same at every month of a series: each head has a learned bias per
    lag on its attention scores and a learned embedding per lag added to the values it mixes.
    The layer is valid (unpadded): the series comes out ``reach`` months shorter.

    Queries are taken in blocks of ``BLOCK`` months, each against the keys of its block and
    the ``reach`` months before it, with the band as an additive mask: a few dense products
    per block, where a (T x T) masked attention would cost T keys per query and a loop over
    lags a pass over memory per lag.

    There is no layer normalisation: it would scale each month's token to unit size, and the
    size of the drivers is what a regression of flux magnitudes needs (with pre-norm layers,
    cross-validated NSE was 0.02-0.03 lower on the generated ``salinity`` truth).
    """

    BLOCK = 16

    def __init__(self, width: int, heads: int, reach: int, feedforward: int, dropout: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide d_model ({width})")
        self.heads, self.reach = heads, reach
        self.query_key_value = nn.Linear(width, 3 * width)
        self.lag_bias = nn.Parameter(torch.zeros(heads, reach + 1))
        self.lag_value = nn.Parameter(0.02 * torch.randn(heads, reach + 1, width // heads))
        self.project = nn.Linear(width, width)
        self.feedforward = nn.Sequential(
            nn.Linear(width, feedforward),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(feedforward, width),
        )
        self.dropout = nn.Dropout(dropout)
        # Lag of key j behind query i of a block (keys start `reach` months before queries).
        lag = reach + torch.arange(self.BLOCK)[:, None] - torch.arange(self.BLOCK + reach)
        self.register_buffer("lag", lag, persistent=False)
        self.register_buffer("inside", (lag >= 0) & (lag <= reach), persistent=False)

    def forward(self, series: torch.Tensor) -> torch.Tensor:
        n, months, width = series.shape
        block, heads = self.BLOCK, self.heads
        kept = months - self.reach
        blocks = -(-kept // block)
        # Pad the end to whole blocks: a query never attends to a later month, so padding
        # changes nothing that is kept.
        padded = nn.functional.pad(series, (0, 0, 0, blocks * block - kept))
        query, key, value = self.query_key_value(padded).chunk(3, dim=-1)

        def heads_first(x: torch.Tensor, length: int) -> torch.Tensor:
            # (N, blocks, width, length) -> (N * blocks, heads, length, width / heads)
            x = x.reshape(n, blocks, heads, width // heads, length)
            return x.permute(0, 1, 2, 4, 3).reshape(n * blocks, heads, length, -1)

        span = block + self.reach
        lag = self.lag.clamp(0, self.reach)
        # A finite floor outside the band, not -inf: its weight still underflows to exactly 0,
        # and softmax needs no check for rows of -inf.
        band = self.lag_bias[:, lag].masked_fill(~self.inside, torch.finfo(series.dtype).min / 2)
        scores = torch.matmul(
            heads_first(query[:, self.reach :].unfold(1, block, block), block),
            heads_first(key.unfold(1, span, block), span).transpose(-1, -2),
        )
        weights = self.dropout((scores * (width // heads) ** -0.5 + band).softmax(dim=-1))
        mixed = torch.matmul(weights, heads_first(value.unfold(1, span, block), span))
        lag_values = self.lag_value[:, lag] * self.inside[..., None]  # (heads, block, span, d)
        mixed = mixed + torch.einsum("bhij,hijd->bhid", weights, lag_values)
        mixed = mixed.reshape(n, blocks, heads, block, -1).permute(0, 1, 3, 2, 4)
        mixed = mixed.reshape(n, blocks * block, width)[:, :kept]
        out = series[:, self.reach :] + self.dropout(self.project(mixed))
        return out + self.dropout(self.feedforward(out))


class CausalTransformerRegressor(StreamingNet):
    """Transformer whose attention reaches back L months in all; streams whole series.

    Each layer attends over a band of recent months; the bands' reaches add up to
    ``memory - 1``, so the fluxes of a month depend on exactly its last ``memory`` months,
    and over a whole series each layer computes each month once.

    Parameters
    ----------
    n_features
        Drivers per month (F).
    n_targets
        Fluxes predicted per month.
    memory
        Receptive field L in months.
    d_model
        Token width. Narrower than the windowed Transformer's: a streaming layer runs once
        per month, not L times, and its own elementwise work (softmax, activations) weighs
        more.
    heads
        Attention heads (must divide ``d_model``).
    layers
        Encoder layers; the memory is split between their bands as evenly as possible.
    feedforward
        Width of the feed-forward block.
    dropout
        Dropout inside the layers (training only).
    """

    def __init__(
        self,
        n_features: int,
        n_targets: int,
        memory: int,
        *,
        d_model: int = 32,
        heads: int = 2,
        layers: int = 2,
        feedforward: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.embed = nn.Linear(n_features, d_model)
        self.layers = nn.Sequential(
            *(
                _BandLayer(d_model, heads, reach, feedforward, dropout)
                for reach in split_reach(memory, layers)
            )
        )
        self.head = nn.Linear(d_model, n_targets)

    def forward_series(self, series: torch.Tensor) -> torch.Tensor:
        """Map series ``(N, T, F)`` to fluxes ``(N, T - L + 1, K)`` of every full window."""
        return self.head(self.layers(self.embed(series)))
