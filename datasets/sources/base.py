"""What every source shares: the registry, metric-group fallbacks and the run-id helpers.

A source is a callable ``(path_or_none, **options) -> RunTable`` registered under its name. Each lives in its
own module, imported explicitly from the package ``__init__``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from cotenant.collectors import catalogue
from cotenant.datasets.table import RunTable

from cotenant.registry import Registry

SourceLoader = Callable[..., RunTable]
SOURCES: Registry[SourceLoader] = Registry("dataset source")

# Name patterns for metrics that the collector catalogue does not describe (older collections, CloudPerfTrace,
# synthetic): first match wins, anything else is "other".
_GROUP_PATTERNS: list[tuple[str, str]] = [
    ("cache_membw", r"llc|cache|membw|mem_bw|bandwidth|stalled|instructions|cycles|ipc|cpi"),
    ("io", r"io_|_io|blkio|disk|read_bytes|write_bytes|iops|fs_"),
    ("network", r"net|rx_|tx_|packets|tcp|udp|socket"),
    ("memory", r"mem|rss|cache_bytes|swap|page|fault|oom|anon|file_"),
    ("cpu", r"cpu|usage|throttl|sched|context_switch|nr_running|load|migration|task_clock"),
]


def guess_group(metric: str) -> str:
    for group, pattern in _GROUP_PATTERNS:
        if re.search(pattern, metric):
            return group
    return "other"


def metric_groups_for(metrics: list[str]) -> dict[str, str]:
    """Groups from the collector catalogue where it knows the metric, else guessed from the name."""
    known: dict[str, str] = {}
    for spec in catalogue():
        known[spec.derived_name] = str(spec.group)
        known[spec.name] = str(spec.group)
    return {m: known.get(m, guess_group(m)) for m in metrics}


def looks_like(path: Path) -> str | None:
    """Which source reads this directory: a saved RunTable, a lab output dir, or CloudPerfTrace."""
    if (path / "runs.parquet").is_file() and (path / "meta.json").is_file():
        return "table"
    if (path / "runs.jsonl").is_file():
        return "lab"
    if any(path.glob("tasks=*")) or any(path.glob("*/tasks=*")):
        return "cloudperftrace"
    return None
