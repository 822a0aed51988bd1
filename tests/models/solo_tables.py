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
    first = raw.metrics[0]
    renamed = {p + first: p + CPU_RATE for p in (SELF, NEIGHBOUR_MEAN)}
    groups = {(CPU_RATE if m == first else m): g for m, g in raw.metric_groups.items()}
    telemetry = raw.telemetry.rename(renamed).with_columns(pl.col(SELF + CPU_RATE).abs())
    profiles = raw.profiles.rename({first: CPU_RATE}).with_columns(pl.col(CPU_RATE).abs() + 0.1)
    return RunTable(raw.runs, telemetry, profiles, groups, raw.meta, raw.extras).with_solo_relative()
