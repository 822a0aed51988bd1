"""Per-target aggregate of member processes from /proc/<pid>/{stat,status,io,schedstat}.

Also the source for ``pid:<n>`` targets. Counters are kept monotonic across process churn: each process
contributes its growth since it was last seen (a new process its whole value), so a process exiting does not
look like a counter reset to ``derive``. ``/proc/<pid>/status`` context switches are the main thread's.
"""

from __future__ import annotations

import contextlib

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

SOURCE = "tasks"
P = "tasks_"
CPU, MEM, IO, OTHER = MetricGroup.CPU, MetricGroup.MEMORY, MetricGroup.IO, MetricGroup.OTHER
CLOCK_TICKS = 100.0  # USER_HZ
PAGE = 4096.0

# /proc/<pid>/stat field number as proc(5) counts them -> (metric, scale, unit, group)
STAT_COUNTERS = {
    10: ("minor_faults_total", 1.0, "faults", MEM),
    11: ("children_minor_faults_total", 1.0, "faults", MEM),
    12: ("major_faults_total", 1.0, "faults", MEM),
    13: ("children_major_faults_total", 1.0, "faults", MEM),
    14: ("user_cpu_seconds_total", 1 / CLOCK_TICKS, "seconds", CPU),
    15: ("system_cpu_seconds_total", 1 / CLOCK_TICKS, "seconds", CPU),
    16: ("children_user_cpu_seconds_total", 1 / CLOCK_TICKS, "seconds", CPU),
    17: ("children_system_cpu_seconds_total", 1 / CLOCK_TICKS, "seconds", CPU),
    42: ("blkio_delay_seconds_total", 1 / CLOCK_TICKS, "seconds", IO),
    43: ("guest_cpu_seconds_total", 1 / CLOCK_TICKS, "seconds", CPU),
}
STAT_GAUGES = {20: ("threads", 1.0, "threads", CPU), 23: ("virtual_memory_bytes", 1.0, "bytes", MEM)}
STATES = {"R": "running", "S": "sleeping", "D": "disk_sleep", "Z": "zombie", "T": "stopped"}
STATUS_BYTES = [
    "VmPeak",
    "VmSize",
    "VmLck",
    "VmPin",
    "VmHWM",
    "VmRSS",
    "RssAnon",
    "RssFile",
    "RssShmem",
    "VmData",
    "VmStk",
    "VmExe",
    "VmLib",
    "VmPTE",
    "VmSwap",
    "HugetlbPages",
]
STATUS_COUNTERS = {"voluntary_ctxt_switches": "voluntary_context_switches_total",
                   "nonvoluntary_ctxt_switches": "involuntary_context_switches_total"}  # fmt: skip
IO_COUNTERS = {
    "rchar": ("read_chars_bytes_total", "bytes read by syscalls (incl. page cache)"),
    "wchar": ("written_chars_bytes_total", "bytes written by syscalls (incl. page cache)"),
    "syscr": ("read_syscalls_total", "read syscalls"),
    "syscw": ("write_syscalls_total", "write syscalls"),
    "read_bytes": ("storage_read_bytes_total", "bytes fetched from storage"),
    "write_bytes": ("storage_written_bytes_total", "bytes sent to storage"),
    "cancelled_write_bytes": ("cancelled_written_bytes_total", "written bytes later truncated"),
}
SCHEDSTAT = (("run_seconds_total", 1e-9), ("runqueue_wait_seconds_total", 1e-9), ("timeslices_total", 1.0))


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(key))


def _specs() -> list[MetricSpec]:
    specs = [gauge(P + "processes", "processes", SOURCE, OTHER, "member processes")]
    for metric, _, unit, group in STAT_COUNTERS.values():
        specs.append(counter(P + metric, unit, SOURCE, group, f"/proc/<pid>/stat {metric}, summed"))
    for metric, _, unit, group in STAT_GAUGES.values():
        specs.append(gauge(P + metric, unit, SOURCE, group, f"/proc/<pid>/stat {metric}, summed"))
    for state in STATES.values():
        specs.append(
            gauge(f"{P}state_{state}_processes", "processes", SOURCE, CPU, f"processes in state {state}")
        )
    for key in STATUS_BYTES:
        specs.append(
            gauge(f"{P}{_snake(key)}_bytes", "bytes", SOURCE, MEM, f"/proc/<pid>/status {key}, summed")
        )
    for key, metric in STATUS_COUNTERS.items():
        specs.append(counter(P + metric, "switches", SOURCE, CPU, f"{key} (main threads), summed"))
    for metric, description in IO_COUNTERS.values():
        unit = "bytes" if "bytes" in metric else "syscalls"
        specs.append(counter(P + metric, unit, SOURCE, IO, description + ", summed"))
    specs.append(counter(P + "run_seconds_total", "seconds", SOURCE, CPU, "time on CPU (schedstat)"))
    specs.append(
        counter(P + "runqueue_wait_seconds_total", "seconds", SOURCE, CPU, "time runnable but waiting")
    )
    specs.append(counter(P + "timeslices_total", "timeslices", SOURCE, CPU, "timeslices run on a CPU"))
    return specs


# Column names worked out once: these parsers run for every member process.
STAT_COUNTER_FIELDS = [(i - 3, P + metric, scale) for i, (metric, scale, _, _) in STAT_COUNTERS.items()]
STAT_GAUGE_FIELDS = [(i - 3, P + metric, scale) for i, (metric, scale, _, _) in STAT_GAUGES.items()]
STATUS_NAMES = {
    **{key: (P + metric, False) for key, metric in STATUS_COUNTERS.items()},
    **{key: (f"{P}{_snake(key)}_bytes", True) for key in STATUS_BYTES},  # True: a gauge in kB
}
IO_NAMES = {key: P + metric for key, (metric, _) in IO_COUNTERS.items()}
STATE_COLUMNS = {state: f"{P}state_{name}_processes" for state, name in STATES.items()}


def parse_stat(text: str) -> tuple[dict[str, float], dict[str, float], str]:
    """Counters, gauges and state from /proc/<pid>/stat (comm may contain spaces and parentheses)."""
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is proc(5) field 3, the state
    counters = {name: float(fields[i]) * s for i, name, s in STAT_COUNTER_FIELDS if i < len(fields)}
    gauges = {name: float(fields[i]) * s for i, name, s in STAT_GAUGE_FIELDS}
    return counters, gauges, fields[0]


def parse_status(text: str) -> tuple[dict[str, float], dict[str, float]]:
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        known = STATUS_NAMES.get(key)
        if known is None:
            continue
        name, in_kilobytes = known
        if in_kilobytes:
            gauges[name] = float(rest.split()[0]) * 1024
        else:
            counters[name] = float(rest)
    return counters, gauges


def parse_io(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        name = IO_NAMES.get(key)
        if name is not None:
            values[name] = float(rest)
    return values


def parse_schedstat(text: str) -> dict[str, float]:
    return {P + name: float(v) * scale for (name, scale), v in zip(SCHEDSTAT, text.split(), strict=False)}


@CGROUP_SOURCES.register(SOURCE)
class TasksSource(CgroupSource):
    name = SOURCE
    reads_processes = True

    def __init__(self, roots: Roots | None = None) -> None:
        super().__init__(roots)
        self._state: dict[str, ChurnAccumulator] = {}
        self._pids: dict[str, set[int]] = {}  # per target: the processes whose descriptors are open
        self.files = KernelFiles(remember_absent=False)

    def specs(self) -> list[MetricSpec]:
        return _specs()

    def _read(self, path: str) -> str:
        text = self.files.read(path)
        if text is None:
            raise FileNotFoundError(path)  # the process exited
        return text

    def read_process(self, pid: int) -> tuple[dict[str, float], dict[str, float], str]:
        base = f"{self.roots.procfs}/{pid}"
        counters, gauges, state = parse_stat(self._read(f"{base}/stat"))
        status_counters, status_gauges = parse_status(self._read(f"{base}/status"))
        counters.update(status_counters)
        gauges.update(status_gauges)
        for name, parse in (("io", parse_io), ("schedstat", parse_schedstat)):
            # io needs ptrace rights over the process; schedstat needs CONFIG_SCHEDSTATS
            with contextlib.suppress(FileNotFoundError, PermissionError, SourceUnavailable):
                counters.update(parse(self._read(f"{base}/{name}")))
        return counters, gauges, state

    def read(self, target: CgroupTarget) -> dict[str, float]:
        pids = member_pids(target, self.roots, self.files)
        state = self._state.setdefault(target.name, ChurnAccumulator())
        gauges: dict[str, float] = {P + "processes": 0.0}
        gauges.update(dict.fromkeys(STATE_COLUMNS.values(), 0.0))
        seen: dict[int, dict[str, float]] = {}
        for pid in pids:
            try:
                counters, process_gauges, process_state = self.read_process(pid)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue  # exited between listing and reading (a reaped process reads empty)
            gauges[P + "processes"] += 1
            if process_state in STATE_COLUMNS:
                gauges[STATE_COLUMNS[process_state]] += 1
            for name, value in process_gauges.items():
                gauges[name] = gauges.get(name, 0.0) + value
            seen[pid] = counters
        for gone in self._pids.get(target.name, set()) - set(pids):
            self.files.forget(f"{self.roots.procfs}/{gone}")  # its descriptors would only return ESRCH
        self._pids[target.name] = set(pids)
        return {**state.update(seen), **gauges}

    def forget(self, target: CgroupTarget) -> None:
        super().forget(target)
        self._state.pop(target.name, None)
        for pid in self._pids.pop(target.name, set()):
            self.files.forget(f"{self.roots.procfs}/{pid}")
