"""Per-metric summaries of a target's telemetry window: the placement inputs, computed by one function
wherever they are needed (training's run table, the service's windows, and the agent's compact pushes).

numpy only: the per-node agent imports this without the training stack.

The compact form (``pack`` / ``unpack``) carries a summary vector in about 2 bytes a value: each value as
float16 of ``sign(x) * log1p(|x|)``. Telemetry spans 1e-3 to 1e12 (shares, bytes per second), which plain
float16 cannot hold; on the log scale every magnitude up to 1e18 fits with a relative error under 0.1%,
far below the run-to-run noise of the metrics themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUMMARIES = ("mean", "std", "p90")
QUANTILE = 0.9
# The wire format of ``pack``; part of a feature schema's identity.
PACKING = "float16-signed-log1p-base64"


def summary_names(metrics: Sequence[str]) -> list[str]:
    """Feature names in summary order: metric-major (``m__mean, m__std, m__p90, n__mean, ...``)."""
    return [f"{m}__{s}" for m in metrics for s in SUMMARIES]


def summarise(window: np.ndarray) -> np.ndarray:
    """``window [T, M]`` of per-second values (NaN: missing) -> ``[M * 3]`` mean, std (ddof 0) and the 0.9
    quantile of each metric over its known values; NaN where a metric has none.

    The quantile is the nearest-rank one at index ``floor(0.9 * (n - 1) + 0.5)`` of the n known values, as
    Polars computes it, so that summaries made before this function existed are reproduced exactly.
    """
    values = np.asarray(window, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"window: expected [seconds, metrics], got shape {values.shape}")
    metrics = values.shape[1]
    known = ~np.isnan(values)
    counts = known.sum(axis=0)
    out = np.full((metrics, len(SUMMARIES)), np.nan)
    present = counts > 0
    if present.any():
        filled = np.where(known, values, 0.0)
        mean = filled.sum(axis=0)[present] / counts[present]
        deviation = np.where(known[:, present], values[:, present] - mean, 0.0)
        std = np.sqrt((deviation**2).sum(axis=0) / counts[present])
        ordered = np.sort(values[:, present], axis=0)  # NaN sorts last: the known values come first
        rank = np.floor(QUANTILE * (counts[present] - 1) + 0.5).astype(np.int64)
        quantile = ordered[rank, np.arange(ordered.shape[1])]
        out[present] = np.stack([mean, std, quantile], axis=1)
    return out.reshape(-1)


def schema_id(metrics: Sequence[str], window_seconds: int) -> str:
    """What a compact summary means, as a short content hash: same id, same features in the same order."""
    content = json.dumps([list(SUMMARIES), QUANTILE, PACKING, int(window_seconds), list(metrics)])
    return hashlib.sha256(content.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureSchema:
    """What one placement champion needs per target: these metrics' summaries over the last
    ``window_seconds`` seconds, packed by ``pack``, identified by ``schema_id``."""

    schema_id: str
    metrics: list[str]
    window_seconds: int

    @property
    def size(self) -> int:
        return len(self.metrics) * len(SUMMARIES)


def packed_chars(values: int) -> int:
    """Characters ``pack`` makes of this many values (2 bytes each, base64)."""
    return 4 * ((2 * values + 2) // 3)


def pack(summary: np.ndarray) -> str:
    values = np.asarray(summary, dtype=np.float64)
    squashed = np.sign(values) * np.log1p(np.abs(values))  # NaN stays NaN: missing on the other side
    return base64.b64encode(squashed.astype("<f2").tobytes()).decode("ascii")


def unpack(packed: str, size: int | None = None) -> np.ndarray:
    """The inverse of ``pack``; not base64, or not ``size`` values (when given), raises ValueError."""
    try:
        raw = base64.b64decode(packed, validate=True)
    except ValueError as error:
        raise ValueError(f"not base64: {error}") from error
    if len(raw) % 2 or (size is not None and len(raw) != 2 * size):
        raise ValueError(f"{len(raw) // 2} values packed; the feature schema has {size}")
    squashed = np.frombuffer(raw, dtype="<f2").astype(np.float64)
    return np.sign(squashed) * np.expm1(np.abs(squashed))
