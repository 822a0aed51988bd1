"""The exact optimum for small clusters, as the bound the greedy policies are measured against: the largest
number
of apps that can be hosted with every node passing the admission test, by depth-first branch and bound over
(node or reject) per app. Exponential: meant for a handful of nodes and about a dozen apps."""

from __future__ import annotations

from collections.abc import Sequence

from cotenant.models.accelerators.policies.base import POLICIES, Placement, feasible
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec

MAX_APPS = 16
# Admission tests the search may run (a few microseconds each: about 1.5 s on one core). The bound on hosted
# apps prunes at once when every app fits; when few fit, the (node or reject) branches grow as nodes^apps
# (ten apps of which five distinct nodes hold one each: 0.7 s; twelve on six: 16 s), and a served request
# must not hold a worker that long: past the budget the search gives up and says so (the service: 422).
MAX_ADMISSION_TESTS = 500_000


# Exhaustive: small instances only (MAX_APPS), so not one of the report's streaming policies.
@POLICIES.register("exact", family="exact")
def exact(cluster: ClusterSpec, apps: Sequence[AppProfile]) -> Placement:
    if len(apps) > MAX_APPS:
        raise ValueError(f"exact search is for small instances: {len(apps)} apps > {MAX_APPS}")
    best: dict[str, list[AppProfile]] = {}
    best_count = -1
    current = Placement(cluster)
    tests = 0

    def search(index: int, count: int) -> None:
        nonlocal best, best_count, tests
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
            tests += 1
            if tests > MAX_ADMISSION_TESTS:
                raise ValueError(
                    f"exact search gave up after {MAX_ADMISSION_TESTS} admission tests without proving an "
                    f"optimum for {len(apps)} apps on {len(cluster.nodes)} nodes; use a greedy policy"
                )
            if feasible(current, node, app):
                current.hosted[node.name].append(app)
                search(index + 1, count + 1)
                current.hosted[node.name].pop()
        search(index + 1, count)

    search(0, 0)
    placed = {app.name for hosted in best.values() for app in hosted}
    return Placement(cluster, hosted=best, rejected=[app for app in apps if app.name not in placed])
