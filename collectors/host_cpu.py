"""Host CPU from procfs: /proc/stat (total and per CPU), /proc/softirqs, /proc/loadavg, /proc/schedstat."""

from __future__ import annotations

import contextlib

from cotenant.collectors.base import (
    HOST_SOURCES,
    HostSource,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
)

SOURCE = "host_cpu"
CPU = MetricGroup.CPU
USER_HZ = 100.0
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
STAT_COUNTERS = {
    "intr": ("host_interrupts_total", "interrupts"),
    "ctxt": ("host_context_switches_total", "switches"),
    "processes": ("host_forks_total", "forks"),
}
STAT_GAUGES = {"procs_running": "host_procs_running", "procs_blocked": "host_procs_blocked"}


def parse_stat(text: str) -> dict[str, float]:
    """CPU time per mode (seconds) for ``cpu`` (all) and ``cpuN``, plus interrupts, switches, forks."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, *fields = line.split()
        if key.startswith("cpu"):
            who = "all" if key == "cpu" else key
            for mode, ticks in zip(MODES, fields, strict=False):
                values[f"host_cpu_{who}_{mode}_seconds_total"] = float(ticks) / USER_HZ
        elif key in STAT_COUNTERS:
            values[STAT_COUNTERS[key][0]] = float(fields[0])
        elif key in STAT_GAUGES:
            values[STAT_GAUGES[key]] = float(fields[0])
    return values


def parse_softirqs(text: str) -> dict[str, float]:
    """Softirqs per kind summed over CPUs."""
    values: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        kind, *counts = line.split()
        values[f"host_softirq_{kind.rstrip(':').lower()}_total"] = sum(float(c) for c in counts)
    return values


def parse_loadavg(text: str) -> dict[str, float]:
    one, five, fifteen, tasks, _ = text.split()
    running, total = tasks.split("/")
    return {
        "host_load1": float(one),
        "host_load5": float(five),
        "host_load15": float(fifteen),
        "host_runnable_tasks": float(running),
        "host_tasks": float(total),
    }


def parse_schedstat(text: str) -> dict[str, float]:
    """Per-CPU run and wait time (version 15 layout: fields 7 and 8 of each ``cpuN`` line), summed."""
    values = {"host_sched_run_seconds_total": 0.0, "host_sched_wait_seconds_total": 0.0}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu") and len(parts) >= 9:
            values["host_sched_run_seconds_total"] += float(parts[7]) * 1e-9
            values["host_sched_wait_seconds_total"] += float(parts[8]) * 1e-9
    return values


def cpu_names(stat_text: str) -> list[str]:
    return ["all"] + [line.split()[0] for line in stat_text.splitlines() if line[3:4].isdigit()]


@HOST_SOURCES.register(SOURCE)
class HostCpuSource(HostSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        try:
            cpus = cpu_names((self.roots.procfs / "stat").read_text())
            softirqs = [line.split()[0].rstrip(":").lower() for line in
                        (self.roots.procfs / "softirqs").read_text().splitlines()[1:]]  # fmt: skip
        except OSError:
            cpus, softirqs = ["all"], []
        specs = [
            counter(
                f"host_cpu_{cpu}_{mode}_seconds_total", "seconds", SOURCE, CPU, f"{mode} time of CPU {cpu}"
            )
            for cpu in cpus
            for mode in MODES
        ]
        specs += [
            counter(name, unit, SOURCE, CPU, f"/proc/stat {key}")
            for key, (name, unit) in STAT_COUNTERS.items()
        ]
        specs += [gauge(name, "tasks", SOURCE, CPU, f"/proc/stat {key}") for key, name in STAT_GAUGES.items()]
        specs += [
            counter(f"host_softirq_{kind}_total", "softirqs", SOURCE, CPU, f"{kind} softirqs, all CPUs")
            for kind in softirqs
        ]
        specs += [
            gauge(name, "tasks", SOURCE, CPU, f"/proc/loadavg {name.removeprefix('host_')}")
            for name in ("host_load1", "host_load5", "host_load15", "host_runnable_tasks", "host_tasks")
        ]
        specs += [
            counter(
                "host_sched_run_seconds_total", "seconds", SOURCE, CPU, "time tasks ran, all CPUs (schedstat)"
            ),
            counter(
                "host_sched_wait_seconds_total", "seconds", SOURCE, CPU, "time tasks waited on a runqueue"
            ),
        ]
        return specs

    def read(self) -> dict[str, float]:
        values = parse_stat(self.read_proc("stat"))
        values.update(parse_loadavg(self.read_proc("loadavg")))
        for name, parse in (("softirqs", parse_softirqs), ("schedstat", parse_schedstat)):
            # kernels without CONFIG_SCHEDSTATS have no /proc/schedstat
            with contextlib.suppress(FileNotFoundError):
                values.update(parse(self.read_proc(name)))
        return values
