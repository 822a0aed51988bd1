"""The perf_event kernel ABI: pure data and parsers, plus the thin syscall layer (``PerfKernel``).

``perf_event_open(2)`` takes a ``struct perf_event_attr``; a group leader opened with ``read_format`` GROUP |
TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING returns, on ``read``, ``nr, time_enabled, time_running, value[nr]``
(all u64, native byte order). Keeping the layout here lets tests feed recorded buffers through the same parser
the live reader uses, which is how the hardware path is covered on machines without a PMU. The syscalls sit
behind the ``PerfKernel`` protocol so that tests inject a fake kernel.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from dataclasses import dataclass
from typing import Protocol

from cotenant.collectors.base import MetricGroup, SourceUnavailable

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_HW_CACHE = 3

PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_GROUP = 1 << 3
GROUP_READ_FORMAT = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING

PERF_FLAG_PID_CGROUP = 1 << 2
PERF_FLAG_FD_CLOEXEC = 1 << 3

# PERF_ATTR_SIZE_VER5: every field we set exists since Linux 4.1; older-than-that kernels are out of scope.
PERF_ATTR_SIZE = 112
_ATTR_HEAD = struct.Struct("=IIQQQQQ")  # type, size, config, sample_period, sample_type, read_format, flags
_U64 = struct.Struct("=Q")
_GROUP_HEADER = struct.Struct("=QQQ")  # nr, time_enabled, time_running

# perf_event_attr bit-field flags (bit positions from include/uapi/linux/perf_event.h).
_ATTR_INHERIT = 1 << 1  # count threads and children created after open (process targets)
_ATTR_EXCLUDE_HV = 1 << 6  # guests cannot count hypervisor time; asking would make hardware events fail


def _hw_cache(cache: int, op: int, result: int) -> int:
    return cache | (op << 8) | (result << 16)


_CACHE_L1D, _CACHE_LL, _CACHE_DTLB = 0, 2, 3
_OP_READ = 0
_RESULT_ACCESS, _RESULT_MISS = 0, 1


@dataclass(frozen=True)
class PerfEventDef:
    """One counter: how to open it and the raw metric it becomes.

    ``group`` is the perf group it is read with: events that are divided by each other (instructions / cycles)
    share a group so that they are counted over exactly the same time. ``scale`` turns the kernel's unit into
    the metric's base unit (nanoseconds -> seconds for the clocks).
    """

    metric: str
    type: int
    config: int
    group: str
    unit: str
    metric_group: MetricGroup
    description: str
    scale: float = 1.0

    @property
    def hardware(self) -> bool:
        return self.type != PERF_TYPE_SOFTWARE


_NS = 1e-9
SOFTWARE_EVENTS: tuple[PerfEventDef, ...] = (
    PerfEventDef("perf_task_clock_seconds_total", 1, 1, "software", "seconds", MetricGroup.CPU,
                 "CPU time the cgroup's tasks ran, counted by perf (task-clock)", _NS),
    PerfEventDef("perf_cpu_clock_seconds_total", 1, 0, "software", "seconds", MetricGroup.CPU,
                 "CPU clock time while the cgroup was on a CPU (cpu-clock)", _NS),
    PerfEventDef("perf_context_switches_total", 1, 3, "software", "switches", MetricGroup.CPU,
                 "context switches of the cgroup's tasks"),
    PerfEventDef("perf_cpu_migrations_total", 1, 4, "software", "migrations", MetricGroup.CPU,
                 "migrations of the cgroup's tasks between CPUs"),
    PerfEventDef("perf_cgroup_switches_total", 1, 11, "software", "switches", MetricGroup.CPU,
                 "switches between cgroups on a CPU involving this cgroup (Linux >= 5.13)"),
    PerfEventDef("perf_page_faults_total", 1, 2, "software", "faults", MetricGroup.MEMORY,
                 "page faults (minor and major)"),
    PerfEventDef("perf_minor_faults_total", 1, 5, "software", "faults", MetricGroup.MEMORY,
                 "minor page faults (no I/O needed)"),
    PerfEventDef("perf_major_faults_total", 1, 6, "software", "faults", MetricGroup.MEMORY,
                 "major page faults (served from disk)"),
    PerfEventDef("perf_alignment_faults_total", 1, 7, "software", "faults", MetricGroup.OTHER,
                 "unaligned memory accesses fixed up by the kernel"),
    PerfEventDef("perf_emulation_faults_total", 1, 8, "software", "faults", MetricGroup.OTHER,
                 "instructions emulated by the kernel"),
)  # fmt: skip

# Hardware groups are small because a group is only scheduled when all its members fit the PMU's counters at
# once; a single big group would never count on a 4-counter core.
HARDWARE_EVENTS: tuple[PerfEventDef, ...] = (
    PerfEventDef("perf_cpu_cycles_total", 0, 0, "hw_cpi", "cycles", MetricGroup.CPU, "core cycles"),
    PerfEventDef("perf_instructions_total", 0, 1, "hw_cpi", "instructions", MetricGroup.CPU,
                 "instructions retired"),
    PerfEventDef("perf_ref_cycles_total", 0, 9, "hw_cpi", "cycles", MetricGroup.CPU,
                 "reference cycles (not affected by frequency scaling)"),
    PerfEventDef("perf_cache_references_total", 0, 2, "hw_cache", "references", MetricGroup.CACHE_MEMBW,
                 "last-level cache references"),
    PerfEventDef("perf_cache_misses_total", 0, 3, "hw_cache", "misses", MetricGroup.CACHE_MEMBW,
                 "last-level cache misses"),
    PerfEventDef("perf_branch_instructions_total", 0, 4, "hw_branch", "instructions", MetricGroup.CPU,
                 "branch instructions retired"),
    PerfEventDef("perf_branch_misses_total", 0, 5, "hw_branch", "misses", MetricGroup.CPU,
                 "mispredicted branches"),
    PerfEventDef("perf_llc_loads_total", 3, _hw_cache(_CACHE_LL, _OP_READ, _RESULT_ACCESS), "hw_llc",
                 "loads", MetricGroup.CACHE_MEMBW, "last-level cache load accesses"),
    PerfEventDef("perf_llc_load_misses_total", 3, _hw_cache(_CACHE_LL, _OP_READ, _RESULT_MISS), "hw_llc",
                 "misses", MetricGroup.CACHE_MEMBW, "last-level cache load misses (memory bandwidth proxy)"),
    PerfEventDef("perf_l1d_load_misses_total", 3, _hw_cache(_CACHE_L1D, _OP_READ, _RESULT_MISS), "hw_tlb",
                 "misses", MetricGroup.CACHE_MEMBW, "L1 data cache load misses"),
    PerfEventDef("perf_dtlb_load_misses_total", 3, _hw_cache(_CACHE_DTLB, _OP_READ, _RESULT_MISS), "hw_tlb",
                 "misses", MetricGroup.CACHE_MEMBW, "data TLB load misses"),
    PerfEventDef("perf_stalled_cycles_frontend_total", 0, 7, "hw_stall", "cycles", MetricGroup.CPU,
                 "cycles stalled in the front end (not on every PMU)"),
    PerfEventDef("perf_stalled_cycles_backend_total", 0, 8, "hw_stall", "cycles", MetricGroup.CPU,
                 "cycles stalled in the back end (not on every PMU)"),
)  # fmt: skip

ALL_EVENTS: tuple[PerfEventDef, ...] = SOFTWARE_EVENTS + HARDWARE_EVENTS
GROUP_NAMES: tuple[str, ...] = tuple(dict.fromkeys(event.group for event in ALL_EVENTS))


def running_ratio_metric(group: str) -> str:
    """Gauge name for a group's multiplexing quality (share of the interval the group was really counting)."""
    return f"perf_{group}_running_ratio"


def pack_attr(event: PerfEventDef, read_format: int = GROUP_READ_FORMAT, inherit: bool = False) -> bytes:
    """``struct perf_event_attr`` for a counting (not sampling) event, enabled at open."""
    flags = _ATTR_EXCLUDE_HV | (_ATTR_INHERIT if inherit else 0)
    head = _ATTR_HEAD.pack(event.type, PERF_ATTR_SIZE, event.config, 0, 0, read_format, flags)
    return head + bytes(PERF_ATTR_SIZE - len(head))


def group_read_size(n_events: int) -> int:
    return _GROUP_HEADER.size + n_events * _U64.size


@dataclass(frozen=True)
class GroupReading:
    """One group on one CPU: cumulative raw values (group order) and the times used to scale them."""

    time_enabled_ns: int
    time_running_ns: int
    values: tuple[int, ...]


def parse_group_read(buffer: bytes, n_events: int) -> GroupReading:
    """Parse a GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING read; a malformed buffer is a ValueError."""
    if len(buffer) < _GROUP_HEADER.size:
        raise ValueError(f"perf group read of {len(buffer)} bytes is shorter than its header")
    nr, enabled, running = _GROUP_HEADER.unpack_from(buffer)
    if nr != n_events:
        raise ValueError(f"perf group read reports {nr} events, expected {n_events}")
    if len(buffer) < group_read_size(nr):
        raise ValueError(f"perf group read of {len(buffer)} bytes is too short for {nr} events")
    values = struct.unpack_from(f"={nr}Q", buffer, _GROUP_HEADER.size)
    return GroupReading(enabled, running, values)


def scaled_values(reading: GroupReading) -> tuple[float, ...] | None:
    """Values extrapolated to the whole enabled time; None when the group never got a counter.

    A cgroup event is only enabled while the cgroup runs on that CPU, so ``enabled == 0`` means a true zero.
    ``running == 0`` with ``enabled > 0`` means the group was multiplexed out all along: unknown, not zero.
    """
    if reading.time_enabled_ns == 0:
        return tuple(0.0 for _ in reading.values)
    if reading.time_running_ns == 0:
        return None
    factor = reading.time_enabled_ns / reading.time_running_ns
    return tuple(value * factor for value in reading.values)


def parse_cpu_list(text: str) -> list[int]:
    """Parse the kernel's CPU list format (``0-3,8,10-11``), e.g. /sys/devices/system/cpu/online."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


_SYSCALL_NUMBERS = {"x86_64": 298, "aarch64": 241, "arm64": 241, "ppc64le": 319, "s390x": 331}


class PerfKernel(Protocol):
    """The three system calls the reader needs; tests inject a fake fed with recorded buffers."""

    def open_event(self, attr: bytes, pid: int, cpu: int, group_fd: int, flags: int) -> int: ...

    def read(self, fd: int, size: int) -> bytes: ...

    def close(self, fd: int) -> None: ...


class LinuxPerfKernel:
    """perf_event_open through libc's ``syscall`` (glibc has no wrapper); read/close are plain fd calls."""

    def __init__(self) -> None:
        machine = platform.machine()
        if machine not in _SYSCALL_NUMBERS:
            raise SourceUnavailable(f"perf_event_open syscall number unknown for {machine}")
        self._number = _SYSCALL_NUMBERS[machine]
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall

    def open_event(self, attr: bytes, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        fd = int(self._syscall(self._number, ctypes.c_char_p(attr), pid, cpu, group_fd, flags))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"perf_event_open: {os.strerror(code)}")
        return fd

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)
