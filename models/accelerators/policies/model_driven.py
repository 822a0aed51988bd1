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

from cotenant.models.accelerators.base import utilisation
from cotenant.models.accelerators.policies.base import (
    POLICIES,
    Placement,
    feasible,
    place_each,
    utilisation_increase,
)
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec


def first_feasible(placement: Placement, app: AppProfile, kind: str | None = None) -> NodeSpec | None:
    for node in placement.cluster.nodes:
        if (kind is None or node.kind == kind) and feasible(placement, node, app):
            return node
    return None


@POLICIES.register("depth_first", family="model_driven")
def depth_first(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    return place_each(cluster, apps, first_feasible)


def breadth_choice(placement: Placement, app: AppProfile) -> NodeSpec | None:
    nodes = [node for node in placement.cluster.nodes if feasible(placement, node, app)]
    sharing = [
        node for node in nodes if any(other.model == app.model for other in placement.hosted[node.name])
    ]
    if sharing:
        return sharing[0]
    idle = [node for node in nodes if not placement.hosted[node.name]]
    if idle:
        return idle[0]
    return min(nodes, key=lambda node: utilisation(node, placement.hosted[node.name]), default=None)


@POLICIES.register("breadth_first", family="model_driven")
def breadth_first(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    return place_each(cluster, apps, breadth_choice)


# Chooses between device kinds: only meaningful on a cluster that has several.
@POLICIES.register("heterogeneous", family="model_driven", mixed_clusters_only=True)
def heterogeneous(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        candidates = [
            node for kind in app.devices if (node := first_feasible(placement, app, kind)) is not None
        ]
        return min(candidates, key=lambda node: utilisation_increase(placement, node, app), default=None)

    return place_each(cluster, apps, choose)
