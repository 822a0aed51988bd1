"""LSTM baseline (Table IV): the per-second features -> 2-layer LSTM, last real step -> quantile head."""

from __future__ import annotations

import torch
from cotenant.models.base import DataShape, ModelConfig, ModelSpec, QuantileHead, register
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class LstmConfig(ModelConfig):
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1


class LstmRegressor(nn.Module):
    def __init__(self, n_features: int, cfg: LstmConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            cfg.hidden,
            cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.head = QuantileHead(cfg.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, T, F], [B, T] -> [B, Q]
        lengths = mask.sum(1).clamp(min=1).cpu()  # [B]
        # Packing makes the padded tail invisible: the final state is the one after the last real step.
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)  # hidden [layers, B, H]
        return self.head(hidden[-1])


def build(cfg: LstmConfig, shape: DataShape) -> nn.Module:
    return LstmRegressor(shape.n_features, cfg)


register(ModelSpec("lstm", "monitoring", "neural", LstmConfig, build, "Table IV baseline"))
