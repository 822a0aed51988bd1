"""Padding and masks for both tasks, in the batch layouts of the architecture contract."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import FeatureStats, leave_applications_out
from cotenant.datasets.tensors import monitoring_features, padded
from cotenant.datasets.torch_data import (
    build_monitoring,
    build_placement,
    collate_monitoring,
    collate_placement,
)
from torch.utils.data import DataLoader


@pytest.fixture(scope="module")
def table() -> RunTable:
    return load_source("synthetic", n_apps=5, n_runs=40, min_length=5, max_length=15, n_metrics=6, seed=9)


def test_monitoring_batch_pads_and_masks(table: RunTable) -> None:
    split = leave_applications_out(table, seed=1)
    data = build_monitoring(table, split)
    batch = next(iter(DataLoader(data.train, batch_size=8, collate_fn=collate_monitoring)))
    lengths = table.telemetry.group_by("run_id").len()
    expected = dict(lengths.iter_rows())
    ids = split.train_runs[:8]
    assert batch["lengths"].tolist() == [expected[r] for r in ids]
    steps = max(expected[r] for r in ids)
    features = len(monitoring_features(table))
    assert batch["x"].shape == (8, steps, features) and batch["x"].dtype == torch.float32
    assert (
        batch["mask"].dtype == torch.bool and batch["mask"].sum(dim=1).tolist() == batch["lengths"].tolist()
    )
    assert (batch["x"][~batch["mask"]] == 0).all()
    # the real steps are the run's telemetry normalised with the training statistics
    first = table.telemetry.filter(pl.col("run_id") == ids[0]).sort("second").select(data.stats.names)
    np.testing.assert_allclose(
        batch["x"][0, : expected[ids[0]]].numpy(),
        data.stats.transform(first.to_numpy()),
        rtol=1e-5,
        atol=1e-5,
    )
    labels = dict(table.runs.select("run_id", "label").iter_rows())
    np.testing.assert_allclose(batch["y"].numpy(), [labels[r] for r in ids], rtol=1e-6)
    flags = dict(table.runs.select("run_id", "has_neighbours").iter_rows())
    assert batch["has_neighbours"].tolist() == [flags[r] for r in ids]


def test_statistics_come_from_training_runs(table: RunTable) -> None:
    split = leave_applications_out(table, seed=2)
    data = build_monitoring(table, split, include_host=False)
    train_rows = table.telemetry.filter(pl.col("run_id").is_in(split.train_runs))
    reference = FeatureStats.fit(train_rows, data.stats.names)
    np.testing.assert_allclose(data.stats.mean, reference.mean)
    assert not any(name.startswith("host__") for name in data.stats.names)
    assert len(data.test) == len(split.test_runs)


def test_padded_matches_collate(table: RunTable) -> None:
    ids = table.runs["run_id"].to_list()[::-1][:6]  # not in telemetry order: the reader must reorder
    features = monitoring_features(table)
    stats = FeatureStats.fit(table.telemetry, features)
    x, mask = padded(table.telemetry, ids, features, stats)
    from cotenant.datasets.torch_data import MonitoringDataset

    batch = collate_monitoring([MonitoringDataset(table, ids, stats)[i] for i in range(6)])
    np.testing.assert_array_equal(x, batch["x"].numpy())
    np.testing.assert_array_equal(mask, batch["mask"].numpy())
    x_short, mask_short = padded(table.telemetry, ids, features, stats, max_steps=4)
    assert x_short.shape[1] == 4 and mask_short.all()


def test_placement_batch_has_neighbour_mask(table: RunTable) -> None:
    split = leave_applications_out(table, seed=1)
    data = build_placement(table, split)
    batch = next(iter(DataLoader(data.train, batch_size=10, collate_fn=collate_placement)))
    n_features = 3 * len(table.profile_metrics)
    assert batch["newcomer"].shape == (10, n_features)
    assert batch["neighbours"].shape == (10, 3, n_features)
    counts = dict(table.runs.select("run_id", "n_neighbours").iter_rows())
    ids = data.train.run_ids[:10]
    assert batch["neighbour_mask"].sum(dim=1).tolist() == [counts[r] for r in ids]
    assert (batch["neighbours"][~batch["neighbour_mask"]] == 0).all()
    # each newcomer row is its application's profile summary: same app -> same row
    apps = dict(table.runs.select("run_id", "application").iter_rows())
    same = [i for i, r in enumerate(ids) if apps[r] == apps[ids[0]]]
    for i in same:
        torch.testing.assert_close(batch["newcomer"][i], batch["newcomer"][0])
