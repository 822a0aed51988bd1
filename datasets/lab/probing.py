"""Onboarding by probes: the plan that probes one workload, and the sensitivity and pressure vectors read
from any lab journal (the placement model's description of a workload).

``sensitivity``: per application (its probe config), P against each aggressor level, named
``sens_<resource>_<level>``. ``pressure``: per workload config that was measured by the victims, each victim's
P beside it, named ``press_<resource>``. Both are medians over repeats; a missing probe is absent (the model
treats it as unknown), never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import median
from typing import Any

import polars as pl
from cotenant.datasets.lab.command import CommandSpec
from cotenant.datasets.lab.labels import label_runs
from cotenant.datasets.lab.limits import Limits
from cotenant.datasets.lab.plan import Plan, aggressor_config, static_config
from cotenant.datasets.lab.probes import pressure_feature, probe_feature
from cotenant.datasets.lab.quiet import QuietSpec
from cotenant.datasets.lab.records import RunRecord


def aggressor_features(plan: Plan) -> dict[str, str]:
    """Aggressor config key -> its sensitivity feature name."""
    if plan.probes is None:
        return {}
    return {
        aggressor_config(plan, spec, level).config_key: probe_feature(resource, level)
        for resource, spec in plan.probes.aggressors.items()
        for level in spec.levels
    }


def victim_features(plan: Plan) -> dict[str, str]:
    """Victim config key -> its pressure feature name."""
    if plan.probes is None:
        return {}
    return {
        static_config(plan, spec.workload, spec.level, spec.limits).config_key: pressure_feature(resource)
        for resource, spec in plan.probes.victims.items()
    }


def probe_vectors(records: list[RunRecord], plan: Plan) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sensitivity, pressure): one row per application / per pressing config, one column per feature."""
    labels: dict[str, float] = dict(label_runs(records).select("run_id", "label").iter_rows())
    aggressors, victims = aggressor_features(plan), victim_features(plan)
    sensitivity: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    pressure: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        label = labels.get(record.run_id)
        if label is None or len(record.neighbours) != 1:
            continue
        (neighbour,) = record.neighbours
        if record.kind == "probe" and neighbour in aggressors:
            sensitivity[record.application][aggressors[neighbour]].append(label)
        elif record.kind == "pressure" and record.config_key in victims:
            pressure[neighbour][victims[record.config_key]].append(label)
    return (
        _frame("application", sensitivity, sorted(set(aggressors.values()))),
        _frame("config_key", pressure, sorted(set(victims.values()))),
    )


def _frame(key: str, values: dict[str, dict[str, list[float]]], features: list[str]) -> pl.DataFrame:
    rows = [
        {
            key: name,
            **{feature: median(found[feature]) if found.get(feature) else None for feature in features},
        }
        for name, found in sorted(values.items())
    ]
    return pl.DataFrame(rows, schema={key: pl.Utf8, **dict.fromkeys(features, pl.Float64)})


def probe_plan(
    workload: str,
    level: int,
    limits: Limits,
    *,
    duration_s: int = 12,
    solo_repeats: int = 3,
    pressure: bool = True,
    commands: dict[str, CommandSpec] | None = None,
    quiet: QuietSpec | None = None,
) -> Plan:
    """The plan that onboards one workload: solo references, the default aggressors (sensitivity) and, with
    ``pressure``, the default victims beside it."""
    data: dict[str, Any] = {
        "name": f"probe-{workload}",
        "duration_s": duration_s,
        "warmup_s": 1.0,
        "solo_repeats": solo_repeats,
        "neighbour_solo": False,
        "limits": limits.model_dump(),
        "commands": {name: spec.model_dump() for name, spec in (commands or {}).items()},
        "targets": [{"workload": workload, "levels": [level]}],
        "probes": {"pressure": pressure},
        "quiet": (quiet or QuietSpec()).model_dump(),
    }
    return Plan.model_validate(data)
