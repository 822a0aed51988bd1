"""The contract every telemetry source implements, and the metric catalogue types.

A source reads *raw* values: cumulative counters exactly as the kernel reports them, and gauges. Turning
counters into per-second rates (and handling resets) happens once, in ``cotenant.collectors.derive``.
Parsing is kept in pure functions apart from the I/O so that fixture trees and golden outputs test it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from cotenant.registry import Registry


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


class SourceUnavailable(Exception):
    """Raised by ``open`` when a source cannot run here (no PMU, permission denied); the runner reports it."""


Scope = Literal["host", "cgroup"]


class Source(ABC):
    """A telemetry source. One instance lives for the whole collection and may keep file descriptors open."""

    name: str
    scope: Scope

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

    def forget(self, target: CgroupTarget) -> None:  # noqa: B027
        """The target is gone or no longer selected: release anything held for it."""


HOST_SOURCES: Registry[type[HostSource]] = Registry("host source")
CGROUP_SOURCES: Registry[type[CgroupSource]] = Registry("cgroup source")
