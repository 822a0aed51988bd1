"""RunTable -> NumPy training arrays, fast and with bounded memory (no torch here; see ``torch_data``).

The telemetry frame is read in row chunks straight into the output (normalised in place, missing values as
0 = the training mean), so peak memory is the output plus one chunk rather than a second full copy. Run order
and per-run step positions come from two integer columns, so the (wide) frame is never sorted or filtered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from cotenant.collectors.summaries import summarise, summary_names
from cotenant.datasets.splits import FeatureStats
from cotenant.datasets.table import SELF, RunTable

CHUNK_ROWS = 16_384


def monitoring_features(
    table: RunTable, include_host: bool = True, include_own_levels: bool = True, include_probes: bool = False
) -> list[str]:
    """Per-second input columns: (optionally) self__*, neighbour_mean__*, vs_solo__* (where the table has
    solo profiles), (optionally) host__* and (optionally, where ``RunTable.with_probe_inputs`` added them)
    the per-run probes__*."""
    own = table.self_columns if include_own_levels else []
    host = table.host_columns if include_host else []
    probes = table.probe_input_columns if include_probes else []
    return own + table.neighbour_columns + table.solo_relative_columns + host + probes


@dataclass(frozen=True)
class RowPlan:
    """Where each selected telemetry row goes: output run index and step, in read order."""

    rows: np.ndarray  # [N] row numbers in the telemetry frame, ordered by (run, second)
    run_index: np.ndarray  # [N]
    step: np.ndarray  # [N]
    lengths: np.ndarray  # [B] steps kept per run
    contiguous: bool  # rows == arange(rows[0], rows[0] + N): read with zero-copy slices


def plan_rows(telemetry: pl.DataFrame, run_ids: Sequence[str], max_steps: int | None = None) -> RowPlan:
    position = {run_id: i for i, run_id in enumerate(run_ids)}
    index = (
        telemetry["run_id"].replace_strict(position, default=-1, return_dtype=pl.Int64).to_numpy()
    )  # [rows]
    second = telemetry["second"].to_numpy()
    rows = np.flatnonzero(index >= 0)
    key = index[rows] * (int(second.max(initial=0)) + 1) + second[rows]
    if not np.all(key[1:] > key[:-1]):
        rows = rows[np.argsort(key, kind="stable")]
    run_index = index[rows]
    starts = np.searchsorted(run_index, np.arange(len(run_ids)))
    step = np.arange(len(rows)) - starts[run_index]
    if max_steps is not None:
        keep = step < max_steps
        rows, run_index, step = rows[keep], run_index[keep], step[keep]
    lengths = np.bincount(run_index, minlength=len(run_ids))
    missing = [run_ids[i] for i in np.flatnonzero(lengths == 0)[:3]]
    if missing:
        raise ValueError(f"telemetry: no rows for run(s) {missing}")
    contiguous = bool(len(rows) == 0 or rows[-1] - rows[0] == len(rows) - 1)
    return RowPlan(rows, run_index, step, lengths, contiguous)


def iter_chunks(
    telemetry: pl.DataFrame,
    features: list[str],
    plan: RowPlan,
    stats: FeatureStats,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[tuple[slice, np.ndarray]]:
    """(slice into the plan, normalised float32 values [n, F]) for consecutive chunks of the plan."""
    if stats.names != features:
        raise ValueError("normalisation statistics were fit on different features than requested")
    columns = telemetry.select(features)
    for start in range(0, len(plan.rows), chunk_rows):
        part = slice(start, min(start + chunk_rows, len(plan.rows)))
        if plan.contiguous:
            frame = columns.slice(int(plan.rows[part.start]), part.stop - part.start)
        else:
            frame = columns[plan.rows[part]]
        # Column-major export is a memcpy per column (row-major would interleave): about 2x faster. Writable:
        # a single float32 column without nulls exports as a read-only view of the frame, and the transform
        # works in place.
        values = frame.select(pl.all().cast(pl.Float32)).to_numpy(order="fortran", writable=True)
        yield part, stats.transform(values)


def padded(
    telemetry: pl.DataFrame,
    run_ids: Sequence[str],
    features: list[str],
    stats: FeatureStats,
    max_steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``x [B, T, F] float32`` (normalised, zero padding) and ``mask [B, T] bool`` (True = real step)."""
    plan = plan_rows(telemetry, run_ids, max_steps)
    steps = int(plan.lengths.max(initial=0))
    x = np.zeros((len(run_ids), steps, len(features)), dtype=np.float32)  # [B, T, F]
    for part, values in iter_chunks(telemetry, features, plan, stats):
        x[plan.run_index[part], plan.step[part]] = values
    mask = np.arange(steps)[None, :] < plan.lengths[:, None]  # [B, T]
    return x, mask


def stacked(
    telemetry: pl.DataFrame,
    run_ids: Sequence[str],
    features: list[str],
    stats: FeatureStats,
    max_steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All runs' rows back to back: ``values [N, F] float32`` and ``offsets [B + 1]`` (per-item access)."""
    plan = plan_rows(telemetry, run_ids, max_steps)
    values = np.empty((len(plan.rows), len(features)), dtype=np.float32)
    for part, chunk in iter_chunks(telemetry, features, plan, stats):
        values[part] = chunk
    return values, np.concatenate([[0], np.cumsum(plan.lengths)])


def profile_summaries(profiles: pl.DataFrame, metrics: list[str]) -> tuple[list[str], pl.DataFrame]:
    """Per-metric summaries of each solo profile over time (the placement inputs, F_p = 3 x metrics), by the
    one summary function that the service and the agent's compact pushes use too (``summarise``)."""
    names = summary_names(metrics)
    ids: list[str] = []
    rows: list[np.ndarray] = []
    for (profile_id,), frame in profiles.group_by("profile_id", maintain_order=True):
        ids.append(str(profile_id))
        rows.append(summarise(frame.select(pl.col(metrics).cast(pl.Float64)).to_numpy()))
    matrix = np.stack(rows) if rows else np.zeros((0, len(names)))
    summary = pl.DataFrame(matrix, schema=names, orient="row").with_columns(
        pl.Series("profile_id", ids, dtype=pl.Utf8)
    )
    return names, summary.select("profile_id", *names).sort("profile_id")


# Placement inputs from the lab's probes, appended to a workload's profile summary: each measured probe P as
# a deficit (1 - P: 0 is harmless) under ``probe:<column>``, NaN where not measured, and ``probe:measured``
# (1 when any probe of the workload was measured, else 0). Not normalised (``FeatureStats.keeping``).
PROBE_PREFIX = "probe:"
PROBE_MEASURED = PROBE_PREFIX + "measured"
# 1 when the row summarises a live, co-located window (an incumbent's telemetry), 0 for a solo profile: a
# model estimating unmeasured probes from telemetry needs to know which kind it reads.
PROBE_LIVE = PROBE_PREFIX + "live"
# 1 when the workload's metric is a latency (lower is better: the lab's requests served at an offered load),
# 0 for a throughput or rate, NaN where not known (a service's incumbent, a registered profile): a request
# waits for the CPU where a batch job only shares it, and a model charging that waiting needs to know which.
PROBE_LATENCY = PROBE_PREFIX + "latency"


def probe_columns(table: RunTable) -> list[str]:
    """The table's probe columns (``sens_<resource>_<level>``, ``press_<victim>``), in a fixed order."""
    sensitivity, pressure = table.extras.get("sensitivity"), table.extras.get("pressure")
    columns = [c for c in (sensitivity.columns if sensitivity is not None else []) if c != "application"]
    columns += [c for c in (pressure.columns if pressure is not None else []) if c != "config_key"]
    return sorted(columns)


def probe_deficits(table: RunTable, profile_ids: Sequence[str]) -> tuple[list[str], pl.DataFrame]:
    """Per profile (a workload configuration) its probe deficits: sensitivity of its program
    (``program_of``), pressure of the configuration itself; the names, and a frame keyed by profile_id."""
    from cotenant.datasets.splits import program_of

    columns = probe_columns(table)
    names = [PROBE_PREFIX + c for c in columns] + [PROBE_MEASURED, PROBE_LIVE, PROBE_LATENCY]
    frame = pl.DataFrame(
        {"profile_id": list(profile_ids), "application": [program_of(p) for p in profile_ids]},
        schema={"profile_id": pl.Utf8, "application": pl.Utf8},
    )
    sensitivity, pressure = table.extras.get("sensitivity"), table.extras.get("pressure")
    if sensitivity is not None:
        frame = frame.join(sensitivity, on="application", how="left")
    if pressure is not None:
        frame = frame.join(pressure.rename({"config_key": "profile_id"}), on="profile_id", how="left")
    frame = frame.join(latency_metrics(table), on="application", how="left")
    measured = pl.any_horizontal([pl.col(c).is_not_null() for c in columns]) if columns else pl.lit(False)
    return names, frame.select(
        "profile_id",
        *[(1.0 - pl.col(c).cast(pl.Float64)).alias(PROBE_PREFIX + c) for c in columns],
        measured.cast(pl.Float64).alias(PROBE_MEASURED),
        pl.lit(0.0).alias(PROBE_LIVE),  # profiles are solo
        pl.col(PROBE_LATENCY).cast(pl.Float64),
    )


def latency_metrics(table: RunTable) -> pl.DataFrame:
    """Per application whether its metric is a latency (``PROBE_LATENCY``: 1.0 when lower is better)."""
    return (
        table.runs.group_by("application")
        .agg((~pl.col("higher_is_better").cast(pl.Boolean)).any().cast(pl.Float64).alias(PROBE_LATENCY))
        .with_columns(pl.col("application").cast(pl.Utf8))
    )


def live_rows(table: RunTable, run_ids: Sequence[str], names: list[str]) -> np.ndarray:
    """Each run's target as a service sees an incumbent: its telemetry during the co-run (contended), in
    the layout of ``placement_inputs`` (raw: summaries, then the target's probe deficits, measured flag, and
    ``probe:live`` = 1); what a model estimating probes from live telemetry is trained on."""
    summary_names = [n for n in names if not n.startswith(PROBE_PREFIX)]
    metrics = list(dict.fromkeys(n.rsplit("__", 1)[0] for n in summary_names))
    present = [m for m in metrics if SELF + m in table.telemetry.columns]
    telemetry = table.telemetry.filter(pl.col("run_id").is_in(list(run_ids)))
    windows = {
        str(run_id): frame.select([SELF + m for m in present]).cast(pl.Float64).to_numpy()
        for (run_id,), frame in telemetry.sort("run_id", "second").group_by("run_id", maintain_order=True)
    }
    targets = dict(table.runs.select("run_id", "target_profile").iter_rows())
    probe_names, deficits = probe_deficits(table, sorted({str(targets[r]) for r in run_ids}))
    by_profile = {row[0]: row[1:] for row in deficits.select("profile_id", *probe_names).iter_rows()}
    out = np.full((len(run_ids), len(names)), np.nan)
    columns = [metrics.index(m) for m in present]
    for i, run_id in enumerate(run_ids):
        window = np.full((len(windows.get(run_id, [])) or 1, len(metrics)), np.nan)
        if run_id in windows:
            window[:, columns] = windows[run_id]
        out[i, : len(summary_names)] = summarise(window)
        out[i, len(summary_names) :] = by_profile[str(targets[run_id])]
    out[:, names.index(PROBE_LIVE)] = 1.0
    return out


def probe_results(table: RunTable, profile_id: str) -> dict[str, float]:
    """A workload configuration's measured probes as the service takes them: P by probe name (its program's
    sensitivity, its own pressure); empty when it was never probed."""
    from cotenant.datasets.splits import program_of

    found: dict[str, float] = {}
    for frame, key, value in (
        (table.extras.get("sensitivity"), "application", program_of(profile_id)),
        (table.extras.get("pressure"), "config_key", profile_id),
    ):
        if frame is None:
            continue
        rows = frame.filter(pl.col(key) == value).drop(key)
        if rows.height:
            found |= {name: float(v) for name, v in rows.row(0, named=True).items() if v is not None}
    return found


def placement_inputs(table: RunTable, probes: bool) -> tuple[list[str], pl.DataFrame]:
    """Per profile the placement model's input row: the profile summary, and with ``probes`` its probe
    deficits after it (``probe_deficits``); the names, and a frame keyed by profile_id."""
    names, summary = profile_summaries(table.profiles, table.profile_metrics)
    if not probes:
        return names, summary
    probe_names, deficits = probe_deficits(table, summary["profile_id"].to_list())
    return names + probe_names, summary.join(deficits, on="profile_id", how="left")


def placement_arrays(
    table: RunTable, run_ids: Sequence[str], stats: FeatureStats, max_neighbours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``newcomer [B, F_p]``, ``neighbours [B, K, F_p]``, ``neighbour_mask [B, K]`` for runs with profiles."""
    names, summary = placement_inputs(table, probes=PROBE_MEASURED in stats.names)
    matrix = stats.transform(summary.select(names).to_numpy().astype(np.float32))  # [P, F_p]
    row_of = {pid: i for i, pid in enumerate(summary["profile_id"])}
    runs = table.runs.select("run_id", "target_profile", "neighbour_profiles")
    by_id = {r[0]: r for r in runs.iter_rows()}
    k = max(1, max_neighbours)
    newcomer = np.zeros((len(run_ids), matrix.shape[1]), dtype=np.float32)
    neighbours = np.zeros((len(run_ids), k, matrix.shape[1]), dtype=np.float32)
    mask = np.zeros((len(run_ids), k), dtype=bool)
    for b, run_id in enumerate(run_ids):
        _, target, others = by_id[run_id]
        if target not in row_of:
            raise ValueError(f"runs: run {run_id!r} has no target_profile; select runs with one first")
        newcomer[b] = matrix[row_of[target]]
        for j, pid in enumerate(others[:k]):
            neighbours[b, j] = matrix[row_of[pid]]
            mask[b, j] = True
    return newcomer, neighbours, mask
