"""The exact optimum for small clusters, as the bound the greedy policies are measured against: the largest
number
of apps that can be hosted with every node passing the admission test, by depth-first branch and bound over
(node or reject) per app. Exponential: meant for a handful of nodes and about a dozen apps."""

from __future__ import annotations

from collections.abc import Sequence

from cotenant.models.accelerators.policies.base import POLICIES, Placement, feasible
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec

MAX_APPS = 16


# Exhaustive: small instances only (MAX_APPS), so not one of the report's streaming policies.
@POLICIES.register("exact", family="exact")
def exact(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    if len(apps) > MAX_APPS:
        raise ValueError(f"exact search is for small instances: {len(apps)} apps > {MAX_APPS}")
    best: dict[str, list[AppProfile]] = {}
    best_count = -1
    current = Placement(cluster)

    def search(index: int, count: int) -> None:
        nonlocal best, best_count
        if count + (len(apps) - index) <= best_count:
            return  # bound: even hosting every remaining app cannot beat the incumbent
        if index == len(apps):
            best_count = count
            best = {node: list(hosted) for node, hosted in current.hosted.items()}
            return
        app = apps[index]
        tried_empty: set[tuple[str, float]] = set()
        for node in cluster.nodes:
            if not current.hosted[node.name]:
                signature = (node.kind, node.memory_mb)  # identical empty nodes are interchangeable
                if signature in tried_empty:
                    continue
                tried_empty.add(signature)
            if feasible(current, node, app):
                current.hosted[node.name].append(app)
                search(index + 1, count + 1)
                current.hosted[node.name].pop()
        search(index + 1, count)

    search(0, 0)
    placed = {app.name for hosted in best.values() for app in hosted}
    return Placement(cluster, hosted=best, rejected=[app for app in apps if app.name not in placed])
