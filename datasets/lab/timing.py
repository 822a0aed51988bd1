"""Where a lab's wall time goes, from its journal: measured windows, per-run overhead, wall time per run.

Used to size plans (``plan-info --overhead-s``): the overhead is the gap between one run's end and the next
run's start (cgroup set-up, server start, neighbours' warm-up), taken between consecutive run ids only, so
that a pause between sessions does not count.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

from cotenant.datasets.lab.records import RunRecord


@dataclass(frozen=True)
class LabTiming:
    runs: int
    median_window_s: float  # target measurement window (planned duration + tool start/exit)
    max_window_s: float
    median_gap_solo_s: float  # overhead before a run without neighbours
    median_gap_corun_s: float  # overhead before a co-run (includes the neighbours' warm-up)
    wall_per_run_s: float  # first start to last end over consecutive runs, per run

    def describe(self) -> str:
        return (
            f"{self.runs} runs: window median {self.median_window_s:.2f} s (max {self.max_window_s:.2f}), "
            f"overhead median {self.median_gap_solo_s:.2f} s solo / {self.median_gap_corun_s:.2f} s co-run, "
            f"{self.wall_per_run_s:.2f} s wall per run"
        )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def lab_timing(records: list[RunRecord]) -> LabTiming:
    ordered = sorted(records, key=lambda record: record.started_at)
    if not ordered:
        nan = float("nan")
        return LabTiming(0, nan, nan, nan, nan, nan)
    windows = [(record.ended_at - record.started_at).total_seconds() for record in ordered]
    solo_gaps: list[float] = []
    corun_gaps: list[float] = []
    consecutive_time = 0.0
    for previous, current in itertools.pairwise(ordered):
        if int(current.run_id[1:]) != int(previous.run_id[1:]) + 1:
            continue
        gap = (current.started_at - previous.ended_at).total_seconds()
        (corun_gaps if current.neighbours else solo_gaps).append(gap)
        consecutive_time += (current.ended_at - previous.ended_at).total_seconds()
    pairs = len(solo_gaps) + len(corun_gaps)
    return LabTiming(
        runs=len(ordered),
        median_window_s=_median(windows),
        max_window_s=max(windows),
        median_gap_solo_s=_median(solo_gaps),
        median_gap_corun_s=_median(corun_gaps),
        wall_per_run_s=consecutive_time / pairs if pairs else float("nan"),
    )
