"""Synthetic tables with the target's rates over its solo profile (``vs_solo__``), for the models that read a
target only against its profile (``solo-relative``) and the tests of that reading."""

from __future__ import annotations

import polars as pl
from cotenant.collectors.ratios import CPU_RATE
from cotenant.datasets import RunTable
from cotenant.datasets.table import NEIGHBOUR_MEAN, SELF

# The registered models that refuse data without solo profiles (models/solo_relative.py).
NEEDS_SOLO_PROFILES = {"solo-relative"}


def with_cpu_rate(raw: RunTable) -> RunTable:
    """The synthetic source with its first metric named as the CPU rate (it reads no cgroup), positive, and
    its solo-relative ratios computed, as a lab table has them."""
    return with_work_rates(raw, (CPU_RATE,))


def with_work_rates(raw: RunTable, rates: tuple[str, ...]) -> RunTable:
    """The synthetic source with its first metrics named as ``rates`` (``collectors.ratios.SOLO_RELATIVE``
    names), positive, and their solo-relative ratios computed."""
    named = dict(zip(raw.metrics, rates, strict=False))
    renamed = {p + old: p + new for old, new in named.items() for p in (SELF, NEIGHBOUR_MEAN)}
    groups = {named.get(m, m): g for m, g in raw.metric_groups.items()}
    telemetry = raw.telemetry.rename(renamed).with_columns(
        pl.col(SELF + rate).abs() for rate in named.values()
    )
    profiles = raw.profiles.rename(named).with_columns(pl.col(rate).abs() + 0.1 for rate in named.values())
    return RunTable(raw.runs, telemetry, profiles, groups, raw.meta, raw.extras).with_solo_relative()
