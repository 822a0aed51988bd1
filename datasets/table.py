"""The RunTable: one schema for every source (docs/architecture.md section 3).

A RunTable is four things held together: ``runs`` (one row per labelled execution), ``telemetry`` (per run per
second, ``self__<m>`` / ``neighbour_mean__<m>`` / ``host__<h>`` Float64 columns), ``profiles`` (solo profiles
for the placement task, ``<m>`` columns) and ``metric_groups``. It saves to a directory of zstd Parquet files
plus ``meta.json``; ``validate`` names the offending file and column when something is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from cotenant.collectors.base import MetricGroup
from cotenant.datasets.probe_inputs import PROBE_INPUT

SELF = "self__"
NEIGHBOUR_MEAN = "neighbour_mean__"
HOST = "host__"
# Derived per-second columns: the target's work rates over its own solo profile's means
# (``collectors.ratios.SOLO_RELATIVE``; ``RunTable.with_solo_relative``).
VS_SOLO = "vs_solo__"
# The resource vocabulary is the collector's (one owner), from telemetry to the service's driving resource.
METRIC_GROUPS: tuple[str, ...] = tuple(group.value for group in MetricGroup)

# Required columns of `runs` with the dtype family they must have. Extra columns are allowed (sources add
# `kind`, `config_key`, ...); the listed ones are the contract the models rely on.
RUN_COLUMNS: dict[str, type[pl.DataType] | pl.DataType] = {
    "run_id": pl.Utf8,
    "application": pl.Utf8,
    "scenario": pl.Utf8,
    "load": pl.Utf8,
    "neighbours": pl.List(pl.Utf8),
    "n_neighbours": pl.Int32,
    # Flag for the models: False means the neighbour_mean__ columns are zeros because nobody ran beside it.
    "has_neighbours": pl.Boolean,
    "label": pl.Float64,
    "performance": pl.Float64,
    "solo_performance": pl.Float64,
    "higher_is_better": pl.Boolean,
    "source": pl.Utf8,
    "started_at": pl.Datetime("ms", "UTC"),
    "target_profile": pl.Utf8,
    "neighbour_profiles": pl.List(pl.Utf8),
}
# An optional ``runs`` column: the cores of the node a run measured where its plan pinned it to fewer CPUs
# than the machine has (the lab's ``host_cpus``); null or absent: the machine's (``RunTable.host_cores``).
RUN_HOST_CORES = "host_cores"
# What a compact save keeps of each metric: Float32 rounded to 16 significant bits (Float32 has 24), a
# relative error under 2**-16 (1.5e-5), finer than the sensors read (jiffies, pages, PSI's hundredths of a
# percent); zstd stores the zeroed low bits for almost nothing (the bundled telemetry: a fifth less than as
# plain Float32).
COMPACT_SIGNIFICANT_BITS = 16
FILES = {"runs": "runs.parquet", "telemetry": "telemetry.parquet", "profiles": "profiles.parquet"}
# Frames a source may add (the lab: every record, probes); saved and loaded when present.
#   records: every execution of the lab (solo, co-run, probe, pressure, neighbour-solo) with its performance,
#            label where it has one and the host's background load before it: the noise floor can be
#            recomputed from it.
#   sensitivity: per application, P against each calibrated aggressor level (``sens_<resource>_<level>``).
#   pressure: per workload configuration, each fixed victim's P beside it (``press_<resource>``).
EXTRA_FILES = {
    "records": "records.parquet",
    "sensitivity": "sensitivity.parquet",
    "pressure": "pressure.parquet",
}


class RunTableError(ValueError):
    """A RunTable that breaks the schema; the message names the file (or frame) and the column."""


def _check_columns(frame: pl.DataFrame, where: str, required: dict[str, Any]) -> None:
    for name, dtype in required.items():
        if name not in frame.columns:
            raise RunTableError(f"{where}: missing column {name!r} (have: {', '.join(frame.columns)})")
        if frame.schema[name] != dtype:
            raise RunTableError(f"{where}: column {name!r} has type {frame.schema[name]}, expected {dtype}")


def _check_floats(frame: pl.DataFrame, where: str, columns: list[str]) -> None:
    for name in columns:
        if frame.schema[name] != pl.Float64:
            raise RunTableError(
                f"{where}: metric column {name!r} has type {frame.schema[name]}, expected Float64"
            )


@dataclass
class RunTable:
    runs: pl.DataFrame
    telemetry: pl.DataFrame
    profiles: pl.DataFrame
    metric_groups: dict[str, str]
    # Free-form provenance: source, noise_floor, plan, machine, ... (kept in meta.json).
    meta: dict[str, Any] = field(default_factory=dict)
    # Optional frames named in EXTRA_FILES (absent for sources that have none).
    extras: dict[str, pl.DataFrame] = field(default_factory=dict)

    # ---- column views -------------------------------------------------------------------------------------
    @property
    def self_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c.startswith(SELF)]

    @property
    def neighbour_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c.startswith(NEIGHBOUR_MEAN)]

    @property
    def solo_relative_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c.startswith(VS_SOLO)]

    @property
    def host_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c.startswith(HOST)]

    @property
    def metrics(self) -> list[str]:
        """Per-cgroup metric names (without prefix), in telemetry column order."""
        return [c.removeprefix(SELF) for c in self.self_columns]

    @property
    def host_cores(self) -> float | None:
        """The measuring machine's CPU cores (``meta["machine"]``), None where the source does not say."""
        cores = (self.meta.get("machine") or {}).get("cores")
        return float(cores) if cores else None

    def run_cores(self, run_ids: list[str] | None = None) -> np.ndarray:
        """The cores of the node each run measured (``[R]``, in ``run_ids``' order, else ``runs``'): its own
        ``host_cores`` where a plan pinned it, else the machine's (``host_cores``); NaN where neither
        says."""
        runs = self.runs
        if run_ids is not None:
            order = pl.DataFrame({"run_id": list(run_ids)}, schema={"run_id": pl.Utf8})
            runs = order.join(runs, on="run_id", how="left", maintain_order="left")
        machine = self.host_cores
        own = (
            runs[RUN_HOST_CORES].cast(pl.Float64)
            if RUN_HOST_CORES in runs.columns
            else pl.Series([None] * runs.height, dtype=pl.Float64)
        )
        return own.fill_null(np.nan if machine is None else machine).to_numpy().astype(np.float64)

    @property
    def profile_metrics(self) -> list[str]:
        return [c for c in self.profiles.columns if c not in ("profile_id", "second")]

    def with_run_shares(self) -> RunTable:
        """Every share of ``collectors.ratios`` whose inputs the table has, as a metric of its own: its
        ``self__`` and ``neighbour_mean__`` columns (the latter from the neighbours' mean rates, as the
        service computes it) and its profile column. Tables that have them are returned as they are."""
        from cotenant.collectors.ratios import SHARES

        telemetry, profiles, groups = self.telemetry, self.profiles, dict(self.metric_groups)
        for name, (running, waiting) in SHARES.items():
            if name in self.metrics or running not in self.metrics or waiting not in self.metrics:
                continue
            telemetry = telemetry.with_columns(
                _share(prefix + running, prefix + waiting).alias(prefix + name)
                for prefix in (SELF, NEIGHBOUR_MEAN)
            )
            if running in profiles.columns and waiting in profiles.columns:
                profiles = profiles.with_columns(_share(running, waiting).alias(name))
            groups[name] = groups.get(running, MetricGroup.CPU.value)
        if telemetry is self.telemetry:
            return self
        return RunTable(self.runs, telemetry, profiles, groups, dict(self.meta), dict(self.extras))

    def with_solo_relative(self) -> RunTable:
        """Every ``collectors.ratios.SOLO_RELATIVE`` metric that both the telemetry and the profiles have, as
        a ``vs_solo__`` column: the target's rate each second over its own solo profile's mean
        (``solo_relative``, as the service computes it from a registered profile); null for runs without a
        profile. With the CPU and context-switch rates comes the profile's switch density
        (``vs_solo__`` + ``SWITCH_DENSITY``, the same every second of a run), added alone to a table that
        has the rates without it (one packed before it existed). Tables without profiles, or that have the
        columns, are returned as they are."""
        from cotenant.collectors.ratios import (
            CPU_RATE,
            SOLO_RELATIVE,
            SWITCH_DENSITY,
            SWITCH_RATE,
            solo_means,
            solo_relative,
            switch_density,
        )

        metrics = [m for m in SOLO_RELATIVE if m in self.metrics and m in self.profile_metrics]
        has_rates = bool(self.solo_relative_columns)
        # A table packed before the density existed has the rates and lacks it: it is added alone.
        wants_density = {SWITCH_RATE, CPU_RATE} <= set(metrics) and (
            VS_SOLO + SWITCH_DENSITY not in self.telemetry.columns
        )
        if not metrics or self.profiles.is_empty() or (has_rates and not wants_density):
            return self
        means = {
            str(profile_id): solo_means({m: frame[m].to_numpy() for m in metrics})
            for (profile_id,), frame in self.profiles.group_by("profile_id")
        }
        profile_of = dict(self.runs.select("run_id", "target_profile").iter_rows())
        run_ids = self.telemetry["run_id"].to_list()
        columns = []
        for metric in [] if has_rates else metrics:
            by_run = {run: means.get(str(p), {}).get(metric, np.nan) for run, p in profile_of.items()}
            solo = np.array([by_run.get(run, np.nan) for run in run_ids], dtype=np.float64)
            values = solo_relative(self.telemetry[SELF + metric].cast(pl.Float64).to_numpy(), solo)
            columns.append(pl.Series(VS_SOLO + metric, values, dtype=pl.Float64, nan_to_null=True))
        if wants_density:
            density = {run: switch_density(means.get(str(p), {})) for run, p in profile_of.items()}
            values = np.array([density.get(run, np.nan) for run in run_ids], dtype=np.float64)
            columns.append(pl.Series(VS_SOLO + SWITCH_DENSITY, values, dtype=pl.Float64, nan_to_null=True))
        telemetry = self.telemetry.with_columns(columns)
        groups, meta, extras = self.metric_groups, dict(self.meta), dict(self.extras)
        return RunTable(self.runs, telemetry, self.profiles, groups, meta, extras)

    def with_probe_inputs(self) -> RunTable:
        """The lab's probe results as per-run monitoring inputs (``datasets.probe_inputs``): every run's
        target's sensitivity deficits and its neighbours' summed pressure deficits, the same every second,
        under ``PROBE_INPUT``, each in its probe's metric group. Tables without probes, or that have the
        columns, are returned as they are."""
        from cotenant.datasets.probe_inputs import metric_group_of, probe_input_names, probe_inputs, probe_of
        from cotenant.datasets.tensors import probe_columns, probe_results

        names = probe_input_names(probe_columns(self))
        if not names or names[0] in self.telemetry.columns:
            return self
        runs = self.runs.select("run_id", "target_profile", "neighbour_profiles")
        profiles = set(runs["target_profile"].drop_nulls()) | set(
            runs["neighbour_profiles"].explode().drop_nulls()
        )
        results = {str(p): probe_results(self, str(p)) for p in profiles}
        rows = [
            {
                "run_id": run_id,
                **probe_inputs(
                    names, results.get(str(target), {}), [results.get(str(n), {}) for n in neighbours or []]
                ),
            }
            for run_id, target, neighbours in runs.iter_rows()
        ]
        schema = {"run_id": pl.Utf8} | {name: pl.Float64 for name in names}
        per_run = pl.DataFrame(rows, schema=schema).fill_nan(None)
        telemetry = self.telemetry.join(per_run, on="run_id", how="left", maintain_order="left")
        groups = dict(self.metric_groups) | {
            name.removeprefix(PROBE_INPUT): metric_group_of(probe_of(name)) for name in names
        }
        return RunTable(self.runs, telemetry, self.profiles, groups, dict(self.meta), dict(self.extras))

    @property
    def probe_input_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c.startswith(PROBE_INPUT)]

    def select_runs(self, run_ids: list[str] | pl.Series) -> RunTable:
        """The sub-table of the given runs (profiles and extras are per workload, so they are kept whole)."""
        ids = pl.Series("run_id", list(run_ids), dtype=pl.Utf8)
        return RunTable(
            runs=self.runs.filter(pl.col("run_id").is_in(ids.implode())),
            telemetry=self.telemetry.filter(pl.col("run_id").is_in(ids.implode())),
            profiles=self.profiles,
            metric_groups=self.metric_groups,
            meta=dict(self.meta),
            extras=dict(self.extras),
        )

    # ---- validation ----------------------------------------------------------------------------------------
    def validate(self, origin: str = "RunTable") -> RunTable:
        """Raise RunTableError naming file and column for any schema break; return self when fine."""
        runs_at, tel_at, prof_at = (f"{origin}/{FILES[k]}" for k in ("runs", "telemetry", "profiles"))
        _check_columns(self.runs, runs_at, RUN_COLUMNS)
        if self.runs["run_id"].is_duplicated().any():
            dup = self.runs.filter(pl.col("run_id").is_duplicated())["run_id"][0]
            raise RunTableError(f"{runs_at}: column 'run_id' has duplicate value {dup!r}")
        labels = self.runs["label"]
        bad = self.runs.filter(labels.is_null() | (labels <= 0) | (labels > 1) | labels.is_nan())
        if bad.height:
            raise RunTableError(
                f"{runs_at}: column 'label' must be in (0, 1]; run {bad['run_id'][0]!r} has {bad['label'][0]}"
            )
        _check_columns(self.telemetry, tel_at, {"run_id": pl.Utf8, "second": pl.Int32})
        metric_cols = [c for c in self.telemetry.columns if c not in ("run_id", "second")]
        for name in metric_cols:
            if not name.startswith((SELF, NEIGHBOUR_MEAN, HOST, VS_SOLO, PROBE_INPUT)):
                raise RunTableError(
                    f"{tel_at}: column {name!r} has no self__/neighbour_mean__/host__/vs_solo__/probes__ "
                    "prefix"
                )
        _check_floats(self.telemetry, tel_at, metric_cols)
        own = {c.removeprefix(SELF) for c in self.self_columns}
        others = {c.removeprefix(NEIGHBOUR_MEAN) for c in self.neighbour_columns}
        if own != others:
            missing = sorted(own.symmetric_difference(others))[0]
            raise RunTableError(f"{tel_at}: metric {missing!r} lacks its self__/neighbour_mean__ twin")
        missing_runs = set(self.runs["run_id"]) - set(self.telemetry["run_id"].unique())
        if missing_runs:
            raise RunTableError(f"{tel_at}: column 'run_id' has no rows for run {sorted(missing_runs)[0]!r}")
        _check_columns(self.profiles, prof_at, {"profile_id": pl.Utf8, "second": pl.Int32})
        _check_floats(self.profiles, prof_at, self.profile_metrics)
        known_profiles = set(self.profiles["profile_id"].unique())
        referenced = set(self.runs["target_profile"].drop_nulls()) | set(
            self.runs["neighbour_profiles"].explode().drop_nulls()
        )
        if referenced - known_profiles:
            raise RunTableError(
                f"{runs_at}: column 'target_profile'/'neighbour_profiles' names unknown profile "
                f"{sorted(referenced - known_profiles)[0]!r}"
            )
        for key in self.extras:
            if key not in EXTRA_FILES:
                raise RunTableError(f"{origin}: unknown extra frame {key!r}; known: {', '.join(EXTRA_FILES)}")
        for metric, group in self.metric_groups.items():
            if group not in METRIC_GROUPS:
                raise RunTableError(
                    f"{origin}/meta.json: metric_groups[{metric!r}] = {group!r} is not a group"
                )
        return self

    # ---- persistence ---------------------------------------------------------------------------------------
    def save(self, directory: Path, compression_level: int = 19, compact: bool = False) -> dict[str, int]:
        """Write runs/telemetry/profiles Parquet (zstd) + meta.json; return bytes written per file.

        ``compact`` stores metric columns as Float32 rounded to ``COMPACT_SIGNIFICANT_BITS`` (they load back
        as Float64): well under half the size, and still more digits than any of the sensors have.
        """
        directory.mkdir(parents=True, exist_ok=True)
        sizes: dict[str, int] = {}
        frames = [("runs", self.runs), ("telemetry", self.telemetry), ("profiles", self.profiles)]
        for key, frame in [*frames, *self.extras.items()]:
            if compact and key in ("telemetry", "profiles"):
                frame = compact_floats(frame)
            path = directory / {**FILES, **EXTRA_FILES}[key]
            tmp = path.with_suffix(".tmp")
            frame.write_parquet(tmp, compression="zstd", compression_level=compression_level)
            tmp.replace(path)
            sizes[path.name] = path.stat().st_size
        meta = {"metric_groups": self.metric_groups, "meta": self.meta}
        (directory / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
        sizes["meta.json"] = (directory / "meta.json").stat().st_size
        return sizes

    @classmethod
    def load(cls, directory: Path) -> RunTable:
        missing = [name for name in [*FILES.values(), "meta.json"] if not (directory / name).is_file()]
        if missing:
            raise RunTableError(f"{directory}: not a saved RunTable (missing {', '.join(missing)})")
        frames = {
            key: pl.read_parquet(directory / name).with_columns(pl.col(pl.Float32).cast(pl.Float64))
            for key, name in FILES.items()
        }
        meta = json.loads((directory / "meta.json").read_text())
        extras = {
            key: pl.read_parquet(directory / name)
            for key, name in EXTRA_FILES.items()
            if (directory / name).is_file()
        }
        table = cls(
            frames["runs"],
            frames["telemetry"],
            frames["profiles"],
            meta["metric_groups"],
            meta["meta"],
            extras,
        )
        return table.validate(origin=str(directory))


def round_significant_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Float32 ``values`` rounded to nearest (ties away from zero) at ``bits`` significant bits; NaN and
    infinities kept, and a value so near the largest Float32 that rounding would overflow kept as it is."""
    rounded = np.ascontiguousarray(values, dtype=np.float32).copy()
    raw = rounded.view(np.uint32)
    dropped = 24 - bits  # Float32 stores 23 bits after the implicit leading one
    if dropped <= 0:
        return rounded
    finite = np.isfinite(rounded)
    # adding half a unit of the kept last bit carries into the exponent when the mantissa overflows: the
    # correctly rounded value (the IEEE layout keeps sign, exponent and mantissa in order)
    raw[finite] = (raw[finite] + np.uint32(1 << (dropped - 1))) & np.uint32(
        (0xFFFFFFFF << dropped) & 0xFFFFFFFF
    )
    overflowed = finite & ~np.isfinite(rounded)
    rounded[overflowed] = np.asarray(values, dtype=np.float32)[overflowed]
    return rounded


def compact_floats(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its Float64 columns as Float32 rounded to ``COMPACT_SIGNIFICANT_BITS`` (nulls kept)."""
    columns = [name for name, dtype in frame.schema.items() if dtype == pl.Float64]
    return frame.with_columns(
        pl.when(pl.col(name).is_null())
        .then(None)
        .otherwise(
            pl.lit(
                pl.Series(
                    name,
                    round_significant_bits(frame[name].cast(pl.Float32).to_numpy(), COMPACT_SIGNIFICANT_BITS),
                )
            )
        )
        .alias(name)
        for name in columns
    )


def _share(running: str, waiting: str) -> pl.Expr:
    """``collectors.ratios.run_share`` as a Polars expression (same values: 1 where nothing was runnable)."""
    total = pl.col(running) + pl.col(waiting)
    return (
        pl.when(total > 0).then((pl.col(running) / total).clip(0.0, 1.0)).when(total.is_not_null()).then(1.0)
    )


def empty_profiles(metrics: list[str]) -> pl.DataFrame:
    schema: dict[str, Any] = {"profile_id": pl.Utf8, "second": pl.Int32} | {m: pl.Float64 for m in metrics}
    return pl.DataFrame(schema=schema)


def conform_runs(runs: pl.DataFrame) -> pl.DataFrame:
    """Cast the contract columns to their exact dtypes (sources build them loosely); contract ones first."""
    casts = [pl.col(name).cast(dtype) for name, dtype in RUN_COLUMNS.items() if name in runs.columns]
    runs = runs.with_columns(casts)
    extra = [c for c in runs.columns if c not in RUN_COLUMNS]
    return runs.select([*[c for c in RUN_COLUMNS if c in runs.columns], *extra])
