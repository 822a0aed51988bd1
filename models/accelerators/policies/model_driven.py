"""Ibis's model-driven policies.

The admission test (memory <= 0.8, rho <= 0.8, lambda T < 0.8, every app on the
node within its SLO, incumbents re-checked) decides feasibility; the order of trying nodes differs.

depth_first: the first feasible node (packs nodes one after another).
breadth_first: a node already serving the same model (joins it: no new copy, no switch partner), else an idle
node, else the least utilised feasible one (spreads load).
heterogeneous: for apps with GPU and TPU profiles, the device whose node gains the smaller utilisation
(switch overhead included), picking nodes depth-first within each kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cotenant.models.accelerators.policies.base import (
    POLICIES,
    Placement,
    place_each,
    utilisation_increase,
)
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec


def first_admitting(placement: Placement, app: AppProfile) -> NodeSpec | None:
    return placement.first_admitting(app)


@POLICIES.register("depth_first", family="model_driven")
def depth_first(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    return place_each(cluster, apps, first_admitting, max_admission_tests)


def breadth_choice(placement: Placement, app: AppProfile) -> NodeSpec | None:
    admitting = placement.admitting(app)
    for preferred in (admitting & placement.serving(app.model), admitting & placement.idle()):
        if preferred.any():
            return placement.cluster.nodes[int(preferred.argmax())]  # the first, in cluster order
    if not admitting.any():
        return None
    least_utilised = np.where(admitting, placement.utilisations(), np.inf).argmin()  # the first of equals
    return placement.cluster.nodes[int(least_utilised)]


@POLICIES.register("breadth_first", family="model_driven")
def breadth_first(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    return place_each(cluster, apps, breadth_choice, max_admission_tests)


# Chooses between device kinds: only meaningful on a cluster that has several.
@POLICIES.register("heterogeneous", family="model_driven", mixed_clusters_only=True)
def heterogeneous(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        candidates = [
            node for kind in app.devices if (node := placement.first_admitting(app, kind)) is not None
        ]
        return min(candidates, key=lambda node: utilisation_increase(placement, node, app), default=None)

    return place_each(cluster, apps, choose, max_admission_tests)
