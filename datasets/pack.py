"""Packing a lab output directory into the compact bundled dataset and its CARD.md, and summarising any table.

``pack`` keeps only what the RunTable needs (labelled co-runs with their per-second telemetry, the solo
profiles, metric groups, plan and provenance), zstd-compressed. If the Float64 files exceed the size budget
they are rewritten compact (Float32 rounded to 16 significant bits, loaded back as Float64), which the card
states.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.lab.labels import noise_text
from cotenant.datasets.sources.lab import is_lab_directory, load_labs
from cotenant.datasets.sources.lab_records import overrun_text
from cotenant.datasets.table import COMPACT_SIGNIFICANT_BITS, HOST, NEIGHBOUR_MEAN, SELF, RunTable

SIZE_LIMIT_BYTES = 50 * 1024 * 1024
# What a pack may take with its metrics as Float64: a larger one stores them compact (``RunTable.save``:
# Float32 rounded to 16 significant bits, loaded back as Float64; more digits than any sensor has). The
# bundled data ships in the package and in every clone.
FLOAT64_BUDGET_BYTES = 20 * 1024 * 1024
COMPACT_STORAGE_TEXT = (
    f" (metrics stored as Float32 rounded to {COMPACT_SIGNIFICANT_BITS} significant bits, loaded as Float64)"
)
LABEL_BINS = [i / 10 for i in range(11)]


def families_text(metrics: list[str]) -> str:
    """Metric names grouped by their first two name parts (``perf_cache_misses...`` -> ``perf_cache``), with
    counts: a card lists what is missing without a hundred names."""
    families: dict[str, int] = {}
    for metric in metrics:
        family = "_".join(metric.split("_")[:2])
        families[family] = families.get(family, 0) + 1
    return ", ".join(f"{family}_* ({count})" for family, count in sorted(families.items()))


def machine() -> dict[str, Any]:
    """The machine packing the data (the lab runs on the same host: packing follows the lab run)."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: keep platform's answer
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "kernel": platform.release(),
        "cpu_model": cpu_model,
    }


def label_histogram(labels: pl.Series) -> list[tuple[str, int]]:
    counts = []
    for low, high in itertools.pairwise(LABEL_BINS):
        n = int(((labels > low) & (labels <= high)).sum())
        counts.append((f"({low:.1f}, {high:.1f}]", n))
    return counts


def summary(table: RunTable) -> dict[str, Any]:
    """Counts used by both the card and ``cotenant datasets info``."""
    runs = table.runs
    per_app = (
        runs.group_by("application")
        .agg(
            pl.len().alias("runs"),
            pl.col("label").mean().alias("mean_p"),
            pl.col("label").min().alias("min_p"),
        )
        .sort("application")
    )
    return {
        "apps": per_app,
        "n_runs": runs.height,
        "scenarios": dict(runs.group_by("scenario").len().sort("scenario").iter_rows()),
        "neighbour_counts": dict(runs.group_by("n_neighbours").len().sort("n_neighbours").iter_rows()),
        # co-runs a placement model sees with fewer neighbours than ran: a neighbour with no solo profile
        "unprofiled_neighbours": runs.filter(
            pl.col("neighbour_profiles").list.len() < pl.col("n_neighbours")
        ).height,
        "node_cores": node_counts(table),
        "label_histogram": label_histogram(runs["label"]),
        "label_mean": float(runs["label"].mean() or 0.0),
        "seconds": table.telemetry.height,
        "profiles": table.profiles["profile_id"].n_unique(),
        "noise_floor": table.meta.get("noise_floor"),
        "runs_by_kind": table.meta.get("runs_by_kind", {}),
    }


def node_counts(table: RunTable) -> dict[str, int]:
    """Co-runs per number of cores of the node they measured (``RunTable.run_cores``; "unknown" where
    nothing says)."""
    counts: dict[str, int] = {}
    for cores in table.run_cores():
        name = "unknown" if np.isnan(cores) else f"{cores:g}"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _noise_cells(noise: Any, application: str) -> str:
    floor = noise.get("by_application", {}).get(application) if isinstance(noise, dict) else None
    drift = noise.get("drift_by_application", {}).get(application) if isinstance(noise, dict) else None
    moved = f"{100 * drift['median_change']:+.1f} ({drift['median_hours_apart']:.1f} h)" if drift else "-"
    if not floor or not floor.get("n_solo_pairs"):
        return f"- | - | - | {moved} |"
    return (
        f"{floor['n_solo_pairs']} | {100 * floor['median_abs_deviation']:.2f} | "
        f"{100 * floor['p90_abs_deviation']:.2f} | {moved} |"
    )


def sessions_text(sessions: dict[str, Any]) -> str:
    """The lab sessions of a campaign (a start or resume each), by when each began: the journal keeps their
    start times only, so a single session is one time, not a range."""
    if sessions["count"] == 1:
        return f"1 lab session, started {sessions['first']}"
    return (
        f"{sessions['count']} lab sessions (starts and resumes of the campaign), the first started "
        f"{sessions['first']}, the last {sessions['last']}"
    )


def _session_lines(sessions: dict[str, Any] | None) -> list[str]:
    return [f"- {sessions_text(sessions)}"] if sessions else []


def _campaign_lines(meta: dict[str, Any]) -> list[str]:
    """One line per campaign of a dataset packed from several: its machine, sessions and noise floor (each
    campaign's labels are against its own solos, so each has its own floor)."""
    each: dict[str, dict[str, Any]] = meta.get("campaigns_provenance", {})
    floors = (
        meta.get("noise_floor", {}).get("by_campaign", {})
        if isinstance(meta.get("noise_floor"), dict)
        else {}
    )
    lines = []
    for name, found in each.items():
        machine_text = ", ".join(f"{k} {v}" for k, v in found.get("machine", {}).items()) or "unknown"
        sessions = found.get("lab_sessions")
        when = f"; {sessions_text(sessions)}" if sessions else ""
        floor = f"; noise floor {noise_text(floors[name])}" if name in floors else ""
        lines.append(f"- campaign `{name}`: machine {machine_text}{when}{floor}")
    return lines


def _background_lines(table: RunTable) -> list[str]:
    """The host's load before the runs (quiet labels): what the noise floor was measured against."""
    records = table.extras.get("records")
    if records is None or records["background_busy_cpus"].null_count() == records.height:
        return []
    busy = records["background_busy_cpus"].drop_nulls()
    pressure = records["background_cpu_pressure"].drop_nulls()
    waited = float(records["background_waited_s"].sum() or 0.0)
    busy_runs = int((~records["background_quiet"].fill_null(True)).sum())
    return [
        "## Background load during generation",
        f"Before each of {busy.len()} runs the lab measured the host and waited while it was busy.",
        "",
        f"- busy CPU before a run: median {busy.median():.3f} cores, p90 {busy.quantile(0.9):.3f}, "
        f"max {busy.max():.3f}",
        f"- CPU pressure (share of the window some task waited): median {pressure.median():.4f}, "
        f"max {pressure.max():.4f}"
        if pressure.len()
        else "- CPU pressure: not available (no PSI)",
        f"- waited for a quiet host: {waited / 60:.1f} min in all; runs that went ahead on a busy host: "
        f"{busy_runs}",
        f"- measurement windows: {overrun_text(records)}",
        "",
    ]


def _probe_lines(table: RunTable) -> list[str]:
    lines: list[str] = []
    for key, title, what in (
        (
            "sensitivity",
            "Sensitivity probes",
            "P of each application against each calibrated aggressor level",
        ),
        ("pressure", "Pressure", "P of each fixed victim beside each workload configuration"),
    ):
        frame = table.extras.get(key)
        if frame is None or not frame.height:
            continue
        columns = frame.columns
        lines += [
            f"## {title} ({key}.parquet)",
            f"{what}.",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *[
                "| "
                + " | ".join(
                    "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row
                )
                + " |"
                for row in frame.iter_rows()
            ],
            "",
        ]
    return lines


def card(table: RunTable, command: str, sizes: dict[str, int], compact: bool) -> str:
    facts = summary(table)
    runs = table.runs
    unavailable: list[str] = table.meta.get("unavailable_metrics", [])
    first, last = runs["started_at"].min(), runs["started_at"].max()
    lines = [
        "# cotenant bundled dataset",
        "",
        "Interference measured by `cotenant lab run` with real programs in cgroups; source `bundled`.",
        "",
        "## Provenance",
        f"- command: `{command}`",
        f"- packed: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; runs from {first} to {last}",
        "- machine: " + ", ".join(f"{k} {v}" for k, v in table.meta.get("machine", machine()).items()),
        *_session_lines(table.meta.get("lab_sessions")),
        *_campaign_lines(table.meta),
        f"- storage: zstd Parquet{COMPACT_STORAGE_TEXT if compact else ''}, "
        f"{sum(sizes.values()) / 2**20:.2f} MiB: "
        + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sizes.items()),
        "",
        "## Counts",
        f"- applications: {facts['apps'].height} ({', '.join(facts['apps']['application'])})",
        f"- labelled co-runs: {facts['n_runs']}; runs by kind in the lab: {facts['runs_by_kind']}",
        f"- scenarios: {facts['scenarios']}",
        f"- neighbour counts (co-runs per number of neighbours): {facts['neighbour_counts']}",
        f"- co-runs with a neighbour that has no solo profile (placement models see fewer neighbours): "
        f"{facts['unprofiled_neighbours']}",
        f"- nodes (co-runs per number of cores of the node they measured): {facts['node_cores']}",
        f"- telemetry: {facts['seconds']} run-seconds; solo profiles: {facts['profiles']}",
        f"- dropped: {table.meta.get('dropped', {})}",
        f"- noise floor: {noise_text(facts['noise_floor'])}",
        f"- metrics: {len(table.metrics)} per cgroup (as self__ and neighbour_mean__), "
        f"{len(table.host_columns)} host, {len(table.solo_relative_columns)} target rates over its own "
        "campaign's solo profile (vs_solo__); "
        f"{len(unavailable)} dropped as null throughout "
        "(unavailable on the lab machine), by family: " + (families_text(unavailable) or "none"),
        "",
        "## Label P histogram",
        "| P | co-runs |",
        "|---|---|",
        *[f"| {b} | {n} |" for b, n in facts["label_histogram"]],
        "",
        "## Per application",
        "Noise floor: each solo run against the median of the other solos of its configuration (pp). "
        "Solo drift: each configuration's latest solo against its earliest (pp; negative: slower), the "
        "median over the application's configurations, and how many hours apart they ran.",
        "",
        "| application | co-runs | mean P | min P | solo runs | noise median | noise p90 | solo drift |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {a} | {n} | {m:.3f} | {lo:.3f} | " + _noise_cells(facts["noise_floor"], a)
            for a, n, m, lo in facts["apps"].iter_rows()
        ],
        "",
        *_background_lines(table),
        *(["## Lab notes", "", table.meta["lab_notes"], ""] if table.meta.get("lab_notes") else []),
        *_probe_lines(table),
        "## Metrics (per cgroup: self__ and neighbour_mean__; host: host__)",
        "| metric | group |",
        "|---|---|",
        *[f"| {m} | {g} |" for m, g in sorted(table.metric_groups.items())],
        "",
        "## Plan",
        "```yaml",
        str(table.meta.get("plan", "(no plan.yaml in the lab directory)")).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def drop_unavailable_metrics(table: RunTable) -> tuple[RunTable, list[str]]:
    """Metrics null everywhere (e.g. hardware counters on a guest without a PMU) carry nothing: drop them."""
    nulls = table.telemetry.null_count().row(0, named=True)
    empty_column = {c for c, n in nulls.items() if n == table.telemetry.height and table.telemetry.height}
    profile_nulls = table.profiles.null_count().row(0, named=True) if table.profiles.height else {}
    dropped = [
        m
        for m in table.metrics
        if {SELF + m, NEIGHBOUR_MEAN + m} <= empty_column and profile_nulls.get(m, 0) == table.profiles.height
    ]
    dropped += [c.removeprefix(HOST) for c in table.host_columns if c in empty_column]
    telemetry_drop = [
        p + m for m in dropped for p in (SELF, NEIGHBOUR_MEAN, HOST) if p + m in table.telemetry.columns
    ]
    slim = RunTable(
        table.runs,
        table.telemetry.drop(telemetry_drop),
        table.profiles.drop([m for m in dropped if m in table.profiles.columns]),
        {m: g for m, g in table.metric_groups.items() if m not in set(dropped)},
        table.meta | {"unavailable_metrics": sorted(dropped)},
        table.extras,
    )
    return slim.validate(origin="packed"), dropped


LAB_NOTES = "NOTES.md"  # a lab directory's own account of what happened to it, copied into the card


PROVENANCE_KEYS = ("machine", "lab_sessions", "lab_notes")


def campaign_provenance(campaign: Path) -> dict[str, Any]:
    """How one campaign came to be: for a lab directory, the machine packing it (the lab runs on the host
    that packs it), its sessions (``sessions.jsonl``: one line per start or resume) and the notes its
    operator kept beside the journal (``NOTES.md``: a change of code mid-campaign, runs removed and redone,
    ...); for a packed dataset, what its own pack recorded."""
    if not is_lab_directory(campaign):
        meta = json.loads((campaign / "meta.json").read_text())["meta"]
        return {key: meta[key] for key in PROVENANCE_KEYS if key in meta}
    found: dict[str, Any] = {"machine": machine()}
    sessions = campaign / "sessions.jsonl"
    if sessions.is_file():
        starts = [
            json.loads(line)["started_at"] for line in sessions.read_text().splitlines() if line.strip()
        ]
        if starts:
            found["lab_sessions"] = {"count": len(starts), "first": min(starts), "last": max(starts)}
    if (campaign / LAB_NOTES).is_file():
        found["lab_notes"] = (campaign / LAB_NOTES).read_text().strip()
    return found


def lab_provenance(campaigns: Sequence[Path]) -> dict[str, Any]:
    """The card's provenance of one campaign (``campaign_provenance``), or of several: each one's under
    ``campaigns_provenance`` (their machines differ), their sessions counted together and their notes each
    under its campaign's name."""
    each = {campaign.name: campaign_provenance(campaign) for campaign in campaigns}
    if len(each) == 1:
        return next(iter(each.values()))
    found: dict[str, Any] = {"machine": machine(), "campaigns_provenance": each}
    sessions = [one["lab_sessions"] for one in each.values() if "lab_sessions" in one]
    if sessions:
        found["lab_sessions"] = {
            "count": sum(s["count"] for s in sessions),
            "first": min(s["first"] for s in sessions),
            "last": max(s["last"] for s in sessions),
        }
    notes = [f"### {name}\n\n{one['lab_notes']}" for name, one in each.items() if one.get("lab_notes")]
    if notes:
        found["lab_notes"] = "\n\n".join(notes)
    return found


def pack(
    lab_dirs: Path | Sequence[Path],
    out: Path,
    command: str | None = None,
    size_limit: int = SIZE_LIMIT_BYTES,
) -> tuple[RunTable, dict[str, int]]:
    """Lab dir(s) -> bundled RunTable + CARD.md in ``out`` (several campaigns: ``load_labs``): Float32 metrics
    past ``FLOAT64_BUDGET_BYTES``; raises if even Float32 storage exceeds the limit."""
    dirs = [lab_dirs] if isinstance(lab_dirs, Path) else list(lab_dirs)
    if out.resolve() in {lab_dir.resolve() for lab_dir in dirs}:
        raise ValueError(f"{out}: packing into one of the campaigns it reads; choose another --out")
    table, _ = drop_unavailable_metrics(load_labs(dirs))
    # the names only: no paths of the packing machine in the repo
    table.meta["packed_from"] = ", ".join(lab_dir.name for lab_dir in dirs)
    table.meta.update(lab_provenance(dirs))
    table.meta["source"] = "bundled"
    table.meta.pop("path", None)
    compact = False
    sizes = table.save(out)
    if sum(sizes.values()) > min(size_limit, FLOAT64_BUDGET_BYTES):
        compact = True
        sizes = table.save(out, compact=True)
    if sum(sizes.values()) > size_limit:
        raise ValueError(
            f"{out}: packed size {sum(sizes.values()) / 2**20:.1f} MiB exceeds {size_limit / 2**20} MiB"
        )
    named = " ".join(shlex.quote(lab_dir.name) for lab_dir in dirs)
    command = command or f"cotenant datasets pack {named} --out {shlex.quote(str(out))}"
    (out / "CARD.md").write_text(card(table, command, sizes, compact))
    return table, sizes
