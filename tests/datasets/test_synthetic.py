"""The synthetic source is deterministic from its seed and its label is the documented function."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.sources.synthetic import SyntheticConfig, generate, ground_truth_label


def test_same_seed_same_table_other_seed_differs() -> None:
    a = generate(SyntheticConfig(n_runs=20, seed=5))
    b = generate(SyntheticConfig(n_runs=20, seed=5))
    c = generate(SyntheticConfig(n_runs=20, seed=6))
    assert a.runs.equals(b.runs) and a.telemetry.equals(b.telemetry) and a.profiles.equals(b.profiles)
    assert not a.telemetry.equals(c.telemetry)


def test_label_follows_ground_truth_from_telemetry() -> None:
    table = load_source("synthetic", n_runs=60, label_noise=0.0, seed=2)
    per_run = table.telemetry.group_by("run_id").agg(
        pl.col("self__cpu_000").mean().alias("demand"),
        *[pl.col(c).mean() for c in table.neighbour_columns[1:4]],
    )
    joined = table.runs.join(per_run, on="run_id")
    expected = ground_truth_label(
        joined["demand"].to_numpy(), joined.select(table.neighbour_columns[1:4]).to_numpy()
    )
    np.testing.assert_allclose(joined["label"].to_numpy(), np.clip(expected, 1e-3, 1), rtol=1e-9)
    alone = joined.filter(~pl.col("has_neighbours"))
    assert alone.height > 0 and (alone["label"] == 1.0).all()
    assert joined["label"].min() < 0.8  # neighbours really slow targets down  # type: ignore[operator]


def test_sizes_follow_config() -> None:
    table = load_source(
        "synthetic", n_runs=7, n_apps=3, n_metrics=5, n_host_metrics=2, min_length=4, max_length=9
    )
    assert table.runs.height == 7 and table.runs["application"].n_unique() <= 3
    assert len(table.self_columns) == 5 and len(table.host_columns) == 2
    lengths = table.telemetry.group_by("run_id").len()["len"]
    assert lengths.min() >= 4 and lengths.max() <= 9
    with pytest.raises(ValueError, match="n_metrics must be >= 4"):
        SyntheticConfig(n_metrics=3)
