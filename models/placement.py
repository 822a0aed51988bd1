"""Placement model: P for a newcomer and for every incumbent, shaped for scheduler latency.

A profile encoder maps a workload's solo-profile summary to an embedding once per workload. A host
is the sum of its incumbents' embeddings (DeepSets), computed ahead of time; incumbent j's view after
placing newcomer n is ``host_sum - e_j + e_n``, so every P after a placement costs one tiny head evaluation.
The head sees ``[e_self, sum of the others' embeddings, number of others]``.
"""

from __future__ import annotations

import numpy as np
import torch
from cotenant.models.base import DataShape, ModelConfig, ModelSpec, QuantileHead, register
from cotenant.models.host_batch import COUNT_SCALE, head_first_layer, head_output
from torch import nn


class PlacementConfig(ModelConfig):
    encoder_width: int = 64
    embedding: int = 16
    head_width: int = 32
    dropout: float = 0.1
    # Drops whole input features while training, against memorising the few training applications' profiles;
    # on `bundled` it did not move the leave-applications-out MAE beyond seed noise, so it is off by default.
    input_dropout: float = 0.0


class PlacementModel(nn.Module):
    def __init__(self, n_profile_features: int, cfg: PlacementConfig) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Dropout(cfg.input_dropout),
            nn.Linear(n_profile_features, cfg.encoder_width),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.encoder_width, cfg.embedding),
        )
        self.hidden = nn.Linear(2 * cfg.embedding + 1, cfg.head_width)
        self.out = QuantileHead(cfg.head_width)

    def encode(self, profiles: torch.Tensor) -> torch.Tensor:  # [..., F_p] -> [..., E]
        return self.encoder(profiles)

    def head(self, own: torch.Tensor, others: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """own [N, E], others [N, E] (sum), count [N] -> quantiles [N, Q]."""
        joined = torch.cat([own, others, count[:, None] / COUNT_SCALE], dim=-1)
        return self.out(torch.relu(self.hidden(joined)))

    def forward(
        self, newcomer: torch.Tensor, neighbours: torch.Tensor, neighbour_mask: torch.Tensor
    ) -> torch.Tensor:  # [B, F_p], [B, K, F_p], [B, K] -> [B, Q]
        own = self.encode(newcomer)  # [B, E]
        others = (self.encode(neighbours) * neighbour_mask[..., None].to(own.dtype)).sum(1)  # [B, E]
        return self.head(own, others, neighbour_mask.sum(1).to(own.dtype))


def placement_features(own: np.ndarray, others: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The head's input ``[own, sum of the others, count / COUNT_SCALE]`` -> ``[N, 2E + 1]``."""
    return np.concatenate([own, others, count[:, None] / COUNT_SCALE], axis=-1)


def batch_placement_features(newcomer: np.ndarray, neighbours: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The task's batch layout (``[B, F]``, ``[B, K, F]``, ``[B, K]``) as head inputs ``[B, 2F + 1]``."""
    return placement_features(newcomer, (neighbours * mask[..., None]).sum(1), mask.sum(1))


def numpy_head(
    weights: dict[str, np.ndarray], own: np.ndarray, others: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """The head in plain numpy for scheduler-time scoring (no torch dispatch per call): -> [N, Q]."""
    return head_output(weights, head_first_layer(weights, placement_features(own, others, count)))


def build(cfg: PlacementConfig, shape: DataShape) -> nn.Module:
    return PlacementModel(shape.n_profile_features, cfg)


register(ModelSpec("placement", "placement", "neural", PlacementConfig, build, "pre-placement P for all"))
