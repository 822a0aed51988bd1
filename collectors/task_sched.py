"""Scheduler view of every thread of a target, from /proc/<pid>/task/<tid>/sched (CONFIG_SCHED_DEBUG).

This is where contention shows first: migrations, involuntary switches, PELT utilisation and runnable
averages, and (with ``kernel.sched_schedstats=1``) run-queue wait and wake-up counts. Summed over threads,
with counters kept monotonic across thread churn.
"""

from __future__ import annotations

import functools
import os

from cotenant.collectors.base import (
    CGROUP_SOURCES,
    CgroupSource,
    CgroupTarget,
    ChurnAccumulator,
    KernelFiles,
    MetricGroup,
    MetricSpec,
    Roots,
    SourceUnavailable,
    counter,
    gauge,
)
from cotenant.collectors.targets import member_pids

SOURCE = "task_sched"
P = "sched_"
CPU, MEM, CACHE = MetricGroup.CPU, MetricGroup.MEMORY, MetricGroup.CACHE_MEMBW
MS = 1e-3  # sched reports times in milliseconds

# sched key -> (metric, scale, unit, group, description)
COUNTERS = {
    "se.sum_exec_runtime": ("run_seconds_total", MS, "seconds", CPU, "time on CPU"),
    "se.nr_migrations": ("migrations_total", 1.0, "migrations", CPU, "migrations between CPUs"),
    "nr_switches": ("switches_total", 1.0, "switches", CPU, "context switches"),
    "nr_voluntary_switches": (
        "voluntary_switches_total",
        1.0,
        "switches",
        CPU,
        "blocking switches",
    ),
    "nr_involuntary_switches": ("involuntary_switches_total", 1.0, "switches", CPU, "preemptions"),
    "numa_pages_migrated": ("numa_pages_migrated_total", 1.0, "pages", CACHE, "pages moved between nodes"),
    "total_numa_faults": ("numa_faults_total", 1.0, "faults", CACHE, "NUMA hinting faults"),
    "sum_sleep_runtime": ("sleep_seconds_total", MS, "seconds", CPU, "time asleep (schedstats)"),
    "sum_block_runtime": ("block_seconds_total", MS, "seconds", CPU, "time blocked (schedstats)"),
    "wait_sum": ("wait_seconds_total", MS, "seconds", CPU, "time runnable on a run queue (schedstats)"),
    "wait_count": ("waits_total", 1.0, "waits", CPU, "run-queue waits (schedstats)"),
    "iowait_sum": ("iowait_seconds_total", MS, "seconds", CPU, "time in I/O wait (schedstats)"),
    "iowait_count": ("iowaits_total", 1.0, "waits", CPU, "I/O waits (schedstats)"),
    "nr_wakeups": ("wakeups_total", 1.0, "wakeups", CPU, "wake-ups (schedstats)"),
    "nr_wakeups_migrate": (
        "wakeups_migrated_total",
        1.0,
        "wakeups",
        CPU,
        "wake-ups moved CPU (schedstats)",
    ),
    "nr_wakeups_remote": (
        "wakeups_remote_total",
        1.0,
        "wakeups",
        CPU,
        "remote wake-ups (schedstats)",
    ),
}
GAUGES = {
    "se.load.weight": ("load_weight", 1.0, "weight", CPU, "scheduler weight"),
    "se.avg.load_avg": ("load_avg", 1.0, "load", CPU, "PELT load average"),
    "se.avg.runnable_avg": (
        "runnable_avg",
        1 / 1024,
        "cpus",
        CPU,
        "PELT runnable average (1 = always)",
    ),
    "se.avg.util_avg": ("util_avg", 1 / 1024, "cpus", CPU, "PELT utilisation (1 = one busy CPU)"),
    "se.avg.util_est": ("util_est", 1 / 1024, "cpus", CPU, "estimated utilisation"),
    "wait_max": (
        "wait_max_seconds",
        MS,
        "seconds",
        CPU,
        "longest run-queue wait of a thread",
    ),
}
MAX_GAUGES = {P + "wait_max_seconds"}  # maxima over threads, not sums


@functools.lru_cache(maxsize=1024)  # bounded: each file's header line ("comm (pid, #threads: n)") is new
def _sched_column(raw_key: str) -> tuple[str, float, bool] | None:
    """A sched line's key as printed (padded) -> (column, scale, is a counter); None when not collected."""
    key = raw_key.strip().replace("se.statistics.", "").replace("stats.", "")
    if key in COUNTERS:
        return P + COUNTERS[key][0], COUNTERS[key][1], True
    if key in GAUGES:
        return P + GAUGES[key][0], GAUGES[key][1], False
    return None


def parse_sched(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """``key : value`` lines (keys may carry a ``se.statistics.`` prefix on older kernels)."""
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        column = _sched_column(key) if separator else None
        if column is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        name, scale, is_counter = column
        (counters if is_counter else gauges)[name] = number * scale
    return counters, gauges


@CGROUP_SOURCES.register(SOURCE)
class TaskSchedSource(CgroupSource):
    name = SOURCE
    reads_processes = True

    def __init__(self, roots: Roots | None = None) -> None:
        super().__init__(roots)
        self._state: dict[str, ChurnAccumulator] = {}
        self._threads: dict[str, set[str]] = {}  # per target: thread directories with open descriptors
        self.files = KernelFiles(remember_absent=False)

    def specs(self) -> list[MetricSpec]:
        specs = [gauge(P + "threads", "threads", SOURCE, CPU, "threads of the target")]
        specs += [counter(P + m, u, SOURCE, g, d + ", all threads") for m, _, u, g, d in COUNTERS.values()]
        specs += [gauge(P + m, u, SOURCE, g, d) for m, _, u, g, d in GAUGES.values()]
        return specs

    def open(self) -> None:
        if not (self.roots.procfs / "self" / "sched").is_file():
            raise SourceUnavailable("no /proc/<pid>/sched: kernel without CONFIG_SCHED_DEBUG")

    def read(self, target: CgroupTarget) -> dict[str, float]:
        members: dict[int, dict[str, float]] = {}
        gauges: dict[str, float] = {P + "threads": 0.0}
        threads: set[str] = set()
        for pid in member_pids(target, self.roots, self.files):
            try:
                tids = os.listdir(f"{self.roots.procfs}/{pid}/task")
            except FileNotFoundError:
                continue
            for tid in tids:
                directory = f"{self.roots.procfs}/{pid}/task/{tid}"
                threads.add(directory)
                text = self.files.read(f"{directory}/sched")
                if not text:
                    continue  # the thread exited
                counters, thread_gauges = parse_sched(text)
                members[int(tid)] = counters
                gauges[P + "threads"] += 1
                for name, value in thread_gauges.items():
                    if name in MAX_GAUGES:
                        gauges[name] = max(gauges.get(name, 0.0), value)
                    else:
                        gauges[name] = gauges.get(name, 0.0) + value
        for gone in self._threads.get(target.name, set()) - threads:
            self.files.forget(gone)  # its descriptor would only return ESRCH
        self._threads[target.name] = threads
        state = self._state.setdefault(target.name, ChurnAccumulator())
        return {**state.update(members), **gauges}

    def forget(self, target: CgroupTarget) -> None:
        super().forget(target)
        self._state.pop(target.name, None)
        for directory in self._threads.pop(target.name, set()):
            self.files.forget(directory)
