"""cotenant.collectors: telemetry sources behind two registries, the derive step, runner and writer.

Every source module is imported here explicitly, so a missing file is an ImportError, never a missing key.
"""

from __future__ import annotations

from cotenant.collectors import (  # noqa: F401 - imported for their registrations
    cgroup_v1_cpu,
    cgroup_v1_memory,
    cgroup_v2,
    host_cpu,
    host_io,
    host_memory,
    host_psi,
    perf_event,
    task_sched,
    tasks,
)
from cotenant.collectors.base import CGROUP_SOURCES, HOST_SOURCES, MetricSpec, Roots, Source


def instantiate(source_class: type[Source], roots: Roots) -> Source:
    """Build a source bound to ``roots``; a source whose constructor takes no roots reads the real machine."""
    try:
        return source_class(roots=roots)
    except TypeError:
        return source_class()


def catalogue(roots: Roots | None = None) -> list[MetricSpec]:
    """Every metric every registered source can emit on this machine (host sources first)."""
    roots = roots or Roots()
    specs: list[MetricSpec] = []
    for registry in (HOST_SOURCES, CGROUP_SOURCES):
        for name in sorted(registry):
            specs.extend(instantiate(registry[name], roots).specs())
    return specs


__all__ = ["catalogue", "instantiate"]
