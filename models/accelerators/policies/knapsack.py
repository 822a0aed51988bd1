"""Traditional hosting: memory-only bin packing (first-, best-, worst-fit). It ignores queueing, so it can
admit
sets whose utilisation is at or past 1 (unbounded queues); the simulator shows what that costs."""

from __future__ import annotations

from collections.abc import Sequence

from cotenant.models.accelerators.policies.base import (
    POLICIES,
    Placement,
    compatible,
    fits_memory,
    per_app_memory_mb,
    place_each,
)
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec


def _candidates(placement: Placement, app: AppProfile) -> list[NodeSpec]:
    return [
        node
        for node in placement.cluster.nodes
        if compatible(node, app) and fits_memory(node, placement.hosted[node.name], app)
    ]


def _free_after(placement: Placement, node: NodeSpec, app: AppProfile) -> float:
    return node.memory_mb - per_app_memory_mb(node, [*placement.hosted[node.name], app])


@POLICIES.register("first_fit", family="knapsack")
def first_fit(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    return place_each(cluster, apps, lambda placement, app: next(iter(_candidates(placement, app)), None))


@POLICIES.register("best_fit", family="knapsack")
def best_fit(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        nodes = _candidates(placement, app)
        return min(nodes, key=lambda node: _free_after(placement, node, app), default=None)

    return place_each(cluster, apps, choose)


@POLICIES.register("worst_fit", family="knapsack")
def worst_fit(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        nodes = _candidates(placement, app)
        return max(nodes, key=lambda node: _free_after(placement, node, app), default=None)

    return place_each(cluster, apps, choose)
