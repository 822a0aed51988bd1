"""A lab's run records and labels as Polars frames (pure apart from reading runs.jsonl).

The lab owns the record format and the labelling rule (``cotenant.datasets.lab.records`` /
``labels``: P against the median of the config's solo references, clipped to (0, 1]; the noise floor is the
solo-vs-solo deviation). This module only flattens them into the frames the lab source joins with telemetry.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
from cotenant.datasets.lab.canary import CANARIES
from cotenant.datasets.lab.labels import label_runs, noise_floor, noise_floor_by_application, solo_drift
from cotenant.datasets.lab.records import RunRecord, read_journal

RECORD_SCHEMA: dict[str, Any] = {
    "run_id": pl.Utf8,
    "kind": pl.Utf8,
    "application": pl.Utf8,
    "config_key": pl.Utf8,
    "scenario": pl.Utf8,
    "load": pl.Utf8,
    "schedule": pl.Utf8,
    "neighbours": pl.List(pl.Utf8),
    "repeat": pl.Int64,
    "started_at": pl.Datetime("ms", "UTC"),
    "ended_at": pl.Datetime("ms", "UTC"),
    "target_cgroup": pl.Utf8,
    "neighbour_cgroups": pl.List(pl.Utf8),
    "performance": pl.Float64,
    "performance_unit": pl.Utf8,
    "higher_is_better": pl.Boolean,
    # The host just before the run (null in journals written before quiet labels).
    "background_busy_cpus": pl.Float64,
    "background_cpu_pressure": pl.Float64,
    "background_waited_s": pl.Float64,
    "background_quiet": pl.Boolean,
    # The solo runs the label compares with (empty: every solo of the configuration).
    "references": pl.List(pl.Utf8),
    # The machine's speed right before and after the run (canary.py; null without a canary).
    **{f"speed_{edge}_{canary}": pl.Float64 for edge in ("before", "after") for canary in CANARIES},
    # The CPUs a plan's host_cpus pinned the run to (null: the whole machine): the table's RUN_HOST_CORES.
    "host_cores": pl.Int64,
    # The cgroups' cpu.shares, target's first then each neighbour's, where a plan weighed them by CPU requests
    # (null: all at the kernel's default).
    "cpu_shares": pl.List(pl.Int64),
}


def records_frame(records: list[RunRecord]) -> pl.DataFrame:
    """One row per record; cgroup paths without leading/trailing slashes, as the collector names them."""
    rows = []
    for record in records:
        row = record.model_dump(exclude={"cgroups", "background", "speed_before", "speed_after"})
        for edge, speed in (("before", record.speed_before), ("after", record.speed_after)):
            for canary in CANARIES:
                row[f"speed_{edge}_{canary}"] = speed.get(canary) if speed else None
        row["target_cgroup"] = record.cgroups.target.strip("/")
        row["neighbour_cgroups"] = [n.strip("/") for n in record.cgroups.neighbours]
        background = record.background
        row["background_busy_cpus"] = background.busy_cpus if background else None
        row["background_cpu_pressure"] = background.cpu_pressure if background else None
        row["background_waited_s"] = background.waited_s if background else None
        row["background_quiet"] = background.quiet if background else None
        row["started_at"] = record.started_at
        row["ended_at"] = record.ended_at
        rows.append(row)
    frame = pl.DataFrame(
        rows, schema_overrides={"started_at": pl.Datetime("us", "UTC")}, infer_schema_length=None
    )
    frame = frame.with_columns(
        pl.col("started_at", "ended_at").dt.convert_time_zone("UTC").dt.cast_time_unit("ms"),
        pl.col("neighbours").cast(pl.List(pl.Utf8)),
        pl.col("neighbour_cgroups").cast(pl.List(pl.Utf8)),
        pl.col("references").cast(pl.List(pl.Utf8)),
    )
    return frame.select([pl.col(c).cast(t) for c, t in RECORD_SCHEMA.items()])


# A run whose measurement window lasted this many times its configuration's median one was held up: on the
# 2-core lab machine the kernel's own workers can starve under full co-location (a "workqueue lockup"), which
# stops every program for tens of seconds; a unit of work finishing late adds seconds, not this much.
OVERRUN_FACTOR = 1.5


def window_overruns(records: pl.DataFrame, factor: float = OVERRUN_FACTOR) -> pl.DataFrame:
    """Runs (``run_id, kind, application, window_s, ratio``) whose window (start to end of the target's
    phases) exceeded ``factor`` x the median window of the runs with the same target configuration and
    number of neighbours. Their labels are kept; the card and ``cotenant lab labels`` count them."""
    windowed = records.with_columns(
        ((pl.col("ended_at") - pl.col("started_at")).dt.total_milliseconds() / 1000).alias("window_s"),
        pl.col("neighbours").list.len().alias("n_neighbours"),
    )
    typical = pl.col("window_s").median().over("config_key", "n_neighbours")
    return (
        windowed.with_columns((pl.col("window_s") / typical).alias("ratio"))
        .filter(pl.col("ratio") > factor)
        .select("run_id", "kind", "application", "window_s", "ratio")
        .sort("run_id")
    )


def overrun_text(records: pl.DataFrame) -> str:
    overran = window_overruns(records)
    if not overran.height:
        return f"no run's window exceeded {OVERRUN_FACTOR:g} x its configuration's median"
    kinds = ", ".join(
        f"{kind} {count}" for kind, count in overran["kind"].value_counts(sort=True).iter_rows()
    )
    worst = float(overran["ratio"].max())  # type: ignore[arg-type]
    return (
        f"{overran.height} of {records.height} runs lasted over {OVERRUN_FACTOR:g} x their configuration's "
        f"median window ({kinds}; worst {worst:.1f} x): host stalls, labels kept"
    )


def labelled_records(records: list[RunRecord]) -> pl.DataFrame:
    """Every record with its label where it has one (co-runs, probes, pressure and solo rows; neighbour
    solos have none): what the bundled dataset ships so that anyone can recompute labels and noise floor."""
    labels = label_runs(records).select("run_id", "solo_performance", "n_solo_references", "ratio", "label")
    frame = records_frame(records).drop("target_cgroup", "neighbour_cgroups")
    return frame.join(labels, on="run_id", how="left").sort("run_id")


def read_lab_runs(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """(all records, labelled co-runs with ``label`` and ``solo_performance``, noise floor) of runs.jsonl.

    The noise floor dict is ``NoiseFloor``'s fields plus ``by_application`` (the same per application) and
    ``drift_by_application`` (``SoloDrift``)."""
    records = read_journal(path)  # raises naming file and line; ignores a torn last line (crash mid-append)
    if not records:
        raise ValueError(f"{path}: no run records")
    frame = records_frame(records)
    labels = label_runs(records)
    coruns = labels.filter(pl.col("kind") == "corun").select("run_id", "solo_performance", "label")
    labelled = frame.join(coruns, on="run_id", how="inner")
    return frame, labelled, noise_facts(labels, frame)


def noise_facts(labels: pl.DataFrame, records: pl.DataFrame) -> dict[str, Any]:
    """``NoiseFloor``'s fields over ``labels``' solo rows, plus ``by_application`` and
    ``drift_by_application`` (``SoloDrift`` of ``records``, a row per run)."""
    noise = asdict(noise_floor(labels))
    noise["by_application"] = {
        app: asdict(floor) for app, floor in noise_floor_by_application(labels).items()
    }
    noise["drift_by_application"] = {app: asdict(drift) for app, drift in solo_drift(records).items()}
    return noise
