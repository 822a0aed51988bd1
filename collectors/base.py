"""The contract every telemetry source implements, and the metric catalogue types.

A source reads *raw* values: cumulative counters exactly as the kernel reports them, and gauges. Turning
counters into per-second rates (and handling resets) happens once, in ``cotenant.collectors.derive``.
Parsing is kept in pure functions apart from the I/O so that fixture trees and golden outputs test it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
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

    @property
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


def read_text(path: Path) -> str:
    """Read a kernel file; PermissionError becomes SourceUnavailable so the runner reports the source."""
    try:
        return path.read_text()
    except PermissionError as error:
        raise SourceUnavailable(f"permission denied reading {path}") from error


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


def pick_value(text: str, key: str, name: str, scale: float) -> dict[str, float]:
    """One ``key value`` line of a flat-keyed file as ``{name: value * scale}`` (empty when absent)."""
    raw = parse_flat_keyed(text)
    return {name: raw[key] * scale} if key in raw else {}


def parse_pressure(text: str) -> dict[str, float]:
    """PSI: ``some|full avg10=.. avg60=.. avg300=.. total=<usec>`` -> ``some_avg10`` .. ``full_total``.

    ``total`` stays in microseconds here; callers convert to seconds. ``full`` may be absent (host cpu).
    """
    values: dict[str, float] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        for field_text in fields:
            key, _, number = field_text.partition("=")
            values[f"{kind}_{key}"] = float(number)
    return values


PRESSURE_RESOURCES = {"cpu": MetricGroup.CPU, "memory": MetricGroup.MEMORY, "io": MetricGroup.IO}


def pressure_specs(prefix: str, source: str) -> list[MetricSpec]:
    """The 8 PSI metrics per resource (some/full x avg10/60/300 + stall time), shared by host and cgroup."""
    specs: list[MetricSpec] = []
    for resource, group in PRESSURE_RESOURCES.items():
        for kind in ("some", "full"):
            who = "at least one task" if kind == "some" else "all non-idle tasks"
            for window in ("10", "60", "300"):
                specs.append(
                    gauge(
                        f"{prefix}{resource}_pressure_{kind}_avg{window}_ratio",
                        "ratio",
                        source,
                        group,
                        f"share of time {who} stalled on {resource}, {window} s average",
                    )
                )
            specs.append(
                counter(
                    f"{prefix}{resource}_pressure_{kind}_stall_seconds_total",
                    "seconds",
                    source,
                    group,
                    f"time {who} stalled on {resource}",
                )
            )
    return specs


def pressure_values(prefix: str, resource: str, text: str) -> dict[str, float]:
    """Parsed PSI text in the names of ``pressure_specs`` (averages as ratios, stall time in seconds)."""
    values: dict[str, float] = {}
    for key, number in parse_pressure(text).items():
        kind, _, field_name = key.partition("_")
        if field_name == "total":
            values[f"{prefix}{resource}_pressure_{kind}_stall_seconds_total"] = number / 1e6
        else:
            values[f"{prefix}{resource}_pressure_{kind}_{field_name}_ratio"] = number / 100.0
    return values


Parser = Callable[[str], dict[str, float]]


def read_cgroup_files(directory: Path, parsers: Mapping[str, Parser]) -> dict[str, float]:
    """Parse each file of ``parsers`` found in ``directory``; a vanished cgroup raises FileNotFoundError."""
    if not directory.is_dir():
        raise FileNotFoundError(f"cgroup directory {directory} vanished")
    values: dict[str, float] = {}
    for filename, parse in parsers.items():
        try:
            text = read_text(directory / filename)
        except OSError:
            continue  # absent (controller not enabled) or ENODEV while the cgroup is being removed: null
        values.update(parse(text))
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

    @abstractmethod
    def read(self) -> dict[str, float]:
        """Raw values keyed by ``MetricSpec.name``; a metric absent from the dict is unavailable (null)."""


class CgroupSource(Source):
    scope: Scope = "cgroup"

    @abstractmethod
    def read(self, target: CgroupTarget) -> dict[str, float]:
        """Raw values for one target. Raise FileNotFoundError / ProcessLookupError if the cgroup vanished."""

    def forget(self, target: CgroupTarget) -> None:
        """The target is gone or no longer selected: release anything held for it."""


HOST_SOURCES: Registry[type[HostSource]] = Registry("host source")
CGROUP_SOURCES: Registry[type[CgroupSource]] = Registry("cgroup source")
