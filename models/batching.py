"""Padding variable-length runs into the monitoring batch layout (shared by training and the predictor)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_steps(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``[T_i, F]`` -> ``x [B, T, F] float32`` (zero-padded at the end), ``mask [B, T] bool``."""
    longest = max((len(run) for run in runs), default=1) or 1
    width = runs[0].shape[1] if runs else 0
    x = np.zeros((len(runs), longest, width), dtype=np.float32)
    mask = np.zeros((len(runs), longest), dtype=bool)
    for i, run in enumerate(runs):
        x[i, : len(run)] = run
        mask[i, : len(run)] = True
    return x, mask


def pad_neighbours(neighbours: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour summaries ``[K_i, F_p]`` -> ``[B, K, F_p]`` and ``neighbour_mask [B, K]``."""
    most = max((len(n) for n in neighbours), default=0) or 1
    out = np.zeros((len(neighbours), most, width), dtype=np.float32)
    mask = np.zeros((len(neighbours), most), dtype=bool)
    for i, rows in enumerate(neighbours):
        out[i, : len(rows)] = rows
        mask[i, : len(rows)] = True
    return out, mask
