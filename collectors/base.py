"""The contract every telemetry source implements, and the metric catalogue types.

A source reads *raw* values: cumulative counters exactly as the kernel reports them, and gauges. Turning
counters into per-second rates (and handling resets) happens once, in ``cotenant.collectors.derive``.
Parsing is kept in pure functions apart from the I/O so that fixture trees and golden outputs test it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource as rlimits
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from cotenant.registry import Registry

# Kernel "no limit" sentinels (v1 memory limits: LONG_MAX rounded to pages) are reported as null, not 8 EiB.
UNLIMITED_THRESHOLD = 2.0**62


class MetricKind(StrEnum):
    COUNTER = "counter"  # cumulative; derived into a per-second rate, first sample dropped
    GAUGE = "gauge"  # instantaneous; passed through


class MetricGroup(StrEnum):
    """The resource vocabulary used end to end, down to the service's 'driving resource'."""

    CPU = "cpu"
    MEMORY = "memory"
    CACHE_MEMBW = "cache_membw"
    IO = "io"
    NETWORK = "network"
    OTHER = "other"


@dataclass(frozen=True)
class MetricSpec:
    """One raw metric as a source reads it.

    ``name`` is the raw name (counters end in ``_total``); ``derived_name`` is the column written to Parquet.
    """

    name: str
    unit: str
    source: str
    kind: MetricKind
    description: str
    group: MetricGroup

    @cached_property  # read for every value of every tick by ``derive``
    def derived_name(self) -> str:
        if self.kind is MetricKind.GAUGE:
            return self.name
        stem = self.name.removesuffix("_total")
        return f"{stem}_per_second"


@dataclass(frozen=True)
class CgroupTarget:
    """A cgroup sampled as one target; paths exist for the hierarchies where it exists.

    ``name`` is the path relative to the hierarchy roots (``cotenant-lab/r0007/target``).
    ``v1`` maps a v1 controller (``cpuacct``, ``memory``, ``blkio``, ``cpu``, ``pids``) to its directory.
    """

    name: str
    v2: Path | None = None
    v1: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Roots:
    """Where a source reads the machine; injected so that fixture trees stand in for /proc and cgroupfs."""

    procfs: Path = Path("/proc")
    cgroup: Path = Path("/sys/fs/cgroup")


def counter(name: str, unit: str, source: str, group: MetricGroup, description: str) -> MetricSpec:
    """A cumulative counter; ``name`` ends in ``_total`` so its rate column is ``<stem>_per_second``."""
    return MetricSpec(name, unit, source, MetricKind.COUNTER, description, group)


def gauge(name: str, unit: str, source: str, group: MetricGroup, description: str) -> MetricSpec:
    return MetricSpec(name, unit, source, MetricKind.GAUGE, description, group)


Parser = Callable[[str], dict[str, float]]

# Settings files (limits, weights, quotas, cpusets) change only when someone writes them: re-read this often.
SETTINGS_REFRESH_SECONDS = 10.0
READ_CHUNK = 1 << 16  # kernel seq_files fill the whole buffer, so a short read is the end of the file
_GONE_ERRNOS = {errno.ENODEV, errno.ESRCH, errno.ENOENT}  # cgroup removed / process reaped behind an open fd


def _read_fd(fd: int) -> str:
    """The whole file behind ``fd`` from offset 0 (pread: the kernel regenerates the content each time)."""
    data = os.pread(fd, READ_CHUNK, 0)
    if len(data) == READ_CHUNK:  # rare large file (memory.numa_stat on big NUMA hosts): read the rest
        chunks = [data]
        while len(chunks[-1]) == READ_CHUNK:
            chunks.append(os.pread(fd, READ_CHUNK, READ_CHUNK * len(chunks)))
        data = b"".join(chunks)
    return data.decode()


def read_text(path: Path | str) -> str:
    """Read a kernel file; PermissionError becomes SourceUnavailable so the runner reports the source.

    ``os.open``/``os.read`` rather than ``Path.read_text``: the buffered text stack costs more CPU than the
    kernel read itself for these small files, at thousands of reads per second.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError as error:
        raise SourceUnavailable(f"permission denied reading {path}") from error
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


class KernelFiles:
    """Small kernel files read through descriptors kept open between samples.

    Opening a cgroupfs or procfs file (path walk, allocation) costs more than reading it, and every file is
    read every second; ``pread(fd, n, 0)`` on a kept descriptor returns fresh content. A descriptor whose
    cgroup was removed (ENODEV) or whose process was reaped (ESRCH) is dropped and the path opened again, so
    a re-created cgroup or a reused pid is read afresh. Files absent from an existing directory (a controller
    not enabled) are not retried every tick but every ``retry_absent_seconds``. Past ``max_open`` descriptors
    files are read open-read-close, so huge targets cannot exhaust the fd limit.
    """

    def __init__(
        self, retry_absent_seconds: float = 30.0, max_open: int | None = None, remember_absent: bool = True
    ) -> None:
        self.retry_absent_seconds = retry_absent_seconds
        self.remember_absent = remember_absent  # off for per-process files: absent there means exited
        soft_limit = rlimits.getrlimit(rlimits.RLIMIT_NOFILE)[0]
        self.max_open = max_open if max_open is not None else max(64, soft_limit // 4)
        self._fds: dict[str, int] = {}
        self._absent: dict[str, float] = {}  # path -> monotonic time of the next attempt
        self._settings: dict[str, tuple[float, str]] = {}  # path -> (monotonic time read, text)
        self._parsed: dict[str, tuple[str, dict[str, float]]] = {}  # path -> (text, what it parsed to)

    def read_parsed(self, path: str, parse: Parser, setting: bool = False) -> dict[str, float] | None:
        """``parse`` of the file's text (None when absent), reusing the last result while the text is the
        same: settings, flags, idle counters and PSI of quiet cgroups rarely change. Callers must not
        modify the returned dict."""
        text = self.read_setting(path) if setting else self.read(path)
        if text is None:
            return None
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == text:
            return cached[1]
        values = parse(text)
        self._parsed[path] = (text, values)
        return values

    def read_setting(self, path: str) -> str | None:
        """Like ``read`` for a file an operator writes (a limit, a weight): re-read every
        ``SETTINGS_REFRESH_SECONDS``, its last text reused in between."""
        cached = self._settings.get(path)
        now = time.monotonic()
        if cached is not None and now - cached[0] < SETTINGS_REFRESH_SECONDS:
            return cached[1]
        text = self.read(path)
        if text is None:
            self._settings.pop(path, None)
        else:
            self._settings[path] = (now, text)
        return text

    def read(self, path: str) -> str | None:
        """The file's text, or None when it does not exist (raises SourceUnavailable on EACCES)."""
        fd = self._fds.get(path)
        if fd is not None:
            try:
                return _read_fd(fd)
            except OSError as error:
                self._drop(path)
                if error.errno not in _GONE_ERRNOS:
                    raise
        retry_at = self._absent.get(path)
        if retry_at is not None and time.monotonic() < retry_at:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self.remember_absent:
                self._absent[path] = time.monotonic() + self.retry_absent_seconds
            return None
        except PermissionError as error:
            raise SourceUnavailable(f"permission denied reading {path}") from error
        self._absent.pop(path, None)
        try:
            text = _read_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        if len(self._fds) < self.max_open:
            self._fds[path] = fd
        else:
            os.close(fd)
        return text

    def forget(self, directory: str) -> None:
        """Close and forget everything under ``directory`` (a target that is gone or deselected)."""
        prefix = directory.rstrip("/") + "/"
        for path in [p for p in self._fds if p.startswith(prefix)]:
            self._drop(path)
        for path in [p for p in self._absent if p.startswith(prefix)]:
            del self._absent[path]
        for path in [p for p in self._settings if p.startswith(prefix)]:
            del self._settings[path]
        for path in [p for p in self._parsed if p.startswith(prefix)]:
            del self._parsed[path]

    def open_count(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        for path in list(self._fds):
            self._drop(path)
        self._absent.clear()
        self._settings.clear()
        self._parsed.clear()

    def _drop(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def parse_number(text: str) -> float | None:
    """A kernel number; ``max`` and the v1 "unlimited" sentinels become None."""
    if text == "max":
        return None
    value = float(text)
    return None if value >= UNLIMITED_THRESHOLD else value


def parse_flat_keyed(text: str) -> dict[str, float]:
    """``key value`` lines (cpu.stat, memory.stat, memory.events, vmstat)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            number = parse_number(parts[1])
            if number is not None:
                values[parts[0]] = number
    return values


PRESSURE_RESOURCES = {"cpu": MetricGroup.CPU, "memory": MetricGroup.MEMORY, "io": MetricGroup.IO}


def pressure_metric(prefix: str, resource: str, kind: str, field: str) -> str:
    """The name of one PSI metric: ``field`` is ``avg10``/``avg60``/``avg300`` (a ratio) or ``total`` (the
    stall time counter). The one place these names are spelt (specs and the parser both use it)."""
    stem = f"{prefix}{resource}_pressure_{kind}"
    return f"{stem}_stall_seconds_total" if field == "total" else f"{stem}_{field}_ratio"


def pressure_specs(prefix: str, source: str) -> list[MetricSpec]:
    """The 8 PSI metrics per resource (some/full x avg10/60/300 + stall time), shared by host and cgroup."""
    specs: list[MetricSpec] = []
    for resource, group in PRESSURE_RESOURCES.items():
        for kind in ("some", "full"):
            who = "at least one task" if kind == "some" else "all non-idle tasks"
            for window in ("10", "60", "300"):
                specs.append(
                    gauge(
                        pressure_metric(prefix, resource, kind, f"avg{window}"),
                        "ratio",
                        source,
                        group,
                        f"share of time {who} stalled on {resource}, {window} s average",
                    )
                )
            specs.append(
                counter(
                    pressure_metric(prefix, resource, kind, "total"),
                    "seconds",
                    source,
                    group,
                    f"time {who} stalled on {resource}",
                )
            )
    return specs


def read_cgroup_files(
    directory: Path | str,
    parsers: Mapping[str, Parser],
    files: KernelFiles | None = None,
    settings: Collection[str] = (),
) -> dict[str, float]:
    """Parse each file of ``parsers`` found in ``directory``; a vanished cgroup raises FileNotFoundError.

    With ``files`` the descriptors stay open between calls (see ``KernelFiles``) and the file names in
    ``settings`` are re-read only every ``SETTINGS_REFRESH_SECONDS`` and text unchanged since the last read
    is not parsed again; without, each file is opened, closed and parsed (fixture trees, one-off reads).
    """
    base = str(directory)
    values: dict[str, float] = {}
    read_now = 0  # files read this call (not settings reused): none at all may mean the cgroup is gone
    for filename, parse in parsers.items():
        path = f"{base}/{filename}"
        try:
            if files is None:
                parsed: dict[str, float] | None = parse(read_text(path))
            else:
                setting = filename in settings
                parsed = files.read_parsed(path, parse, setting)
                read_now += parsed is not None and not setting
        except OSError:
            continue  # absent (controller not enabled) or ENODEV while the cgroup is being removed: null
        if parsed:
            values.update(parsed)
    if (files is None or not read_now) and not os.path.isdir(base):  # one stat only when nothing was read
        raise FileNotFoundError(f"cgroup directory {base} vanished")
    return values


class ChurnAccumulator:
    """Monotonic totals over a changing set of members (processes, threads) of one target.

    Each member contributes its growth since it was last seen, a new member its whole value, so a member
    leaving does not look like a counter reset to ``derive`` and its history is not lost.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.last: dict[int, dict[str, float]] = {}

    def update(self, members: dict[int, dict[str, float]]) -> dict[str, float]:
        for member, counters in members.items():
            previous = self.last.get(member, {})
            for name, value in counters.items():
                growth = value - previous.get(name, 0.0)
                self.totals[name] = self.totals.get(name, 0.0) + max(growth, 0.0)
        self.last = members
        return dict(self.totals)


class SourceUnavailable(Exception):
    """Raised by ``open`` when a source cannot run here (no PMU, permission denied); the runner reports it."""


Scope = Literal["host", "cgroup"]


class Source(ABC):
    """A telemetry source. One instance lives for the whole collection and may keep file descriptors open."""

    name: str
    scope: Scope
    # Sources that walk every member process or thread cost the most per target: the runner reads them every
    # ``CollectorConfig.process_interval`` and carries their last values in between.
    reads_processes: bool = False

    def __init__(self, roots: Roots | None = None) -> None:
        self.roots = roots or Roots()

    @abstractmethod
    def specs(self) -> list[MetricSpec]:
        """Every metric this source can emit, whether or not it is available on this machine."""

    def open(self) -> None:  # noqa: B027 - most sources need no set-up
        """Probe the machine once; raise SourceUnavailable if the whole source cannot run."""

    def close(self) -> None:  # noqa: B027
        """Release what ``open`` acquired."""


class HostSource(Source):
    scope: Scope = "host"

    def __init__(self, roots: Roots | None = None) -> None:
        super().__init__(roots)
        self.files = KernelFiles()  # /proc files kept open: opening one costs more than reading it

    def read_proc(self, *parts: str) -> str:
        """``<procfs>/<parts>`` through a kept descriptor; FileNotFoundError when it does not exist."""
        path = "/".join((str(self.roots.procfs), *parts))
        text = self.files.read(path)
        if text is None:
            raise FileNotFoundError(path)
        return text

    def close(self) -> None:
        self.files.close()

    @abstractmethod
    def read(self) -> dict[str, float]:
        """Raw values keyed by ``MetricSpec.name``; a metric absent from the dict is unavailable (null)."""


class CgroupSource(Source):
    scope: Scope = "cgroup"

    def __init__(self, roots: Roots | None = None) -> None:
        super().__init__(roots)
        self.files = KernelFiles()  # descriptors of the targets' files, kept open between samples

    @abstractmethod
    def read(self, target: CgroupTarget) -> dict[str, float]:
        """Raw values for one target. Raise FileNotFoundError / ProcessLookupError if the cgroup vanished."""

    def forget(self, target: CgroupTarget) -> None:
        """The target is gone or no longer selected: release anything held for it."""
        for directory in ([target.v2] if target.v2 else []) + list(target.v1.values()):
            self.files.forget(str(directory))

    def close(self) -> None:
        self.files.close()


HOST_SOURCES: Registry[type[HostSource]] = Registry("host source")
CGROUP_SOURCES: Registry[type[CgroupSource]] = Registry("cgroup source")
