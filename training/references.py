"""The references every accuracy figure is set beside, on the same folds:

- the **constant**: always answer the training runs' mean P;
- a **utilisation heuristic**, what Kubernetes' load-aware scorers do: no learning, P from the summed CPU
  demand of the tenants (each one's mean CPU use in its solo profile) against the host's cores,
  ``P = min(1, cores / total demand)``. Memory bandwidth is not in the lab's telemetry without a PMU, so the
  heuristic here is CPU only;
- a **fair-share heuristic**, the same demands shared as the kernel shares CPU between sibling cgroups of
  equal weight (max-min fair: whoever asks less than the water level gets all it asks), ``P = allocation /
  demand``: a stronger no-learning answer than the proportional one, set beside it;
- for the monitoring task, a **solo-relative heuristic**: no learning, the target's CPU use during the co-run
  over its mean CPU use in its own solo profile, ``P = min(1, mean vs_solo CPU)`` (``collectors.ratios``): a
  CPU-bound program slowed to P runs at P times its solo rate. Only where the table has the target's profile;
- the labels' **noise floor** (reported by the source itself: solo vs solo), and beside it the co-runs' own
  spread where the lab measured a co-run more than once (``repeat_reference``);
- which collected **work rate** follows P, program by program (``work_rate_reference``): how far a model that
  knew which rate is each program's progress could reach with the telemetry, beside the CPU ratio's.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import polars as pl
from cotenant.collectors.ratios import CPU_RATE
from cotenant.datasets.splits import CONFIGURATION, CONFIGURATION_KEY, Split, with_configurations
from cotenant.datasets.table import VS_SOLO, RunTable
from cotenant.training.metrics import mean_std

# The profile metric a load-aware scorer reads: cores of CPU time used per second.
CPU_DEMAND_METRIC = CPU_RATE


def constant_reference(table: RunTable, splits: list[Split]) -> dict[str, float]:
    """MAE (pp) of always answering the training runs' mean P per split: what any model must beat."""
    runs = table.runs
    maes = []
    for split in splits:
        train = runs.filter(pl.col("run_id").is_in(split.train_runs))["label"].to_numpy()
        test = runs.filter(pl.col("run_id").is_in(split.test_runs))["label"].to_numpy()
        maes.append(float(np.mean(np.abs(test - train.mean())) * 100))
    mean, std = mean_std(maes)
    return {"mean": mean, "std": std}


Law = Literal["proportional", "fair"]


def exact_fair_share(demands: list[float], cores: float) -> float:
    """Allocation / demand of the first of ``demands`` (cores) under max-min fair sharing of ``cores``: the
    placement model's grid function with every demand on the grid, which makes it exact."""
    from cotenant.models.placement_probes import fair_share

    capped = [min(d, cores) for d in demands]
    levels = np.array(sorted({d for d in capped if 0 < d < cores} | {cores}))
    own = np.minimum(capped[0], levels)[None]
    others = np.minimum(np.array(capped[1:] or [0.0])[:, None], levels).sum(axis=0)[None]
    return float(fair_share(own, others, levels, cores)[0])


def utilisation_predictions(table: RunTable, cores: float, law: Law = "proportional") -> pl.DataFrame:
    """``run_id`` and ``predicted`` P of every run with solo profiles for it and its neighbours, sharing the
    cores of the node it measured (``RunTable.run_cores``; ``cores`` where the table does not say)."""
    demand = table.profiles.group_by("profile_id").agg(pl.col(CPU_DEMAND_METRIC).mean().alias("demand"))
    by_profile = dict(demand.iter_rows())
    rows = []
    runs = table.runs.select("run_id", "target_profile", "neighbour_profiles").iter_rows()
    for (run_id, target, neighbours), node_cores in zip(runs, table.run_cores(), strict=True):
        tenants = [target, *neighbours]
        if target is None or any(by_profile.get(p) is None for p in tenants):
            continue
        demands = [max(float(by_profile[p]), 0.0) for p in tenants]
        shared = cores if np.isnan(node_cores) else float(node_cores)
        if law == "fair":
            rows.append((run_id, exact_fair_share(demands, shared)))
        else:
            rows.append((run_id, min(1.0, shared / sum(demands)) if sum(demands) > 0 else 1.0))
    return pl.DataFrame(rows, schema={"run_id": pl.Utf8, "predicted": pl.Float64}, orient="row")


def utilisation_reference(
    table: RunTable, splits: list[Split], law: Law = "proportional"
) -> dict[str, Any] | None:
    """MAE (pp) of the utilisation heuristic (``law``: proportional or fair share) on each split's test runs;
    None without CPU-demand profiles or without the host's core count."""
    cores = table.host_cores
    if CPU_DEMAND_METRIC not in table.profile_metrics or not cores:
        return None
    predicted = utilisation_predictions(table, cores, law)
    labelled = table.runs.select("run_id", "label").join(predicted, on="run_id")
    maes = []
    for split in splits:
        test = labelled.filter(pl.col("run_id").is_in(split.test_runs))
        if test.height:
            maes.append(float((test["predicted"] - test["label"]).abs().mean() or 0.0) * 100)
    if not maes:
        return None
    mean, std = mean_std(maes)
    return {"mean": mean, "std": std, "cores": float(cores), "metric": CPU_DEMAND_METRIC, "law": law}


def solo_relative_predictions(table: RunTable) -> pl.DataFrame:
    """``run_id`` and ``predicted`` P of every run whose target has a solo profile: its mean CPU use over the
    run relative to that profile's (``RunTable.with_solo_relative``), at most 1."""
    column = VS_SOLO + CPU_DEMAND_METRIC
    if column not in table.telemetry.columns:
        return pl.DataFrame(schema={"run_id": pl.Utf8, "predicted": pl.Float64})
    return (
        table.telemetry.group_by("run_id")
        .agg(pl.col(column).mean().clip(upper_bound=1.0).alias("predicted"))
        .drop_nulls("predicted")
    )


def solo_relative_reference(table: RunTable, splits: list[Split]) -> dict[str, Any] | None:
    """MAE (pp) of the solo-relative heuristic on each split's test runs that it answers; None where the table
    has no solo-relative CPU column."""
    predicted = solo_relative_predictions(table)
    if predicted.is_empty():
        return None
    labelled = table.runs.select("run_id", "label").join(predicted, on="run_id")
    maes = []
    for split in splits:
        test = labelled.filter(pl.col("run_id").is_in(split.test_runs))
        if test.height:
            maes.append(float((test["predicted"] - test["label"]).abs().mean() or 0.0) * 100)
    if not maes:
        return None
    mean, std = mean_std(maes)
    return {"mean": mean, "std": std, "metric": CPU_DEMAND_METRIC, "runs": labelled.height}


def repeat_reference(table: RunTable) -> dict[str, Any] | None:
    """The labels' spread where interference is present: every co-run the lab measured more than once (the
    same target configuration, load and neighbours; different campaigns and days included) against the median
    of the other measurements of it, |P - P_others| in pp, as the noise floor reads solos. Two measurements
    each off the co-run's expected P differ by more than either does from it (about 1.4 x for Gaussian noise),
    so the mean bounds from above what a predictor of every co-run's expected P would score. None where no
    co-run was repeated."""
    runs = table.runs.filter(pl.col("has_neighbours"))
    if not {*CONFIGURATION_KEY, "neighbours"} <= set(runs.columns):
        return None
    grouped = (
        with_configurations(runs)
        .group_by(CONFIGURATION)
        .agg(pl.col("label"))
        .filter(pl.col("label").list.len() >= 2)
    )
    deviations = []
    for labels in grouped["label"].to_list():
        values = np.asarray(labels, dtype=float)
        for i, value in enumerate(values):
            deviations.append(abs(value - float(np.median(np.delete(values, i)))))
    if not deviations:
        return None
    pp = 100 * np.asarray(deviations)
    return {
        "runs": len(deviations),
        "configurations": grouped.height,
        "median": float(np.median(pp)),
        "mean": float(pp.mean()),
        "p90": float(np.quantile(pp, 0.9)),
    }


# A program for which another work rate beats the CPU ratio by at least this much is named in the report.
CLOSER_RATE_PP = 2.0


def work_rate_reference(table: RunTable) -> dict[str, Any] | None:
    """Which collected work rate follows P, program by program: for every program, the MAE (pp) over its
    co-runs of each of the target's ``vs_solo__`` rates (its mean over the run, at most 1, read as P, as the
    solo-relative heuristic reads the CPU one) that every such co-run has, and the rate closest to its labels.
    Like ``repeat_reference`` it reads every program's labels to measure the data and chooses nothing: read
    through each program's own closest rate, the MAE is what a model that knew which rate is an unseen
    program's progress could approach with this telemetry; the CPU ratio's MAE on the same co-runs is beside
    it. Co-runs without the CPU ratio (no solo profile) are left out; None where the table has none."""
    from cotenant.collectors.ratios import SWITCH_DENSITY

    # The rates only: the profile's switch density beside them is no rate.
    columns = [c for c in table.solo_relative_columns if c != VS_SOLO + SWITCH_DENSITY]
    cpu = VS_SOLO + CPU_DEMAND_METRIC
    if cpu not in columns:
        return None
    means = table.telemetry.group_by("run_id").agg(pl.col(column).mean() for column in columns)
    runs = (
        table.runs.filter(pl.col("has_neighbours"))
        .select("run_id", "application", "label")
        .join(means, on="run_id")
        .filter(pl.col(cpu).is_not_null() & pl.col(cpu).is_not_nan())
        .sort("application", "run_id")
    )
    if runs.is_empty():
        return None
    programs: dict[str, dict[str, Any]] = {}
    cpu_errors: list[np.ndarray] = []
    closest_errors: list[np.ndarray] = []
    for (application,), frame in runs.group_by("application", maintain_order=True):
        labels = frame["label"].to_numpy().astype(np.float64)
        errors = {}
        for column in columns:
            values = frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
            if np.isfinite(values).all():
                errors[column] = 100 * np.abs(np.minimum(values, 1.0) - labels)
        closest = min(errors, key=lambda column: float(errors[column].mean()))
        programs[str(application)] = {
            "runs": frame.height,
            "cpu_mae": float(errors[cpu].mean()),
            "closest": closest.removeprefix(VS_SOLO),
            "closest_mae": float(errors[closest].mean()),
        }
        cpu_errors.append(errors[cpu])
        closest_errors.append(errors[closest])
    return {
        "runs": runs.height,
        "cpu_mae": float(np.concatenate(cpu_errors).mean()),
        "closest_mae": float(np.concatenate(closest_errors).mean()),
        "programs": programs,
    }
