"""perf_event counters: the group-read ABI on recorded buffers, the reader through a fake kernel (the only
way to cover hardware events on a machine without a PMU), and live software counters on a real cgroup2 dir."""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest
from cotenant.collectors.base import CGROUP_SOURCES, CgroupTarget, MetricKind, Roots, SourceUnavailable
from cotenant.collectors.perf_event import LinuxPerfKernel, PerfEventSource
from cotenant.collectors.perf_event_abi import (
    ALL_EVENTS,
    GROUP_READ_FORMAT,
    HARDWARE_EVENTS,
    PERF_ATTR_SIZE,
    PERF_FLAG_PID_CGROUP,
    PERF_TYPE_SOFTWARE,
    SOFTWARE_EVENTS,
    GroupReading,
    group_read_size,
    pack_attr,
    parse_cpu_list,
    parse_group_read,
    running_ratio_metric,
    scaled_values,
)

FIXTURES = Path(__file__).parent / "fixtures" / "perf_event"
HARDWARE_METRICS = {event.metric for event in HARDWARE_EVENTS}
# Group order is the order of values in a read: (type, config) -> position is recovered from the attr.
EVENT_BY_KEY = {(event.type, event.config): event for event in ALL_EVENTS}


def pack_group_read(reading: GroupReading) -> bytes:
    """The kernel's layout, written independently of the parser under test."""
    n = len(reading.values)
    return struct.pack(f"=3Q{n}Q", n, reading.time_enabled_ns, reading.time_running_ns, *reading.values)


# reading(cpu, events in group order, read number) -> what the kernel would return for that group leader
GroupReader = Callable[[int, list[str], int], GroupReading]


class FakePerfKernel:
    """Opens hand out fake fds and remember the group structure; reads are answered by ``reader``."""

    def __init__(self, reader: GroupReader, missing: Collection[str] = (), fail_open_after: int = -1) -> None:
        self.reader = reader
        self.missing = missing
        self.fail_open_after = fail_open_after
        self.open_fds: dict[int, tuple[str, int, int]] = {}  # fd -> (metric, cpu, group leader fd)
        self.opens: list[tuple[str, int, int, int, int]] = []
        self.reads: dict[int, int] = {}
        self._next_fd = 1000

    def open_event(self, attr: bytes, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        event_type, _size, config = struct.unpack_from("=IIQ", attr)
        metric = EVENT_BY_KEY[(event_type, config)].metric
        if metric in self.missing:
            raise OSError(errno.ENOENT, "No such file or directory")
        if 0 <= self.fail_open_after <= len(self.opens):
            raise OSError(errno.EMFILE, "Too many open files")
        self.opens.append((metric, pid, cpu, group_fd, flags))
        self._next_fd += 1
        self.open_fds[self._next_fd] = (metric, cpu, group_fd)
        return self._next_fd

    def read(self, fd: int, size: int) -> bytes:
        metric, cpu, leader = self.open_fds[fd]
        assert leader == -1, "group reads go to the leader"
        members = [metric] + [m for m, _c, g in self.open_fds.values() if g == fd]
        number = self.reads.get(fd, 0)
        self.reads[fd] = number + 1
        buffer = pack_group_read(self.reader(cpu, members, number))
        assert size >= len(buffer)
        return buffer

    def close(self, fd: int) -> None:
        del self.open_fds[fd]

    def leaders(self) -> list[int]:
        return [fd for fd, (_m, _c, leader) in self.open_fds.items() if leader == -1]


def steady_reader(enabled_per_read: int, running_share: float) -> GroupReader:
    """Every event counts 1000 + its position per read; the group runs ``running_share`` of the time."""

    def read(cpu: int, members: list[str], number: int) -> GroupReading:
        enabled = enabled_per_read * (number + 1)
        running = int(enabled * running_share)
        return GroupReading(enabled, running, tuple((1000 + i) * (number + 1) for i in range(len(members))))

    return read


def test_parse_recorded_software_group_reads() -> None:
    recorded = json.loads((FIXTURES / "software_group_reads.json").read_text())
    assert recorded["events"] == [event.metric for event in SOFTWARE_EVENTS]
    task_clock_ns = []
    for sample in recorded["samples"]:
        readings = [parse_group_read(bytes.fromhex(buf), len(SOFTWARE_EVENTS)) for buf in sample.values()]
        assert all(r.time_running_ns == r.time_enabled_ns for r in readings)  # software never multiplexes
        task_clock_ns.append(sum(r.values[0] for r in readings))
    # stress-ng --cpu-load 50 was read every second: about half a CPU-second per second.
    rates = [(b - a) / 1e9 for a, b in itertools.pairwise(task_clock_ns)]
    assert all(0.4 < rate < 0.6 for rate in rates), rates


def test_parse_group_read_rejects_malformed_buffers() -> None:
    good = pack_group_read(GroupReading(10, 10, (1, 2, 3)))
    assert parse_group_read(good, 3) == GroupReading(10, 10, (1, 2, 3))
    with pytest.raises(ValueError, match="expected 2"):
        parse_group_read(good, 2)
    with pytest.raises(ValueError, match="too short"):
        parse_group_read(good[:-8], 3)
    with pytest.raises(ValueError, match="header"):
        parse_group_read(good[:16], 3)


def test_scaling_by_enabled_over_running() -> None:
    assert scaled_values(GroupReading(200, 50, (10, 30))) == (40.0, 120.0)
    assert scaled_values(GroupReading(0, 0, (0, 0))) == (0.0, 0.0)  # cgroup never ran here: a true zero
    assert scaled_values(GroupReading(100, 0, (0, 0))) is None  # never got a counter: unknown


def test_attr_layout_and_cpu_list() -> None:
    attr = pack_attr(SOFTWARE_EVENTS[0])
    assert len(attr) == PERF_ATTR_SIZE
    event_type, size, config, _period, _sample_type, read_format = struct.unpack_from("=IIQQQQ", attr)
    assert (event_type, size, config, read_format) == (
        PERF_TYPE_SOFTWARE,
        PERF_ATTR_SIZE,
        1,
        GROUP_READ_FORMAT,
    )
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert group_read_size(2) == 40


def test_specs_cover_every_event_with_unique_unit_names() -> None:
    specs = PerfEventSource().specs()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    assert {event.metric for event in ALL_EVENTS} <= set(names)
    assert all(s.name.endswith("_total") for s in specs if s.kind is MetricKind.COUNTER)
    assert CGROUP_SOURCES["perf_event"] is PerfEventSource


def test_hardware_path_with_a_pmu_scales_and_reports_multiplexing(tmp_path: Path) -> None:
    kernel = FakePerfKernel(steady_reader(enabled_per_read=1000, running_share=0.5))
    source = PerfEventSource(kernel=kernel, cpus=[0, 1])
    source.open()
    assert source.unavailable == {}
    target = CgroupTarget("pod/a", v2=tmp_path)
    first, second = source.read(target), source.read(target)

    cgroup_opens = [o for o in kernel.opens if o[4] & PERF_FLAG_PID_CGROUP]
    assert all(pid >= 0 and cpu in (0, 1) for _m, pid, cpu, _g, _f in cgroup_opens)
    # cycles leads its group, instructions joins it on the same CPU.
    cycles = [o for o in cgroup_opens if o[0] == "perf_cpu_cycles_total"]
    instructions = [o for o in cgroup_opens if o[0] == "perf_instructions_total"]
    assert all(c[3] == -1 for c in cycles) and all(i[3] != -1 for i in instructions)
    # Leader counted 1000 per read at running/enabled = 0.5 on each of 2 CPUs: scaled 2 x 1000 x 2 per read.
    assert first["perf_cpu_cycles_total"] == pytest.approx(4000)
    assert first["perf_instructions_total"] == pytest.approx(4004)
    assert second["perf_cpu_cycles_total"] == pytest.approx(8000)
    assert second[running_ratio_metric("hw_cpi")] == pytest.approx(0.5)
    assert second["perf_task_clock_seconds_total"] == pytest.approx(2 * 2 * 2000 * 1e-9)  # ns -> s, scaled
    assert set(second) >= HARDWARE_METRICS


def test_no_pmu_reports_hardware_unavailable_never_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kernel = FakePerfKernel(steady_reader(1000, 1.0), missing=HARDWARE_METRICS)
    source = PerfEventSource(kernel=kernel, cpus=[0, 1])
    with caplog.at_level(logging.WARNING):
        source.open()
    assert set(source.unavailable) == HARDWARE_METRICS
    assert all("no PMU" in reason for reason in source.unavailable.values())
    assert "hardware events unavailable" in caplog.text
    values = source.read(CgroupTarget("pod/a", v2=tmp_path))
    assert not HARDWARE_METRICS & set(values)
    assert values["perf_context_switches_total"] == pytest.approx(2 * 1002)
    assert values[running_ratio_metric("software")] == 1.0
    assert source.open_fd_count() == len(SOFTWARE_EVENTS) * 2


def test_group_multiplexed_out_all_its_life_is_unknown(tmp_path: Path) -> None:
    kernel = FakePerfKernel(steady_reader(1000, 0.0), missing=HARDWARE_METRICS)
    source = PerfEventSource(kernel=kernel, cpus=[0])
    source.open()
    values = source.read(CgroupTarget("pod/a", v2=tmp_path))
    assert "perf_task_clock_seconds_total" not in values
    assert values[running_ratio_metric("software")] == 0.0


def test_vanished_and_recreated_cgroup(tmp_path: Path) -> None:
    kernel = FakePerfKernel(steady_reader(1000, 1.0), missing=HARDWARE_METRICS)
    source = PerfEventSource(kernel=kernel, cpus=[0, 1])
    source.open()
    directory = tmp_path / "cg"
    directory.mkdir()
    target, other = CgroupTarget("a", v2=directory), CgroupTarget("b", v2=tmp_path)
    source.read(target)
    source.read(other)
    directory.rmdir()
    with pytest.raises(FileNotFoundError):
        source.read(target)
    source.forget(target)
    assert source.open_fd_count() == len(SOFTWARE_EVENTS) * 2  # only the other target's groups remain
    assert "perf_task_clock_seconds_total" in source.read(other)

    directory.mkdir()  # same name, new cgroup: counters restart from the kernel's fresh groups
    source.read(target)
    shutil.rmtree(directory)
    directory.mkdir()
    source.read(target)
    assert source.open_fd_count() == len(SOFTWARE_EVENTS) * 2 * 2
    source.close()
    assert kernel.open_fds == {}


def test_process_target_counts_the_process_with_inherit(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    kernel = FakePerfKernel(steady_reader(1000, 1.0), missing=HARDWARE_METRICS)
    source = PerfEventSource(roots=Roots(procfs=tmp_path), kernel=kernel, cpus=[0, 1])
    source.open()
    target = CgroupTarget("pid:4242")
    values = source.read(target)
    process_opens = kernel.opens[-len(SOFTWARE_EVENTS) :]
    assert {(pid, cpu) for _m, pid, cpu, _g, _f in process_opens} == {(4242, -1)}  # one group, any CPU
    assert not any(flags & PERF_FLAG_PID_CGROUP for *_rest, flags in process_opens)
    assert values["perf_task_clock_seconds_total"] == pytest.approx(1000e-9)
    (tmp_path / "4242").rmdir()
    with pytest.raises(FileNotFoundError):
        source.read(target)


def test_failure_while_opening_a_target_leaks_no_fd(tmp_path: Path) -> None:
    kernel = FakePerfKernel(steady_reader(1000, 1.0), missing=HARDWARE_METRICS, fail_open_after=15)
    source = PerfEventSource(kernel=kernel, cpus=[0, 1])
    source.open()
    with pytest.raises(OSError, match="Too many open files"):
        source.read(CgroupTarget("a", v2=tmp_path))
    assert kernel.open_fds == {}


def test_permission_denied_makes_the_source_unavailable() -> None:
    class DeniedKernel(FakePerfKernel):
        def open_event(self, attr: bytes, pid: int, cpu: int, group_fd: int, flags: int) -> int:
            raise OSError(errno.EACCES, "Permission denied")

    class NoCpuWideKernel(FakePerfKernel):  # an unprivileged user: its own process only
        def open_event(self, attr: bytes, pid: int, cpu: int, group_fd: int, flags: int) -> int:
            if pid == -1 or flags & PERF_FLAG_PID_CGROUP:
                raise OSError(errno.EACCES, "Permission denied")
            return super().open_event(attr, pid, cpu, group_fd, flags)

    with pytest.raises(SourceUnavailable, match="refused"):
        PerfEventSource(kernel=DeniedKernel(steady_reader(1, 1.0)), cpus=[0]).open()
    with pytest.raises(SourceUnavailable, match="CAP_PERFMON"):
        PerfEventSource(kernel=NoCpuWideKernel(steady_reader(1, 1.0)), cpus=[0]).open()


# ---- live: a real cgroup2 directory with a real load -------------------------------------------------------

# The reference is the kernel's own accounting of the same cgroup over the same window (cpu.stat usage_usec),
# not the nominal 0.5 CPU: on a loaded shared machine stress-ng gets far less than it asks for.
RATE_TOLERANCE = 0.15  # relative
RATE_ABSOLUTE = 0.01  # CPU-seconds per second, for a starved load
MAX_RATE = 0.75  # stress-ng --cpu-load 50 never holds more than this over seconds


def cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    return None


@pytest.fixture
def loaded_cgroup() -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    root = cgroup2_root()
    if root is None or shutil.which("stress-ng") is None:
        pytest.skip("needs a cgroup2 mount and stress-ng")
    directory = root / f"cotenant-test-{uuid.uuid4().hex[:12]}"
    directory.mkdir()
    # The shell joins the cgroup before exec so that stress-ng's workers are born inside it.
    load = subprocess.Popen(
        ["sh", "-c", f'echo $$ > "{directory}/cgroup.procs" && exec stress-ng --cpu 1 --cpu-load 50 -t 30'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield directory, load
    finally:
        if load.poll() is None:
            os.killpg(load.pid, signal.SIGKILL)
        load.wait()
        for _ in range(50):
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # busy until the killed workers are reaped
                time.sleep(0.1)


def cpu_usage_seconds(directory: Path) -> float:
    for line in (directory / "cpu.stat").read_text().splitlines():
        key, value = line.split()
        if key == "usage_usec":
            return int(value) / 1e6
    raise AssertionError("cpu.stat has no usage_usec")


@pytest.mark.live
def test_live_software_counters_on_a_loaded_cgroup(
    loaded_cgroup: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    directory, load = loaded_cgroup
    source = PerfEventSource()
    source.open()
    if not Path("/sys/bus/event_source/devices/cpu").exists():  # no PMU on this machine
        assert set(source.unavailable) >= HARDWARE_METRICS
    target = CgroupTarget(directory.name, v2=directory)
    time.sleep(1.0)  # let stress-ng start its worker
    first, usage_first, t_first = source.read(target), cpu_usage_seconds(directory), time.monotonic()
    time.sleep(3.0)
    second, usage_second, t_second = source.read(target), cpu_usage_seconds(directory), time.monotonic()

    elapsed = t_second - t_first
    perf_rate = (second["perf_task_clock_seconds_total"] - first["perf_task_clock_seconds_total"]) / elapsed
    cgroup_rate = (usage_second - usage_first) / elapsed
    assert perf_rate == pytest.approx(cgroup_rate, rel=RATE_TOLERANCE, abs=RATE_ABSOLUTE)
    assert 0 < perf_rate < MAX_RATE
    assert second["perf_context_switches_total"] > first["perf_context_switches_total"]
    assert not set(source.unavailable) & set(second)

    os.killpg(load.pid, signal.SIGKILL)
    load.wait()
    for _ in range(50):
        try:
            directory.rmdir()
            break
        except OSError:
            time.sleep(0.1)
    with pytest.raises(FileNotFoundError):
        source.read(target)
    source.forget(target)
    assert source.open_fd_count() == 0
    source.close()


@pytest.mark.live
def test_linux_kernel_layer_opens_a_software_event_on_itself() -> None:
    kernel = LinuxPerfKernel()
    fd = kernel.open_event(pack_attr(SOFTWARE_EVENTS[0]), 0, -1, -1, 0)
    try:
        reading = parse_group_read(kernel.read(fd, group_read_size(1)), 1)
        assert reading.time_enabled_ns > 0
    finally:
        kernel.close(fd)
