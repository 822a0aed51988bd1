"""The collector's typed configuration: the one place its defaults live (``cotenant collect`` reads them).

Kept apart from the sampling loop so that the command line can show defaults without importing Polars.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cotenant.collectors.base import Roots


@dataclass(frozen=True)
class CollectorConfig:
    out: Path | None = None  # None: no Parquet (a node agent that only pushes or serves Prometheus)
    cgroups: tuple[str, ...] = ()
    cgroup_globs: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    interval: float = 1.0
    duration: float | None = None
    # Encoding a segment costs per column, not per row (~600 columns x 3 tables): at 10 s it was a third of
    # the collector's CPU. kill -9 loses at most one segment; SIGTERM/SIGINT flush everything.
    segment_seconds: float = 30.0
    roots: Roots = field(default_factory=Roots)
    sources: tuple[str, ...] | None = None  # None = every registered source
    read_timeout_share: float = 0.8  # of the interval a source may take before its tick is given up
    # Per-process sources (``Source.reads_processes``) are read this often; in between their last rates and
    # gauges are carried (``collector_source_<name>_age_seconds`` says how old). Rates stay true: derive
    # divides by the time between the two reads.
    process_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"interval must be positive, got {self.interval}")
        if self.process_interval <= 0:
            raise ValueError(f"process_interval must be positive, got {self.process_interval}")
        if self.segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {self.segment_seconds}")


def default(name: str) -> Any:
    """A field's default, for the command line's options."""
    for item in fields(CollectorConfig):
        if item.name == name:
            return item.default
    raise KeyError(name)
