"""A lab output directory as a RunTable: runs.jsonl joined with the collector's telemetry.

For every labelled co-run, the cgroup table is cut to the run's [started_at, ended_at) window and split by
cgroup name: the target cgroup gives ``self__<m>``; the neighbour cgroups are averaged per second into
``neighbour_mean__<m>`` (zeros, not nulls, when the run had no neighbours: the ``has_neighbours`` column of
``runs`` tells the models which); the host table over the same window gives ``host__<h>``. Solo and
neighbour-solo runs become the ``profiles`` (profile id = config key; the first repeat is the profile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
from cotenant.datasets.lab.labels import noise_floor
from cotenant.datasets.lab.plan import load_plan
from cotenant.datasets.lab.probing import probe_vectors
from cotenant.datasets.lab.records import read_journal
from cotenant.datasets.sources.base import SOURCES, metric_groups_for
from cotenant.datasets.sources.lab_records import labelled_records, noise_facts, read_lab_runs
from cotenant.datasets.table import HOST, NEIGHBOUR_MEAN, RUN_HOST_CORES, SELF, RunTable, conform_runs

KEYS = ("timestamp", "target", "table")


def scan_table(root: Path, table: str) -> pl.LazyFrame:
    """The collector's reader when it is installed, else the documented hive layout read directly."""
    try:
        from cotenant.datasets.telemetry import scan_telemetry  # type: ignore[import-not-found,unused-ignore]

        frame: pl.LazyFrame = scan_telemetry(root, table)
        return frame
    except ImportError:
        files = sorted((root / f"table={table}").rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{root}: no table={table} Parquet segments") from None
        # Segments may differ in columns (a metric that became available later): align them by name.
        return pl.concat([pl.scan_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")


def _metric_columns(frame: pl.LazyFrame, where: str) -> list[str]:
    schema = frame.collect_schema()
    for key in ("timestamp", "target"):
        if key not in schema:
            raise ValueError(f"{where}: missing column {key!r}")
    return [c for c in schema if c not in KEYS]


def _windowed(cgroups: pl.LazyFrame, windows: pl.DataFrame) -> pl.LazyFrame:
    """Telemetry rows of each (run, cgroup) inside its run's window."""
    return (
        cgroups.with_columns(pl.col("target").str.strip_chars("/"))
        .join(windows.lazy(), on="target", how="inner")
        .filter((pl.col("timestamp") >= pl.col("start")) & (pl.col("timestamp") < pl.col("end")))
    )


def _with_second(frame: pl.LazyFrame) -> pl.LazyFrame:
    second = (pl.col("timestamp") - pl.col("timestamp").min().over("run_id")).dt.total_seconds()
    return frame.with_columns(second.cast(pl.Int32).alias("second"))


def build_telemetry(root: Path, coruns: pl.DataFrame) -> tuple[pl.DataFrame, list[str], list[str]]:
    """(telemetry frame, cgroup metric names, host metric names) for the given co-runs."""
    cgroups = scan_table(root, "cgroup")
    metrics = _metric_columns(cgroups, f"{root}/table=cgroup")
    cgroups = cgroups.select("timestamp", "target", *[pl.col(m).cast(pl.Float64) for m in metrics])
    window = [pl.col("started_at").alias("start"), pl.col("ended_at").alias("end"), pl.col("run_id")]
    targets = coruns.select(pl.col("target_cgroup").alias("target"), *window)
    neighbours = coruns.select(pl.col("neighbour_cgroups").alias("target"), *window).explode("target")
    own = _windowed(cgroups, targets).select(
        "run_id", "timestamp", *[pl.col(m).alias(SELF + m) for m in metrics]
    )
    others = (
        _windowed(cgroups, neighbours.drop_nulls("target"))
        .group_by("run_id", "timestamp")
        .agg(pl.col(m).mean().alias(NEIGHBOUR_MEAN + m) for m in metrics)
    )
    telemetry = own.join(others, on=["run_id", "timestamp"], how="left")
    host_metrics: list[str] = []
    if (root / "table=host").exists():
        host = scan_table(root, "host")
        host_metrics = _metric_columns(host, f"{root}/table=host")
        host = host.select("timestamp", *[pl.col(h).cast(pl.Float64).alias(HOST + h) for h in host_metrics])
        runs_window = coruns.select(*window).lazy()
        host_rows = host.join_where(
            runs_window, pl.col("timestamp") >= pl.col("start"), pl.col("timestamp") < pl.col("end")
        ).drop("start", "end")
        telemetry = telemetry.join(host_rows, on=["run_id", "timestamp"], how="left")
    # A run alone has no neighbour rows: its neighbour_mean is zeros (flagged by has_neighbours).
    filled = [pl.col(NEIGHBOUR_MEAN + m).fill_null(0.0) for m in metrics]
    has = coruns.select("run_id", (pl.col("neighbour_cgroups").list.len() > 0).alias("_has")).lazy()
    telemetry = telemetry.join(has, on="run_id").with_columns(
        [
            pl.when(pl.col("_has")).then(pl.col(NEIGHBOUR_MEAN + m)).otherwise(f)
            for m, f in zip(metrics, filled, strict=True)
        ]
    )
    frame = _with_second(telemetry).drop("_has", "timestamp").sort("run_id", "second").collect()
    ordered = ["run_id", "second", *[p + m for p in (SELF, NEIGHBOUR_MEAN) for m in metrics]]
    return frame.select(*ordered, *[HOST + h for h in host_metrics]), metrics, host_metrics


def build_profiles(root: Path, records: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """One solo profile per config key: the telemetry of its first solo (or neighbour-solo) repeat."""
    solos = (
        records.filter(pl.col("kind").is_in(["solo", "neighbour_solo"]))
        .sort("config_key", "repeat", "started_at")
        .unique("config_key", keep="first", maintain_order=True)
    )
    window = [pl.col("started_at").alias("start"), pl.col("ended_at").alias("end")]
    targets = solos.select(
        pl.col("target_cgroup").alias("target"), *window, pl.col("config_key").alias("run_id")
    )
    cgroups = scan_table(root, "cgroup").select(
        "timestamp", "target", *[pl.col(m).cast(pl.Float64) for m in metrics]
    )
    rows = _windowed(cgroups, targets).select("run_id", "timestamp", *metrics)
    profiles = _with_second(rows).drop("timestamp").rename({"run_id": "profile_id"})
    return profiles.sort("profile_id", "second").select("profile_id", "second", *metrics).collect()


def linked_to_profiles(runs: pl.DataFrame, known: set[str]) -> pl.DataFrame:
    """Runs with ``target_profile`` and ``neighbour_profiles``: the configurations (their own, their
    neighbours') that have a solo profile among ``known``. Pooled campaigns are linked again against every
    campaign's profiles: a plan measured in parts (``parts_by: targets``) takes each configuration's solos in
    the part where it is a target, so a neighbour's profile is often in another part."""
    return runs.with_columns(
        pl.when(pl.col("config_key").is_in(list(known))).then(pl.col("config_key")).alias("target_profile"),
        pl.col("neighbours")
        .list.eval(pl.element().filter(pl.element().is_in(list(known))))
        .alias("neighbour_profiles"),
    )


@SOURCES.register("lab")
def load_lab(path: Path | None = None, **options: Any) -> RunTable:
    if path is None:
        raise ValueError("lab: needs a lab output directory, e.g. lab:var/lab-2025-01-01")
    journal = read_journal(path / "runs.jsonl")
    records, coruns, noise = read_lab_runs(path / "runs.jsonl")
    unlabelled = records.filter(pl.col("kind") == "corun").height - coruns.height
    telemetry, metrics, host_metrics = build_telemetry(path / "telemetry", coruns)
    profiles = build_profiles(path / "telemetry", records, metrics)
    known = set(profiles["profile_id"].unique())
    with_rows = set(telemetry["run_id"].unique())
    no_rows = coruns.filter(~pl.col("run_id").is_in(list(with_rows)))["run_id"].to_list()
    runs = coruns.filter(pl.col("run_id").is_in(list(with_rows))).with_columns(
        pl.col("neighbours").list.len().alias("n_neighbours"),
        (pl.col("neighbour_cgroups").list.len() > 0).alias("has_neighbours"),
        pl.lit("lab").alias("source"),
        (pl.col("ended_at") - pl.col("started_at")).dt.total_seconds().alias("duration_s"),
    )
    runs = linked_to_profiles(runs, known)
    runs = runs.drop("target_cgroup", "neighbour_cgroups").sort("started_at", "run_id")
    meta = {
        "source": "lab",
        "path": str(path),
        "noise_floor": noise,
        "runs_by_kind": dict(records.group_by("kind").len().iter_rows()),
        "dropped": {"no_solo_reference": unlabelled, "no_telemetry": no_rows},
        "host_metrics": host_metrics,
    }
    extras = {"records": labelled_records(journal)}
    plan = path / "plan.yaml"
    if plan.is_file():
        meta["plan"] = plan.read_text()
    if any(record.kind in ("probe", "pressure") for record in journal):
        # Probe runs are read through the plan that names their aggressors and victims.
        sensitivity, pressure = probe_vectors(journal, load_plan(plan))
        if sensitivity.height:
            extras["sensitivity"] = sensitivity
        if pressure.height:
            extras["pressure"] = pressure
    groups = metric_groups_for(metrics + host_metrics)
    table = RunTable(conform_runs(runs), telemetry, profiles, groups, meta, extras)
    return table.validate(origin=str(path))


def is_lab_directory(path: Path) -> bool:
    """A ``cotenant lab run`` output directory (rather than a dataset packed from one)."""
    return (path / "runs.jsonl").is_file()


def load_campaign(path: Path) -> RunTable:
    """One campaign: a lab output directory (``runs.jsonl``), or a dataset packed from one by ``cotenant
    datasets pack`` (``runs.parquet`` + ``meta.json``; it keeps every run record with its label, the
    labelled co-runs' telemetry, the solo profiles and the probe vectors, so a campaign whose raw
    directory is gone can still be packed with others)."""
    if is_lab_directory(path):
        return load_lab(path)
    if (path / "runs.parquet").is_file() and (path / "meta.json").is_file():
        table = RunTable.load(path)
        if "records" not in table.extras:
            raise ValueError(f"{path}: a packed dataset without records.parquet cannot be packed again")
        return table
    raise ValueError(
        f"{path}: neither a lab directory (runs.jsonl) nor a packed dataset (runs.parquet and meta.json)"
    )


def load_labs(paths: Sequence[Path]) -> RunTable:
    """Several lab campaigns as one table (one lab directory: ``load_lab``'s); each is a lab directory or a
    packed dataset (``load_campaign``). Each campaign's runs keep the labels
    of its own solo references (no label compares runs of two campaigns, which a machine's drift between them
    would bias); run ids are prefixed by the campaign's directory name; a configuration measured by more than
    one campaign keeps the first listed campaign's profile and pressure probes (its runs in every campaign
    point to that profile), and a program's sensitivity the first campaign's that probed it. The rates
    relative to the solo profile (``vs_solo__``, ``RunTable.with_solo_relative``) are read within each
    campaign, against that campaign's own profile of the run's configuration, as the labels are: campaigns
    may run on different machines (one's disk, another's cores), and a ratio of a rate measured on one to a
    profile measured on another reads the machines' difference as a slowdown. The noise floor is over every
    campaign's solo runs; solo drift is read within each campaign."""
    if len(paths) == 1 and is_lab_directory(paths[0]):
        return load_lab(paths[0]).with_solo_relative()
    names = [path.name for path in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"lab directories must have distinct names (their runs are prefixed by it): {names}")
    tables = [load_campaign(path).with_solo_relative() for path in paths]

    def prefixed(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        renamed = frame.with_columns((pl.lit(f"{name}/") + pl.col("run_id")).alias("run_id"))
        if "references" in frame.columns:
            renamed = renamed.with_columns(pl.col("references").list.eval(pl.lit(f"{name}/") + pl.element()))
        return renamed

    def first_per(frames: list[pl.DataFrame], key: str) -> pl.DataFrame:
        kept: list[pl.DataFrame] = []
        seen: set[str] = set()
        for frame in frames:
            kept.append(frame.filter(~pl.col(key).is_in(list(seen))))
            seen |= set(frame[key].unique().to_list())
        return pl.concat(kept, how="diagonal_relaxed")

    def with_node_cores(table: RunTable) -> pl.DataFrame:
        """Its runs with the cores of the node each measured written out (``RunTable.run_cores``; null where
        unknown): the pooled table's machine (the packer's) need not be each campaign's."""
        return table.runs.with_columns(pl.Series(RUN_HOST_CORES, table.run_cores()).fill_nan(None))

    runs = pl.concat(
        [prefixed(with_node_cores(t), n) for n, t in zip(names, tables, strict=True)], how="diagonal_relaxed"
    )
    telemetry = pl.concat(
        [prefixed(t.telemetry, n) for n, t in zip(names, tables, strict=True)], how="diagonal_relaxed"
    )
    profiles = first_per([t.profiles for t in tables], "profile_id")
    runs = linked_to_profiles(runs, set(profiles["profile_id"].unique()))
    extras: dict[str, pl.DataFrame] = {
        "records": pl.concat(
            [
                prefixed(t.extras["records"], n).with_columns(pl.lit(n).alias("campaign"))
                for n, t in zip(names, tables, strict=True)
            ],
            how="diagonal_relaxed",
        )
    }
    for extra, key in (("sensitivity", "application"), ("pressure", "config_key")):
        found = [t.extras[extra] for t in tables if extra in t.extras]
        if found:
            extras[extra] = first_per(found, key)
    records = extras["records"]
    labelled = records.filter(pl.col("ratio").is_not_null())
    noise = noise_facts(labelled, records)
    noise["by_campaign"] = {
        name: asdict(noise_floor(labelled.filter(pl.col("campaign") == name))) for name in names
    }
    kinds: dict[str, int] = {}
    for table in tables:
        for kind, count in table.meta["runs_by_kind"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    meta = {
        "source": "lab",
        "path": ", ".join(str(path) for path in paths),
        "campaigns": names,
        "noise_floor": noise,
        "runs_by_kind": kinds,
        "dropped": {
            "no_solo_reference": sum(t.meta["dropped"]["no_solo_reference"] for t in tables),
            "no_telemetry": [
                f"{n}/{r}"
                for n, t in zip(names, tables, strict=True)
                for r in t.meta["dropped"]["no_telemetry"]
            ],
        },
        "host_metrics": sorted({m for t in tables for m in t.meta["host_metrics"]}),
    }
    plans = [
        f"# {n}\n{t.meta['plan'].rstrip()}" for n, t in zip(names, tables, strict=True) if t.meta.get("plan")
    ]
    if plans:
        meta["plan"] = "\n\n".join(plans) + "\n"
    groups = {m: g for t in tables for m, g in t.metric_groups.items()}
    table = RunTable(
        conform_runs(runs.sort("started_at", "run_id")), telemetry, profiles, groups, meta, extras
    )
    return table.validate(origin=", ".join(names))
