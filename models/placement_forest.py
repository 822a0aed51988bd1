"""Placement-task baseline: the tuned random forest of Table IV on the placement model's DeepSets inputs.

Each row is ``[newcomer summary, sum of the neighbours' summaries, neighbour count]`` (solo-profile summaries,
``models.placement.placement_features``), so it answers the same question as ``placement`` from the same
information, and it is scored through the same predictor calls (the summary is its own embedding).
"""

from __future__ import annotations

from cotenant.models.base import ModelSpec, register
from cotenant.models.random_forest import RandomForestConfig, build

register(
    ModelSpec(
        "placement-forest",
        "placement",
        "tabular",
        RandomForestConfig,
        build,
        "placement baseline: tuned random forest on [newcomer, sum of neighbours, count]",
    )
)
