"""LSTM regressor: the study's best architecture at a memory of about 6 months."""

from __future__ import annotations

import torch
from torch import nn


class LSTMRegressor(nn.Module):
    """Stacked LSTM over a window of monthly drivers; a linear head reads the last state.

    Parameters
    ----------
    n_features
        Drivers per month (F).
    n_targets
        Fluxes predicted for the window's last month.
    memory
        Window length L; the LSTM accepts any length, L is recorded for the card.
    hidden
        Hidden units per layer.
    layers
        Stacked LSTM layers.
    dropout
        Dropout between stacked layers (training only).
    """

    def __init__(
        self,
        n_features: int,
        n_targets: int,
        memory: int,
        *,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden, n_targets)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Map windows ``(N, L, F)`` to fluxes ``(N, n_targets)`` of the last month."""
        states, _ = self.lstm(windows)
        return self.head(states[:, -1])
