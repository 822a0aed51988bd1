"""Errors in percentage points of P, the paper's error bands, and per-application breakdowns (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BANDS = (5, 10, 15, 20, 25)  # pp; the last band is "> 25"
BAND_NAMES = [*(f"<{b}" for b in BANDS), f">{BANDS[-1]}"]


def errors_pp(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MAE and RMSE in pp, MSE in pp^2 (as Table IV), coverage of the 80 % interval if quantiles are given."""
    point = predicted if predicted.ndim == 1 else predicted[:, predicted.shape[1] // 2]
    error = (point - labels) * 100.0
    out = {
        "mae": float(np.mean(np.abs(error))) if len(error) else float("nan"),
        "mse": float(np.mean(error**2)) if len(error) else float("nan"),
    }
    out["rmse"] = float(np.sqrt(out["mse"]))
    if predicted.ndim == 2 and len(labels):
        inside = (labels >= predicted[:, 0]) & (labels <= predicted[:, -1])
        out["coverage"] = float(np.mean(inside))
    return out


def error_bands(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Share of runs per absolute-error band (<5, <10, ... pp, >25 pp); bands are disjoint and sum to 1."""
    point = predicted if predicted.ndim == 1 else predicted[:, predicted.shape[1] // 2]
    error = np.abs(point - labels) * 100.0
    edges = [0.0, *BANDS, np.inf]
    counts, _ = np.histogram(error, bins=edges)
    total = max(1, len(error))
    return {name: float(c / total) for name, c in zip(BAND_NAMES, counts, strict=True)}


def per_application(
    predicted: np.ndarray, labels: np.ndarray, applications: Sequence[str]
) -> dict[str, dict[str, float]]:
    apps = np.asarray(applications)
    return {
        str(app): {
            **errors_pp(predicted[apps == app], labels[apps == app]),
            "runs": float(np.sum(apps == app)),
        }
        for app in sorted(set(apps.tolist()))
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if not len(array):
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0
