"""Self-observation: the ``collector`` table (per-source duration and success, late and skipped samples).

Its rows use the same layout as the other tables (timestamp, target ``collector``, Float64 columns), so the
cost and health of collection are read with the same tools as the telemetry itself.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

from cotenant.collectors.base import MetricGroup, MetricSpec, gauge

SOURCE = "collector"
LATE_SHARE = 0.1  # a tick that starts later than this share of the interval counts as late
OTHER = MetricGroup.OTHER


@dataclass
class TickReport:
    lateness: float
    skipped: int
    targets: int
    durations: dict[str, float | None] = field(default_factory=dict)
    successes: dict[str, bool] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    ages: dict[str, float | None] = field(default_factory=dict)  # 0: read this tick; > 0: carried values
    unavailable: dict[str, int] = field(default_factory=dict)  # source -> metrics it cannot emit here

    def source(self, name: str, duration: float | None, ok: bool) -> None:
        self.durations[name] = duration
        self.successes[name] = ok

    def cpu(self, name: str, seconds: float) -> None:
        self.cpu_seconds[name] = seconds


def collector_specs(source_names: list[str]) -> list[MetricSpec]:
    specs = [
        gauge("collector_tick_lateness_seconds", "seconds", SOURCE, OTHER, "how late the tick started"),
        gauge("collector_tick_duration_seconds", "seconds", SOURCE, OTHER, "time to sample all sources"),
        gauge("collector_samples_late", "samples", SOURCE, OTHER, "late ticks so far"),
        gauge(
            "collector_samples_skipped",
            "samples",
            SOURCE,
            OTHER,
            "ticks skipped so far (overran the interval)",
        ),
        gauge("collector_targets", "targets", SOURCE, OTHER, "cgroup and process targets sampled"),
        gauge(
            "collector_cpu_seconds", "seconds", SOURCE, OTHER, "CPU time used by the collector process so far"
        ),
        gauge("collector_max_rss_bytes", "bytes", SOURCE, OTHER, "peak resident memory of the collector"),
    ]
    for name in source_names:
        specs.append(
            gauge(f"collector_source_{name}_duration_seconds", "seconds", SOURCE, OTHER, f"{name} read time")
        )
        specs.append(
            gauge(f"collector_source_{name}_success", "flag", SOURCE, OTHER, f"1 if {name} read cleanly")
        )
        specs.append(
            gauge(
                f"collector_source_{name}_cpu_seconds",
                "seconds",
                SOURCE,
                OTHER,
                f"CPU time of this tick's {name} read (its thread)",
            )
        )
        specs.append(
            gauge(
                f"collector_source_{name}_age_seconds",
                "seconds",
                SOURCE,
                OTHER,
                f"age of the {name} values in this row (0: read now; > 0: carried, see process_interval)",
            )
        )
        specs.append(
            gauge(
                f"collector_source_{name}_unavailable_metrics",
                "metrics",
                SOURCE,
                OTHER,
                f"{name} metrics unavailable here (reasons: collector files' cotenant.unavailable metadata)",
            )
        )
    return specs


class SelfObserver:
    def __init__(self, source_names: list[str], interval: float = 1.0) -> None:
        self.source_names = source_names
        self.interval = interval
        self.late = 0
        self.skipped = 0

    def columns(self) -> list[str]:
        return [spec.derived_name for spec in collector_specs(self.source_names)]

    def row(self, report: TickReport, tick_duration: float) -> dict[str, float | None]:
        self.late += int(report.lateness > LATE_SHARE * self.interval)
        self.skipped += report.skipped
        times = os.times()
        row: dict[str, float | None] = {
            "collector_tick_lateness_seconds": report.lateness,
            "collector_tick_duration_seconds": tick_duration,
            "collector_samples_late": float(self.late),
            "collector_samples_skipped": float(self.skipped),
            "collector_targets": float(report.targets),
            "collector_cpu_seconds": times.user + times.system,
            "collector_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0,
        }
        for name in self.source_names:
            row[f"collector_source_{name}_duration_seconds"] = report.durations.get(name)
            row[f"collector_source_{name}_success"] = float(report.successes.get(name, False))
            row[f"collector_source_{name}_cpu_seconds"] = report.cpu_seconds.get(name)
            row[f"collector_source_{name}_age_seconds"] = report.ages.get(name)
            row[f"collector_source_{name}_unavailable_metrics"] = float(report.unavailable.get(name, 0))
        return row
