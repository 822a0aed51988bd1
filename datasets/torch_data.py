"""Torch datasets and collate functions for both tasks (batch layouts of docs/architecture.md section 3).

Monitoring batch: ``x [B, T, F] float32``, ``mask [B, T] bool`` (True = real step), ``y [B]``, plus
``has_neighbours [B] bool`` (False: the neighbour_mean__ features are zeros because the run was alone) and
``lengths [B]``. Placement batch: ``newcomer [B, F_p]``, ``neighbours [B, K, F_p]``,
``neighbour_mask [B, K]``, ``y [B]``. Normalisation statistics are fit on the training split only
(``build_*`` does that for you).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from cotenant.datasets.splits import FeatureStats, Split
from cotenant.datasets.table import RunTable
from cotenant.datasets.tensors import (
    PROBE_PREFIX,
    monitoring_features,
    placement_arrays,
    placement_inputs,
    stacked,
)
from torch.utils.data import Dataset

Batch = dict[str, torch.Tensor]


def _labels(table: RunTable, run_ids: Sequence[str], column: str) -> np.ndarray:
    order = pl.DataFrame({"run_id": list(run_ids)}).join(
        table.runs, on="run_id", how="left", maintain_order="left"
    )
    return order[column].to_numpy()


# The batch key of each run's ensemble member that never trains on it (training.loop reads it).
HELD_OUT_BY = "held_out_by"


class MonitoringDataset(Dataset[Batch]):
    """One item per run: its normalised per-second features ``x [T, F]`` and label ``y``."""

    def __init__(
        self,
        table: RunTable,
        run_ids: Sequence[str],
        stats: FeatureStats,
        max_steps: int | None = None,
    ) -> None:
        self.run_ids = list(run_ids)
        self.features = stats.names
        self.values, self.offsets = stacked(table.telemetry, self.run_ids, self.features, stats, max_steps)
        self.y = _labels(table, self.run_ids, "label").astype(np.float32)
        self.has_neighbours = _labels(table, self.run_ids, "has_neighbours").astype(bool)
        # Per run, the ensemble member that never trains on it (``held_out_by``); None: every member does.
        self.held_out_by: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.run_ids)

    def subset(self, keep: np.ndarray) -> MonitoringDataset:
        """The runs where ``keep [N]`` is True, in order (no re-reading of the table)."""
        chosen = np.flatnonzero(keep)
        out = MonitoringDataset.__new__(MonitoringDataset)
        out.run_ids = [self.run_ids[i] for i in chosen]
        out.features = self.features
        pieces = [self.values[self.offsets[i] : self.offsets[i + 1]] for i in chosen]
        lengths = np.array([len(piece) for piece in pieces], dtype=np.int64)
        out.values = np.concatenate(pieces) if pieces else self.values[:0]
        out.offsets = np.concatenate([[0], np.cumsum(lengths)])
        out.y, out.has_neighbours = self.y[chosen], self.has_neighbours[chosen]
        out.held_out_by = None if self.held_out_by is None else self.held_out_by[chosen]
        return out

    def __getitem__(self, i: int) -> Batch:
        x = torch.from_numpy(self.values[self.offsets[i] : self.offsets[i + 1]])  # [T, F]
        item = {
            "x": x,
            "y": torch.tensor(self.y[i]),
            "has_neighbours": torch.tensor(bool(self.has_neighbours[i])),
        }
        if self.held_out_by is not None:
            item[HELD_OUT_BY] = torch.tensor(int(self.held_out_by[i]))
        return item


def collate_monitoring(items: list[Batch]) -> Batch:
    lengths = torch.tensor([item["x"].shape[0] for item in items])
    steps = int(lengths.max())
    features = items[0]["x"].shape[1]
    x = torch.zeros(len(items), steps, features, dtype=torch.float32)  # [B, T, F]
    for b, item in enumerate(items):
        x[b, : lengths[b]] = item["x"]
    mask = torch.arange(steps)[None, :] < lengths[:, None]  # [B, T]
    batch = {
        "x": x,
        "mask": mask,
        "y": torch.stack([item["y"] for item in items]),
        "has_neighbours": torch.stack([item["has_neighbours"] for item in items]),
        "lengths": lengths,
    }
    if HELD_OUT_BY in items[0]:
        batch[HELD_OUT_BY] = torch.stack([item[HELD_OUT_BY] for item in items])
    return batch


class PlacementDataset(Dataset[Batch]):
    """One item per co-run with a target profile: newcomer and neighbour profile summaries, padded to K."""

    def __init__(
        self, table: RunTable, run_ids: Sequence[str], stats: FeatureStats, max_neighbours: int
    ) -> None:
        self.run_ids = list(run_ids)
        self.features = stats.names
        self.newcomer, self.neighbours, self.mask = placement_arrays(
            table, self.run_ids, stats, max_neighbours
        )
        self.y = _labels(table, self.run_ids, "label").astype(np.float32)
        # The cores of each run's node (NaN: unknown): the shares a model that reads the host's size takes.
        self.cores = table.run_cores(self.run_ids)

    def __len__(self) -> int:
        return len(self.run_ids)

    def subset(self, keep: np.ndarray) -> PlacementDataset:
        """The runs where ``keep [N]`` is True, in order (no re-reading of the table)."""
        chosen = np.flatnonzero(keep)
        out = PlacementDataset.__new__(PlacementDataset)
        out.run_ids = [self.run_ids[i] for i in chosen]
        out.features = self.features
        out.newcomer, out.neighbours = self.newcomer[chosen], self.neighbours[chosen]
        out.mask, out.y, out.cores = self.mask[chosen], self.y[chosen], self.cores[chosen]
        return out

    def __getitem__(self, i: int) -> Batch:
        return {
            "newcomer": torch.from_numpy(self.newcomer[i]),  # [F_p]
            "neighbours": torch.from_numpy(self.neighbours[i]),  # [K, F_p]
            "neighbour_mask": torch.from_numpy(self.mask[i]),  # [K]
            "y": torch.tensor(self.y[i]),
        }


def collate_placement(items: list[Batch]) -> Batch:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@dataclass
class TaskData:
    """Train, test and validation datasets of one split, with the statistics fit on the training runs."""

    train: Dataset[Batch]
    test: Dataset[Batch]
    stats: FeatureStats
    split: Split
    validation: Dataset[Batch] | None = None  # the split's validation programs (None: it has none)


def build_monitoring(
    table: RunTable,
    split: Split,
    include_host: bool = True,
    max_steps: int | None = None,
    clip: float | None = None,
    max_features: int | None = None,
    include_own_levels: bool = True,
    include_probes: bool = False,
) -> TaskData:
    """With ``max_features``, only the features that rank best with P over the training runs are kept
    (``ranked_features``); the statistics and the choice see the training runs only. With
    ``include_probes`` the runs' probe inputs (``RunTable.with_probe_inputs``) come last."""
    if include_probes:
        table = table.with_probe_inputs()
    features = monitoring_features(table, include_host, include_own_levels, include_probes)
    train_rows = table.telemetry.filter(pl.col("run_id").is_in(pl.Series(split.train_runs).implode()))
    stats = FeatureStats.fit(train_rows, features, clip)
    if max_features is not None and max_features < len(features):
        stats = stats.subset(ranked_features(train_rows, table.runs, features, max_features))
    return TaskData(
        MonitoringDataset(table, split.train_runs, stats, max_steps),
        MonitoringDataset(table, split.test_runs, stats, max_steps),
        stats,
        split,
        MonitoringDataset(table, split.validation_runs, stats, max_steps) if split.validation_runs else None,
    )


def ranked_features(telemetry: pl.DataFrame, runs: pl.DataFrame, features: list[str], keep: int) -> list[str]:
    """The ``keep`` features whose per-run mean has the largest |Spearman correlation| with the runs'
    labels (constant or missing ones rank last), in their original order: columns stay grouped by source,
    which the system branch's metric patches rely on."""
    means = telemetry.group_by("run_id").agg(pl.col(features).cast(pl.Float64).fill_nan(None).mean())
    labelled = means.join(runs.select("run_id", "label"), on="run_id", how="inner")
    correlations = labelled.select(
        pl.corr(pl.col(name), pl.col("label"), method="spearman").abs().alias(name) for name in features
    ).row(0)
    strength = {
        name: 0.0 if value is None or math.isnan(value) else value
        for name, value in zip(features, correlations, strict=True)
    }
    chosen = set(sorted(features, key=lambda name: -strength[name])[:keep])
    return [name for name in features if name in chosen]


def build_placement(
    table: RunTable, split: Split, clip: float | None = None, probes: bool = False
) -> TaskData:
    """Runs without a target profile are left out (CloudPerfTrace has none at all). With ``probes`` each
    workload's row carries its probe deficits after its profile summary (``placement_inputs``)."""
    with_profile = set(table.runs.filter(pl.col("target_profile").is_not_null())["run_id"])
    train = [r for r in split.train_runs if r in with_profile]
    test = [r for r in split.test_runs if r in with_profile]
    validation = [r for r in split.validation_runs if r in with_profile]
    if not train:
        raise ValueError("placement: no training run has a solo profile (target_profile is null everywhere)")
    # Statistics over the profiles the training runs use (newcomers and neighbours alike), never the test's.
    train_runs = table.runs.filter(pl.col("run_id").is_in(pl.Series(train).implode()))
    used = set(train_runs["target_profile"]) | set(train_runs["neighbour_profiles"].explode().drop_nulls())
    names, summary = placement_inputs(table, probes)
    stats = FeatureStats.fit(summary.filter(pl.col("profile_id").is_in(list(used))), names, clip)
    stats = stats.keeping([name for name in names if name.startswith(PROBE_PREFIX)])
    k = int(table.runs["n_neighbours"].max() or 1)
    return TaskData(
        PlacementDataset(table, train, stats, k),
        PlacementDataset(table, test, stats, k),
        stats,
        split,
        PlacementDataset(table, validation, stats, k) if validation else None,
    )
