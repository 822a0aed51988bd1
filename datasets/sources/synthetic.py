"""A synthetic source with known ground truth, deterministic from a seed (tests and scale benchmarks).

Every application has a base level per metric; each second of a run is that level times a slow periodic load
pattern plus noise. The neighbour_mean columns are the mean of the neighbours' series (zeros with none). The
label is a known function of what the telemetry shows, so a model can learn it and generalise to unseen apps:

    demand   = mean over time of self__<metric 0>                       (how much the target needs the box)
    pressure = mean over time of neighbour_mean__<metrics 1..3> @ (w1, w2, w3)
    P        = 1 / (1 + demand * pressure) * exp(noise)                 clipped to (0, 1]

``ground_truth_label(telemetry)`` recomputes P without noise, which tests use.

Probes follow the same law, as the lab measures them: an aggressor on resource r at level l presses only
metric r (``PROBE_RESOURCES``: cpu, cache, membw are metrics 1..3; io none), so an application's sensitivity
is ``1 / (1 + demand * w_r * l)``; a workload's pressure on the victim of resource r (demand 1) is
``1 / (1 + base_r * w_r)``. Both carry the label's noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.sources.base import SOURCES, metric_groups_for
from cotenant.datasets.table import HOST, NEIGHBOUR_MEAN, SELF, RunTable, conform_runs

_GROUP_CYCLE = ("cpu", "memory", "cache_membw", "io", "network")
PRESSURE_WEIGHTS = np.array([0.35, 0.5, 0.25])
# Probe resource -> the metric (1..3, weighted by PRESSURE_WEIGHTS) its aggressor presses; None: no effect.
PROBE_RESOURCES = {"cpu": 1, "cache": 2, "membw": 3, "io": None}
PROBE_LEVELS = (1, 2)


@dataclass(frozen=True)
class SyntheticConfig:
    n_apps: int = 6
    n_runs: int = 120
    n_metrics: int = 12  # per-cgroup metrics (telemetry gets self__ and neighbour_mean__ of each)
    n_host_metrics: int = 4
    min_length: int = 30
    max_length: int = 60
    max_neighbours: int = 3
    profile_length: int = 30
    label_noise: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_metrics < 4:
            raise ValueError("synthetic: n_metrics must be >= 4 (the label uses metrics 0..3)")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError("synthetic: need 1 <= min_length <= max_length")
        if self.n_apps < 2:
            raise ValueError("synthetic: n_apps must be >= 2 (splits hold applications out)")


def metric_names(n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{_GROUP_CYCLE[i % len(_GROUP_CYCLE)]}_{i:03d}" for i in range(n)]


def ground_truth_label(self_demand: np.ndarray, neighbour_pressure: np.ndarray) -> np.ndarray:
    """P without noise from per-run means: ``self_demand [R]`` (metric 0), ``neighbour_pressure [R, 3]``."""
    return 1.0 / (1.0 + self_demand * (neighbour_pressure @ PRESSURE_WEIGHTS))


def _series(rng: np.random.Generator, base: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows for all runs stacked: base [R, M] repeated over each run's seconds, times a load pattern."""
    run_of_row = np.repeat(np.arange(len(lengths)), lengths)
    second = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    phase = rng.uniform(0, 2 * np.pi, size=len(lengths))[run_of_row]
    pattern = 1.0 + 0.2 * np.sin(second / 15.0 + phase)  # [N]
    noise = rng.normal(1.0, 0.03, size=(len(run_of_row), base.shape[1]))
    return base[run_of_row] * pattern[:, None] * noise  # [N, M]


def generate(config: SyntheticConfig) -> RunTable:
    rng = np.random.default_rng(config.seed)
    apps = [f"app{a:02d}" for a in range(config.n_apps)]
    metrics = metric_names(config.n_metrics)
    host_metrics = metric_names(config.n_host_metrics, prefix="host_")
    base = rng.lognormal(mean=-0.3, sigma=0.5, size=(config.n_apps, config.n_metrics))  # [A, M]

    run_app = rng.integers(0, config.n_apps, size=config.n_runs)
    n_neigh = rng.integers(0, config.max_neighbours + 1, size=config.n_runs)
    neighbour_apps = [rng.choice(config.n_apps, size=k, replace=True).tolist() for k in n_neigh]
    lengths = rng.integers(config.min_length, config.max_length + 1, size=config.n_runs)
    neighbour_base = np.stack(
        [base[ids].mean(axis=0) if ids else np.zeros(config.n_metrics) for ids in neighbour_apps]
    )  # [R, M]; zeros when alone, flagged by has_neighbours

    own = _series(rng, base[run_app], lengths)  # [N, M]
    others = _series(rng, neighbour_base, lengths)  # [N, M]
    host = (
        own[:, : config.n_host_metrics]
        + others[:, : config.n_host_metrics] * np.repeat(n_neigh, lengths)[:, None]
    )

    run_ids = [f"syn-{config.seed}-{r:05d}" for r in range(config.n_runs)]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    demand = np.add.reduceat(own[:, 0], offsets[:-1]) / lengths
    pressure = np.add.reduceat(others[:, 1:4], offsets[:-1], axis=0) / lengths[:, None]
    noise = np.exp(rng.normal(0.0, config.label_noise, size=config.n_runs))
    label = np.clip(ground_truth_label(demand, pressure) * noise, 1e-3, 1.0)
    solo = rng.uniform(500, 5000, size=config.n_apps)[run_app]

    columns: dict[str, Any] = {
        "run_id": np.repeat(np.array(run_ids), lengths),
        "second": (np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)).astype(np.int32),
    }
    columns |= {SELF + m: own[:, i] for i, m in enumerate(metrics)}
    columns |= {NEIGHBOUR_MEAN + m: others[:, i] for i, m in enumerate(metrics)}
    columns |= {HOST + h: host[:, i] for i, h in enumerate(host_metrics)}
    telemetry = pl.DataFrame(columns)

    start = datetime(2025, 1, 1, tzinfo=UTC)
    runs = pl.DataFrame(
        {
            "run_id": run_ids,
            "application": [apps[a] for a in run_app],
            "scenario": ["static" if r % 2 == 0 else "dynamic" for r in range(config.n_runs)],
            "load": [f"level-{1 + r % 3}" for r in range(config.n_runs)],
            "neighbours": [[apps[n] for n in ids] for ids in neighbour_apps],
            "n_neighbours": n_neigh,
            "has_neighbours": n_neigh > 0,
            "label": label,
            "performance": label * solo,
            "solo_performance": solo,
            "higher_is_better": [True] * config.n_runs,
            "source": ["synthetic"] * config.n_runs,
            "started_at": [start.timestamp() * 1000 + r * 600_000 for r in range(config.n_runs)],
            "target_profile": [apps[a] for a in run_app],
            "neighbour_profiles": [[apps[n] for n in ids] for ids in neighbour_apps],
        }
    ).with_columns(pl.col("started_at").cast(pl.Int64).cast(pl.Datetime("ms", "UTC")))

    profile_lengths = np.full(config.n_apps, config.profile_length)
    solo_series = _series(rng, base, profile_lengths)
    profiles = pl.DataFrame(
        {
            "profile_id": np.repeat(np.array(apps), config.profile_length),
            "second": np.tile(np.arange(config.profile_length, dtype=np.int32), config.n_apps),
        }
        | {m: solo_series[:, i] for i, m in enumerate(metrics)}
    )
    groups = metric_groups_for(metrics + host_metrics)
    meta = {"source": "synthetic", "config": config.__dict__, "noise_floor": float(config.label_noise)}
    extras = probe_frames(apps, base, rng, config.label_noise)
    table = RunTable(conform_runs(runs), telemetry, profiles, groups, meta, extras)
    return table.validate(origin="synthetic")


def probe_frames(
    apps: list[str], base: np.ndarray, rng: np.random.Generator, noise: float
) -> dict[str, pl.DataFrame]:
    """The sensitivity and pressure frames the lab would measure for these applications (module docstring)."""

    def noisy(p: np.ndarray) -> list[float]:
        return np.clip(p * np.exp(rng.normal(0.0, noise, size=p.shape)), 1e-3, 1.0).tolist()

    sensitivity: dict[str, Any] = {"application": apps}
    pressure: dict[str, Any] = {"config_key": apps}
    for resource, metric in PROBE_RESOURCES.items():
        weight = PRESSURE_WEIGHTS[metric - 1] if metric is not None else 0.0
        for level in PROBE_LEVELS:
            sensitivity[f"sens_{resource}_{level}"] = noisy(1.0 / (1.0 + base[:, 0] * weight * level))
        presses = base[:, metric] * weight if metric is not None else np.zeros(len(apps))
        pressure[f"press_{resource}"] = noisy(1.0 / (1.0 + presses))
    return {"sensitivity": pl.DataFrame(sensitivity), "pressure": pl.DataFrame(pressure)}


@SOURCES.register("synthetic")
def load_synthetic(path: Path | None = None, **options: Any) -> RunTable:
    if path is not None:
        raise ValueError("synthetic: takes options (n_runs=..., seed=...), not a path")
    return generate(SyntheticConfig(**options))
