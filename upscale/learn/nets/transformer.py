"""Transformer encoder regressor over a window of monthly drivers."""

from __future__ import annotations

import torch
from torch import nn


class TransformerRegressor(nn.Module):
    """Transformer encoder with learned positions; the last month's token feeds the head.

    Parameters
    ----------
    n_features
        Drivers per month (F).
    n_targets
        Fluxes predicted for the window's last month.
    memory
        Window length L: one learned position embedding per month back.
    d_model
        Token width.
    heads
        Attention heads (must divide ``d_model``).
    layers
        Encoder layers.
    feedforward
        Width of the feed-forward block. PyTorch's default (2048) is 5x slower at this size
        for no gain (NOTES.md), hence 128.
    dropout
        Dropout inside the encoder (training only).
    """

    def __init__(
        self,
        n_features: int,
        n_targets: int,
        memory: int,
        *,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        feedforward: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.embed = nn.Linear(n_features, d_model)
        self.position = nn.Parameter(torch.zeros(memory, d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=feedforward,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_targets)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Map windows ``(N, L, F)`` to fluxes ``(N, n_targets)`` of the last month."""
        if windows.shape[1] != self.memory:
            raise ValueError(f"expected windows of {self.memory} months, got {windows.shape[1]}")
        tokens = self.embed(windows) + self.position
        return self.head(self.encoder(tokens)[:, -1])
