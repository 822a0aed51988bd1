"""Shares the models read as metrics of their own, computed from two collected rates wherever
metrics are read: the run table (``datasets``), the service's windows (``models.predictor``) and the agent's
compact pushes.

A CPU-bound thread slowed by CPU contention spends the time it loses waiting on a run queue, so the share of
its runnable time spent running, ``run / (run + wait)`` from ``/proc/<pid>/schedstat``, is its CPU-contention
slowdown as observed (1: never waited). Trees learn a ratio of two inputs poorly and only inside the range
they saw; given as a metric it transfers across programs. Nothing runnable at all (an idle target, or the
zeros of ``neighbour_mean`` for a run alone) reads as 1, so that every path gets the same value from the same
inputs. A missing input gives a missing share.

numpy only: the per-node agent imports this without the training stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Per-cgroup derived metric -> (running rate, waiting rate): share = running / (running + waiting).
SHARES: dict[str, tuple[str, str]] = {
    "tasks_run_share": ("tasks_run_seconds_per_second", "tasks_runqueue_wait_seconds_per_second"),
}


def run_share(running: np.ndarray, waiting: np.ndarray) -> np.ndarray:
    """Elementwise ``running / (running + waiting)``, 1 where nothing was runnable, NaN where an input is."""
    running, waiting = np.asarray(running, dtype=np.float64), np.asarray(waiting, dtype=np.float64)
    total = running + waiting
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, running / np.where(total > 0, total, 1.0), 1.0)
    return np.where(np.isnan(total), np.nan, np.clip(share, 0.0, 1.0))


def share_of(inputs: tuple[str, str], values: Mapping[str, float | None]) -> float | None:
    """One reading's share (a row of the agent's), None where an input is missing."""
    running, waiting = (values.get(name) for name in inputs)
    if running is None or waiting is None:
        return None
    return float(run_share(np.array(running), np.array(waiting)))


def with_shares(series: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``series`` (metric -> per-second values) plus every share whose inputs it holds (aligned on the last
    seconds of the shorter input)."""
    out = dict(series)
    for name, (running, waiting) in SHARES.items():
        if running in series and waiting in series:
            a, b = (
                np.asarray(series[running], dtype=np.float64),
                np.asarray(series[waiting], dtype=np.float64),
            )
            steps = min(len(a), len(b))
            out[name] = run_share(a[len(a) - steps :], b[len(b) - steps :])
    return out


# ---- relative to the workload's own solo profile ---------------------------------------------------------
# Rates of work done (CPU time, scheduler run time, I/O bytes and calls, switches, faults): a program slowed
# to P by its neighbours does each at about P times its solo rate, whichever resource it waits for. Divided by
# the same workload's mean rate in its solo profile (measured at admission, as placement needs it anyway),
# each reads as an observed slowdown on a scale that is the same for every program; the raw rates are not
# (one program runs 1.7 cores alone, another 0.5), which is why models that see only the co-run's rates
# must guess each unseen program's solo level. The list is every work rate the collectors read, fixed by what
# the metrics mean, not by how well any did; models choose among them on training programs.
# The CPU work rate (cgroup v2 cores of CPU time per second): a CPU-bound program's progress itself.
CPU_RATE = "cgroup_cpu_usage_seconds_per_second"
SOLO_RELATIVE: tuple[str, ...] = (
    CPU_RATE,
    "cgroup_v1_cpuacct_usage_seconds_per_second",
    "sched_run_seconds_per_second",
    "tasks_run_seconds_per_second",
    "tasks_read_chars_bytes_per_second",
    "tasks_written_chars_bytes_per_second",
    "tasks_read_syscalls_per_second",
    "tasks_write_syscalls_per_second",
    "tasks_storage_read_bytes_per_second",
    "tasks_storage_written_bytes_per_second",
    "cgroup_v1_blkio_total_bytes_per_second",
    "cgroup_v1_blkio_total_operations_per_second",
    "perf_context_switches_per_second",
    "tasks_voluntary_context_switches_per_second",
    "perf_page_faults_per_second",
    "tasks_minor_faults_per_second",
)
# The rate of blocking and waking (perf's software context-switch count): a program that waits on a disk, a
# lock or a client switches once per request or I/O, so for it this rate is its progress where its CPU time
# is not (a few polled cycles per I/O, or CPU time spent on waiting itself).
SWITCH_RATE = "perf_context_switches_per_second"
# What tells such a program from a compute one, read from its solo profile alone: its context switches per
# second of CPU time, log10 (a compute kernel switches a few to a hundred times per CPU-second, a server or a
# storage program tens of thousands). A per-run constant beside the ratios (``vs_solo__`` + this name), so
# that a model can weigh the switch ratio by it (``models/solo_prior.py`` ``switch_mixture``).
SWITCH_DENSITY = "solo_switches_per_cpu_second_log10"
# A rate far above its solo mean says the profile hardly knew it (a phase it did not reach), not a speed-up:
# capped so that one such second cannot dominate a run's summary.
SOLO_RELATIVE_CAP = 4.0
# Below this solo mean (per second) the workload hardly did that kind of work alone: no ratio is read from it.
SOLO_RELATIVE_FLOOR = 1e-6


def solo_relative(values: np.ndarray, solo_mean: float | np.ndarray | None) -> np.ndarray:
    """Each second's rate over the workload's solo mean (a number, or one per second), in
    [0, SOLO_RELATIVE_CAP]; NaN where the rate is, and where the solo mean is missing or too small to divide
    by."""
    values = np.asarray(values, dtype=np.float64)
    given = np.asarray(np.nan if solo_mean is None else solo_mean, dtype=np.float64)
    mean = np.broadcast_to(given, values.shape)
    usable = np.isfinite(mean) & (mean >= SOLO_RELATIVE_FLOOR)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = values / np.where(usable, mean, 1.0)
    return np.where(usable, np.clip(ratio, 0.0, SOLO_RELATIVE_CAP), np.nan)


def solo_means(profile: Mapping[str, np.ndarray], metrics: Sequence[str] = SOLO_RELATIVE) -> dict[str, float]:
    """A solo profile's (metric -> per-second values) mean of each of ``metrics`` it has (NaNs skipped; a
    metric never read is left out)."""
    means: dict[str, float] = {}
    for metric in metrics:
        values = np.asarray(profile.get(metric, []), dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            means[metric] = float(finite.mean())
    return means


def switch_density(means: Mapping[str, float]) -> float:
    """A solo profile's (``solo_means``) context switches per CPU-second, log10 (one switch and one
    millisecond added so that a program that never switched, or hardly ran, reads finite); NaN where it lacks
    either rate."""
    switches, cpu = means.get(SWITCH_RATE), means.get(CPU_RATE)
    if switches is None or cpu is None or not (np.isfinite(switches) and np.isfinite(cpu)):
        return float("nan")
    return float(np.log10((max(switches, 0.0) + 1.0) / (max(cpu, 0.0) + 1e-3)))
