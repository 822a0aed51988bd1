"""The one place raw counters become per-second rates.

Sources report cumulative counters as the kernel gives them; ``derive`` turns two consecutive readings of one
source for one target into rates, passes gauges through, and owns the two awkward cases: the first reading
(no rate yet: the sample is dropped) and a counter that went down (a reset, a restarted cgroup, a task that
left the aggregate: null for that step instead of a negative spike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from cotenant.collectors.base import MetricKind, MetricSpec


@dataclass(frozen=True)
class RawReading:
    """One source's raw values for one target, with the monotonic clock time they were read at."""

    values: Mapping[str, float]
    monotonic: float


def derive(
    prev: Mapping[str, float] | None, cur: Mapping[str, float], dt: float, specs: Mapping[str, MetricSpec]
) -> dict[str, float | None] | None:
    """Rates and gauges keyed by ``MetricSpec.derived_name``; None for the first reading of a target.

    ``dt`` is the monotonic time between the readings (seconds), so a late or skipped tick still gives a true
    rate.
    Values for names that are not in ``specs`` are ignored; metrics absent from ``cur`` are null.
    """
    if prev is None or dt <= 0:
        return None
    derived: dict[str, float | None] = {}
    lookup, previous, gauge, isfinite = specs.get, prev.get, MetricKind.GAUGE, math.isfinite
    for name, value in cur.items():  # ~4000 values per tick on 20 cgroups: kept lean
        spec = lookup(name)
        if spec is None or not isfinite(value):
            continue
        if spec.kind is gauge:
            derived[spec.derived_name] = value
            continue
        before = previous(name)
        if before is None or value < before:
            derived[spec.derived_name] = None  # new or reset counter: no honest rate for this step
        else:
            derived[spec.derived_name] = (value - before) / dt
    return derived
