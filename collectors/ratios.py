"""Shares the models read as metrics of their own, computed from two collected rates wherever
metrics are read: the run table (``datasets``), the service's windows (``models.predictor``) and the agent's
compact pushes.

A CPU-bound thread slowed by CPU contention spends the time it loses waiting on a run queue, so the share of
its runnable time spent running, ``run / (run + wait)`` from ``/proc/<pid>/schedstat``, is its CPU-contention
slowdown as observed (1: never waited). Trees learn a ratio of two inputs poorly and only inside the range
they saw; given as a metric it transfers across programs. Nothing runnable at all (an idle target, or the
zeros of ``neighbour_mean`` for a run alone) reads as 1, so that every path gets the same value from the same
inputs. A missing input gives a missing share.

numpy only: the per-node agent imports this without the training stack.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Per-cgroup derived metric -> (running rate, waiting rate): share = running / (running + waiting).
SHARES: dict[str, tuple[str, str]] = {
    "tasks_run_share": ("tasks_run_seconds_per_second", "tasks_runqueue_wait_seconds_per_second"),
}


def run_share(running: np.ndarray, waiting: np.ndarray) -> np.ndarray:
    """Elementwise ``running / (running + waiting)``, 1 where nothing was runnable, NaN where an input is."""
    running, waiting = np.asarray(running, dtype=np.float64), np.asarray(waiting, dtype=np.float64)
    total = running + waiting
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, running / np.where(total > 0, total, 1.0), 1.0)
    return np.where(np.isnan(total), np.nan, np.clip(share, 0.0, 1.0))


def share_of(inputs: tuple[str, str], values: Mapping[str, float | None]) -> float | None:
    """One reading's share (a row of the agent's), None where an input is missing."""
    running, waiting = (values.get(name) for name in inputs)
    if running is None or waiting is None:
        return None
    return float(run_share(np.array(running), np.array(waiting)))


def with_shares(series: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``series`` (metric -> per-second values) plus every share whose inputs it holds (aligned on the last
    seconds of the shorter input)."""
    out = dict(series)
    for name, (running, waiting) in SHARES.items():
        if running in series and waiting in series:
            a, b = (
                np.asarray(series[running], dtype=np.float64),
                np.asarray(series[waiting], dtype=np.float64),
            )
            steps = min(len(a), len(b))
            out[name] = run_share(a[len(a) - steps :], b[len(b) - steps :])
    return out
