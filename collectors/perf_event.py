"""perf_event counters per cgroup: hardware events where a PMU exists, software events always.

One perf group per (cgroup, event group, CPU), opened in cgroup mode (``PERF_FLAG_PID_CGROUP``: ``pid`` is an
fd of the cgroup's directory, ``cpu`` a real CPU, since cgroup events are per-CPU). Such an event counts the
cgroup's tasks and its descendants'. Groups stay open across samples (opening costs far more than reading)
and are closed in ``forget``/``close``. Values are extrapolated by time_enabled / time_running, and the share
of the interval each group really counted is exported as ``perf_<group>_running_ratio`` (1: no multiplexing).

Hardware events are probed in ``open``: an event the kernel refuses (ENOENT: no PMU, as in most VMs) is listed
in ``unavailable`` with the reason, logged once, and never emitted (null columns, not zeros). Hardware and
software events go through the same open/read/parse code, so a fake ``PerfKernel`` fed recorded group-read
buffers exercises the hardware path on machines without a PMU.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from cotenant.collectors.base import (
    CGROUP_SOURCES,
    CgroupSource,
    CgroupTarget,
    MetricGroup,
    MetricKind,
    MetricSpec,
    Roots,
    SourceUnavailable,
)
from cotenant.collectors.perf_event_abi import (
    ALL_EVENTS,
    GROUP_NAMES,
    PERF_FLAG_FD_CLOEXEC,
    PERF_FLAG_PID_CGROUP,
    LinuxPerfKernel,
    PerfEventDef,
    PerfKernel,
    group_read_size,
    pack_attr,
    parse_cpu_list,
    parse_group_read,
    running_ratio_metric,
    scaled_values,
)
from cotenant.collectors.targets import target_pid

log = logging.getLogger(__name__)

# Errors that mean "this event does not exist here", as opposed to "you may not" or "out of fds".
_EVENT_MISSING = {errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV}


def online_cpus() -> list[int]:
    return parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text())


@dataclass
class _CpuGroup:
    leader_fd: int
    fds: list[int]
    events: list[PerfEventDef]  # group order = order of values in a group read


@dataclass
class _TargetCounters:
    inode: int  # of the cgroup directory or /proc/<pid>
    groups: dict[str, list[_CpuGroup]]
    previous_times: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (enabled, running)

    def all_fds(self) -> list[int]:
        return [fd for cpu_groups in self.groups.values() for group in cpu_groups for fd in group.fds]


@CGROUP_SOURCES.register("perf_event")
class PerfEventSource(CgroupSource):
    name = "perf_event"

    def __init__(
        self, roots: Roots | None = None, kernel: PerfKernel | None = None, cpus: list[int] | None = None
    ) -> None:
        super().__init__(roots)
        self._kernel = kernel
        self._cpus = cpus
        self._available: list[PerfEventDef] = []
        self.unavailable: dict[str, str] = {}  # metric -> reason; for the runner's self-observation
        self._targets: dict[str, _TargetCounters] = {}

    def specs(self) -> list[MetricSpec]:
        counters = [
            MetricSpec(e.metric, e.unit, self.name, MetricKind.COUNTER, e.description, e.metric_group)
            for e in ALL_EVENTS
        ]
        ratios = [
            MetricSpec(running_ratio_metric(g), "ratio", self.name, MetricKind.GAUGE,
                       f"share of the interval the '{g}' perf group was counting (< 1: multiplexed)",
                       MetricGroup.OTHER)
            for g in GROUP_NAMES
        ]  # fmt: skip
        return counters + ratios

    def open(self) -> None:
        if self._kernel is None:
            self._kernel = LinuxPerfKernel()
        if self._cpus is None:
            self._cpus = online_cpus()
        _raise_fd_limit()
        self._available, self.unavailable = [], {}
        for event in ALL_EVENTS:
            reason = self._probe(event)
            if reason is None:
                self._available.append(event)
            else:
                self.unavailable[event.metric] = reason
        if not self._available:
            raise SourceUnavailable(f"no perf event can be opened: {self.unavailable}")
        self._check_cpu_wide_permission()
        missing_hw = sorted(
            m for m in self.unavailable if any(e.metric == m and e.hardware for e in ALL_EVENTS)
        )
        if missing_hw:
            listing = ", ".join(f"{metric} ({self.unavailable[metric]})" for metric in missing_hw)
            log.warning("perf_event: %d hardware events unavailable: %s", len(missing_hw), listing)

    def _probe(self, event: PerfEventDef) -> str | None:
        """Open the event on this process (needs no privilege) to learn whether the kernel has it."""
        assert self._kernel is not None
        try:
            fd = self._kernel.open_event(pack_attr(event), 0, -1, -1, PERF_FLAG_FD_CLOEXEC)
        except OSError as error:
            if error.errno in _EVENT_MISSING:
                hint = " (no PMU)" if event.hardware and error.errno == errno.ENOENT else ""
                return f"{errno.errorcode.get(error.errno or 0, error.errno)}{hint}"
            raise SourceUnavailable(f"perf_event_open refused: {error}") from error
        self._kernel.close(fd)
        return None

    def _check_cpu_wide_permission(self) -> None:
        """Cgroup events are CPU-wide: they need root, CAP_PERFMON or perf_event_paranoid <= 0."""
        assert self._kernel is not None and self._cpus
        try:
            fd = self._kernel.open_event(
                pack_attr(self._available[0]), -1, self._cpus[0], -1, PERF_FLAG_FD_CLOEXEC
            )
        except PermissionError as error:
            raise SourceUnavailable(
                f"CPU-wide perf events refused ({error}): needs CAP_PERFMON or perf_event_paranoid <= 0"
            ) from error
        self._kernel.close(fd)

    def read(self, target: CgroupTarget) -> dict[str, float]:
        pid = target_pid(target)
        if pid is not None:
            location = self.roots.procfs / str(pid)
        else:
            directory = target.v2 or target.v1.get("perf_event")
            if directory is None:
                raise FileNotFoundError(f"cgroup {target.name} has no cgroup2 or perf_event v1 directory")
            location = directory
        # A removed cgroup keeps counting nothing behind our open fds, and a re-created one (or a reused pid)
        # is a new target: the inode tells them apart.
        inode = os.stat(location).st_ino
        counters = self._targets.get(target.name)
        if counters is not None and counters.inode != inode:
            self.forget(target)
            counters = None
        if counters is None:
            counters = self._open_process(pid) if pid is not None else self._open_cgroup(location)
            counters.inode = inode
            self._targets[target.name] = counters
        return self._read_counters(counters)

    def _open_cgroup(self, directory: Path) -> _TargetCounters:
        assert self._cpus is not None
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return self._open_groups(directory_fd, self._cpus, PERF_FLAG_PID_CGROUP, inherit=False)
        finally:
            os.close(directory_fd)

    def _open_process(self, pid: int) -> _TargetCounters:
        """One group per event group on any CPU; inherit covers threads and children started later."""
        try:
            return self._open_groups(pid, [-1], 0, inherit=True)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            return self._open_groups(pid, [-1], 0, inherit=False)  # kernels before group reads + inherit

    def _open_groups(self, pid: int, cpus: list[int], flags: int, inherit: bool) -> _TargetCounters:
        counters = _TargetCounters(0, {})
        try:
            for group_name in GROUP_NAMES:
                events = [e for e in self._available if e.group == group_name]
                if events:
                    counters.groups[group_name] = [
                        self._open_group(pid, cpu, events, flags, inherit) for cpu in cpus
                    ]
        except BaseException:
            self._close_fds(counters.all_fds())
            raise
        return counters

    def _open_group(
        self, pid: int, cpu: int, events: list[PerfEventDef], flags: int, inherit: bool
    ) -> _CpuGroup:
        assert self._kernel is not None
        group = _CpuGroup(-1, [], [])
        try:
            for event in events:
                attr = pack_attr(event, inherit=inherit)
                try:
                    fd = self._kernel.open_event(
                        attr, pid, cpu, group.leader_fd, flags | PERF_FLAG_FD_CLOEXEC
                    )
                except OSError as error:
                    if error.errno not in _EVENT_MISSING or inherit:
                        raise
                    # Exists for this process but not in cgroup mode or on this CPU: drop it everywhere.
                    self.unavailable[event.metric] = f"cgroup mode: {errno.errorcode.get(error.errno, '?')}"
                    continue
                if group.leader_fd < 0:
                    group.leader_fd = fd
                group.fds.append(fd)
                group.events.append(event)
        except BaseException:
            self._close_fds(group.fds)
            raise
        return group

    def _read_counters(self, counters: _TargetCounters) -> dict[str, float]:
        assert self._kernel is not None
        values: dict[str, float] = {}
        for group_name, cpu_groups in counters.groups.items():
            totals: dict[str, float] = {}
            enabled = running = 0
            complete = True
            for group in cpu_groups:
                if group.leader_fd < 0:
                    continue
                buffer = self._kernel.read(group.leader_fd, group_read_size(len(group.events)))
                reading = parse_group_read(buffer, len(group.events))
                enabled += reading.time_enabled_ns
                running += reading.time_running_ns
                scaled = scaled_values(reading)
                if scaled is None:
                    complete = False  # multiplexed out on this CPU for its whole life: the sum is unknown
                    continue
                for event, value in zip(group.events, scaled, strict=True):
                    totals[event.metric] = totals.get(event.metric, 0.0) + value * event.scale
            previous_enabled, previous_running = counters.previous_times.get(group_name, (0, 0))
            counters.previous_times[group_name] = (enabled, running)
            if enabled > previous_enabled:
                values[running_ratio_metric(group_name)] = (running - previous_running) / (
                    enabled - previous_enabled
                )
            if complete:
                values.update((m, v) for m, v in totals.items() if m not in self.unavailable)
        return values

    def forget(self, target: CgroupTarget) -> None:
        counters = self._targets.pop(target.name, None)
        if counters is not None:
            self._close_fds(counters.all_fds())

    def close(self) -> None:
        for counters in self._targets.values():
            self._close_fds(counters.all_fds())
        self._targets.clear()

    def open_fd_count(self) -> int:
        return sum(len(counters.all_fds()) for counters in self._targets.values())

    def _close_fds(self, fds: list[int]) -> None:
        assert self._kernel is not None
        for fd in fds:
            try:
                self._kernel.close(fd)
            except OSError:
                log.debug("perf_event: closing fd %d failed", fd, exc_info=True)


def _raise_fd_limit() -> None:
    """fds = events x CPUs x cgroups; lift the soft limit to the hard one (as perf does) before it bites."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
