"""Evaluation splits and the normalisation statistics fit on a training split only.

``leave_programs_out`` is the protocol every accuracy figure follows: grouped K-fold over programs, each
program held out exactly once, and a held-out program appears in **no** training run in any role (target or
neighbour). Inside each training fold the next fold's programs are the validation programs, the only data any
choice (epochs, clipping, hyper-parameters, calibration, promotion) may look at; they too appear in no
training run. Calibrated instruments (the lab's stress-ng aggressors and victims) are not programs: they are
the same in every fold and never held out.

Leave-applications-out (CloudFormer's protocol, random applications per seed, target role only) and
``by_time`` remain for comparison. A split only lists run ids: nothing about the test runs is computed from
it, and ``FeatureStats.fit`` is called on the training runs alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.table import RunTable

PAPER_TEST_SHARE = 4 / 11


@dataclass(frozen=True)
class Split:
    name: str
    train_runs: list[str]
    test_runs: list[str]
    train_apps: list[str] = field(default_factory=list)
    test_apps: list[str] = field(default_factory=list)
    validation_runs: list[str] = field(default_factory=list)
    validation_apps: list[str] = field(default_factory=list)
    # The seed of the grouping of programs into folds this split is one fold of (leave_programs_out).
    partition: int = 0

    def train(self, table: RunTable) -> RunTable:
        return table.select_runs(self.train_runs)

    def test(self, table: RunTable) -> RunTable:
        return table.select_runs(self.test_runs)

    def validation(self, table: RunTable) -> RunTable:
        return table.select_runs(self.validation_runs)


def program_of(config_key: str) -> str:
    """The program of a lab configuration key (``redis/level=8/cpus=1/mem=1024`` -> ``redis``)."""
    return config_key.split("/", 1)[0]


def instruments() -> frozenset[str]:
    """Programs that are calibrated instruments (aggressors, victims), not applications to hold out."""
    from cotenant.datasets.lab.workloads import WORKLOADS

    return frozenset(name for name, workload in WORKLOADS.items() if workload.category == "synthetic")


def run_programs(table: RunTable) -> pl.DataFrame:
    """``run_id`` and ``programs``: every program a run involves, as target or as a neighbour."""
    return table.runs.select(
        "run_id",
        pl.concat_list(
            pl.col("application"),
            pl.col("neighbours").list.eval(pl.element().str.split("/").list.first()),
        )
        .list.unique()
        .alias("programs"),
    )


def program_folds(table: RunTable, k: int = 5, seed: int = 0) -> list[list[str]]:
    """Target programs dealt into ``k`` folds (at most one per program) of (nearly) equal size after a seeded
    shuffle: grouped K-fold, each program held out exactly once over the folds."""
    excluded = instruments()
    programs = sorted(p for p in table.runs["application"].unique().to_list() if p not in excluded)
    if len(programs) < 2 or k < 2:
        raise ValueError(f"leave-programs-out needs k >= 2 folds and >= 2 programs; got k={k}, {programs}")
    k = min(k, len(programs))  # more folds than programs: one program per fold
    order = np.random.default_rng(seed).permutation(len(programs))
    folds: list[list[str]] = [[] for _ in range(k)]
    for position, index in enumerate(order):
        folds[position % k].append(programs[index])
    return [sorted(fold) for fold in folds]


def leave_programs_out(table: RunTable, k: int = 5, seed: int = 0) -> list[Split]:
    """One split per fold: test = runs whose target is a fold program; validation = runs whose target is a
    program of the next fold (with three folds or more) and that involve no test program; training = runs
    that involve neither. Runs whose neighbours include a held-out program but whose target does not are in
    no role for that fold."""
    folds = program_folds(table, k, seed)
    involved = run_programs(table)
    splits = []
    for index, test_apps in enumerate(folds):
        # With two folds the other one is all the training there is: no validation programs then.
        validation_apps = folds[(index + 1) % len(folds)] if len(folds) >= 3 else []
        touches_test = pl.col("programs").list.set_intersection(pl.lit(test_apps)).list.len() > 0
        touches_validation = pl.col("programs").list.set_intersection(pl.lit(validation_apps)).list.len() > 0
        frame = involved.join(table.runs.select("run_id", "application"), on="run_id")
        test = frame.filter(pl.col("application").is_in(test_apps))
        validation = frame.filter(pl.col("application").is_in(validation_apps) & ~touches_test)
        train = frame.filter(~touches_test & ~touches_validation)
        held_out = set(test_apps) | set(validation_apps)
        splits.append(
            Split(
                name=f"programs-fold{index}" if seed == 0 else f"programs-seed{seed}-fold{index}",
                train_runs=train["run_id"].to_list(),
                test_runs=test["run_id"].to_list(),
                train_apps=sorted(set(train["application"].to_list()) - held_out),
                test_apps=test_apps,
                validation_runs=validation["run_id"].to_list(),
                validation_apps=validation_apps,
                partition=seed,
            )
        )
    return splits


# What makes two co-runs measurements of the same thing: the target's configuration and its load or schedule,
# with its neighbours read as a set (the order they were started in is no property of the co-run).
CONFIGURATION_KEY = ("application", "config_key", "scenario", "load")
CONFIGURATION = "configuration"


def with_configurations(runs: pl.DataFrame) -> pl.DataFrame:
    """``runs`` with ``configuration``: one string per co-run configuration (``CONFIGURATION_KEY`` and the
    neighbours as a set), which every measurement of the same co-run shares (the key's columns a source
    lacks are left out of it)."""
    neighbour_set = pl.col("neighbours").list.sort().list.join("+")
    parts = [pl.col(c).cast(pl.String).fill_null("") for c in CONFIGURATION_KEY if c in runs.columns]
    return runs.with_columns(pl.concat_str([*parts, neighbour_set], separator="|").alias(CONFIGURATION))


def programs_seen(table: RunTable, split: Split, seed: int = 0) -> tuple[Split, Split]:
    """``split`` with its held-out programs seen: each held-out program with two configurations or more has
    half of them (a seeded draw, every measurement of a configuration together) moved into training, with
    every run that has a held-out program as a neighbour only; the other half are the test runs. Returned
    with the same test runs answered by ``split``'s own training (programs unseen), so that the two MAEs are
    paired: unseen minus seen is the part of the error the program's own behaviour makes, which only more
    kinds of program (or inputs that carry between programs) can close; seen is what the inputs say of a
    program known. The validation programs stay out of training in every role, as in ``split``."""
    runs = with_configurations(table.runs).join(run_programs(table), on="run_id")
    touches_validation = (
        pl.col("programs").list.set_intersection(pl.lit(split.validation_apps)).list.len() > 0
    )
    held_out: list[str] = []
    rng = np.random.default_rng(seed)
    for program in sorted(split.test_apps):
        own = sorted(runs.filter(pl.col("application") == program)[CONFIGURATION].unique().to_list())
        if len(own) >= 2:
            held_out += [own[i] for i in rng.permutation(len(own))[: len(own) // 2]]
    tested = runs.filter(pl.col(CONFIGURATION).is_in(held_out) & pl.col("run_id").is_in(split.test_runs))
    test_runs = tested["run_id"].to_list()
    train = runs.filter(~touches_validation & ~pl.col(CONFIGURATION).is_in(held_out))
    test_apps = sorted(set(tested["application"].to_list()))
    seen = Split(
        name=f"{split.name}-seen",
        train_runs=train["run_id"].to_list(),
        test_runs=test_runs,
        train_apps=sorted(set(split.train_apps) | set(test_apps)),
        test_apps=test_apps,
        validation_runs=split.validation_runs,
        validation_apps=split.validation_apps,
        partition=split.partition,
    )
    unseen = Split(
        name=f"{split.name}-unseen",
        train_runs=split.train_runs,
        test_runs=test_runs,
        train_apps=split.train_apps,
        test_apps=test_apps,
        validation_runs=split.validation_runs,
        validation_apps=split.validation_apps,
        partition=split.partition,
    )
    return seen, unseen


def repeated_leave_programs_out(table: RunTable, k: int = 5, partitions: int = 1) -> list[Split]:
    """``leave_programs_out`` under ``partitions`` groupings of the programs into folds (seeds 0, 1, ...):
    repeated grouped K-fold. Which programs share a fold decides what a fold's training set lacks, so one
    grouping's figures carry its luck; each program is held out once per partition."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1; got {partitions}")
    return [split for seed in range(partitions) for split in leave_programs_out(table, k, seed)]


def n_test_applications(n_apps: int) -> int:
    if n_apps < 2:
        raise ValueError(f"leave-applications-out needs >= 2 applications, the table has {n_apps}")
    return min(max(round(n_apps * PAPER_TEST_SHARE), 1), n_apps - 1)


def leave_applications_out(table: RunTable, seed: int, n_test: int | None = None) -> Split:
    """Hold out whole applications: no test application has a single run in training."""
    apps = sorted(table.runs["application"].unique().to_list())
    n_test = n_test if n_test is not None else n_test_applications(len(apps))
    if not 1 <= n_test < len(apps):
        raise ValueError(f"n_test={n_test} must be in [1, {len(apps) - 1}] for {len(apps)} applications")
    rng = np.random.default_rng(seed)
    test_apps = sorted(rng.choice(apps, size=n_test, replace=False).tolist())
    train_apps = [a for a in apps if a not in test_apps]
    is_test = pl.col("application").is_in(test_apps)
    return Split(
        name=f"apps-seed{seed}",
        train_runs=table.runs.filter(~is_test)["run_id"].to_list(),
        test_runs=table.runs.filter(is_test)["run_id"].to_list(),
        train_apps=train_apps,
        test_apps=test_apps,
    )


def leave_applications_out_splits(table: RunTable, n_seeds: int = 6, first_seed: int = 0) -> list[Split]:
    """The paper's protocol: one split per seed (results are reported as mean +- std over them)."""
    return [leave_applications_out(table, seed) for seed in range(first_seed, first_seed + n_seeds)]


def by_time(table: RunTable, test_fraction: float = 0.3) -> Split:
    """Train on the earliest runs, test on the latest (ties at the boundary go to training)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ordered = table.runs.sort("started_at", "run_id")
    n_test = max(1, round(ordered.height * test_fraction))
    cut = ordered["started_at"][ordered.height - n_test]
    train = ordered.filter(pl.col("started_at") < cut)
    test = ordered.filter(pl.col("started_at") >= cut)
    return Split(name="by-time", train_runs=train["run_id"].to_list(), test_runs=test["run_id"].to_list())


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and scale. Constant or all-missing features get scale 1 (and mean 0 when missing),
    so transforming never divides by zero and missing values become 0 (the training mean)."""

    names: list[str]
    mean: np.ndarray  # [F] float64
    std: np.ndarray  # [F] float64
    # Standardised values are clipped to +-clip: a held-out application can sit tens of standard
    # deviations out on a metric the training applications barely touch, and neural models extrapolate
    # wildly there (trees do not). On `bundled`, leave-applications-out, cloudformer's MAE fell from 19.0
    # to 13.7 pp with clip 3.
    clip: float | None = None
    # Features passed through untouched, missing values included (``keeping``): inputs already on a fixed
    # scale whose absence the model must see (the placement model's probe deficits).
    kept: tuple[str, ...] = ()

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: list[str], clip: float | None = None) -> FeatureStats:
        # One select, NaN treated as missing per column: no cleaned copy of the (wide) frame is made.
        has_nan = frame.select(pl.col(columns).cast(pl.Float64).is_nan().any()).row(0)

        def valid(c: str, nan: bool | None) -> pl.Expr:
            column = pl.col(c).cast(pl.Float64)
            return column.filter(column.is_not_nan()) if nan else column

        stats = frame.select(
            *[
                valid(c, nan).mean().alias(f"m{i}")
                for i, (c, nan) in enumerate(zip(columns, has_nan, strict=True))
            ],
            *[
                valid(c, nan).std(ddof=0).alias(f"s{i}")
                for i, (c, nan) in enumerate(zip(columns, has_nan, strict=True))
            ],
        ).row(0)
        n = len(columns)
        mean = np.array([np.nan if v is None else v for v in stats[:n]], dtype=np.float64)
        std = np.array([np.nan if v is None else v for v in stats[n:]], dtype=np.float64)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12 * np.maximum(1.0, np.abs(mean))), std, 1.0)
        return cls(list(columns), mean, std, clip)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``values [..., F]`` -> normalised float32, missing (NaN) as 0; works in place on float32 input."""
        kept = np.isin(self.names, self.kept) if self.kept else None
        original = values[..., kept].astype(np.float32) if kept is not None else None
        out = values if values.dtype == np.float32 else values.astype(np.float32)
        out -= self.mean.astype(np.float32)
        out *= (1.0 / self.std).astype(np.float32)
        # One cheap reduction tells whether any NaN/inf is there (they propagate); only then find them.
        if not np.isfinite(out.sum(dtype=np.float64)):
            out[~np.isfinite(out)] = 0.0
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        if self.kept:
            out[..., kept] = original
        return out

    def subset(self, names: list[str]) -> FeatureStats:
        """The statistics of these features only, in this order."""
        index = [self.names.index(name) for name in names]
        kept = tuple(name for name in self.kept if name in names)
        return FeatureStats(list(names), self.mean[index], self.std[index], self.clip, kept)

    def keeping(self, names: list[str]) -> FeatureStats:
        """The same statistics, with these features passed through untouched (missing values included)."""
        keep = np.isin(self.names, names)
        mean, std = np.where(keep, 0.0, self.mean), np.where(keep, 1.0, self.std)
        return FeatureStats(self.names, mean, std, self.clip, tuple(names))

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "clip": self.clip,
            "kept": list(self.kept),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureStats:
        mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        # Artifacts from before clipping (or kept features) have none.
        return cls(list(data["names"]), mean, std, data.get("clip"), tuple(data.get("kept", ())))
