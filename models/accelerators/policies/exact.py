"""The exact optimum for small clusters, as the bound the greedy policies are measured against: the largest
number
of apps that can be hosted with every node passing the admission test, by depth-first branch and bound over
(node or reject) per app. Exponential: meant for a handful of nodes and about a dozen apps."""

from __future__ import annotations

from collections.abc import Sequence

from cotenant.models.accelerators.policies.base import (
    MAX_ADMISSION_TESTS,
    POLICIES,
    AdmissionBudgetExceeded,
    Placement,
)
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec

MAX_APPS = 16


# Exhaustive: small instances only (MAX_APPS), so not one of the report's streaming policies.
@POLICIES.register("exact", family="exact")
def exact(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    """Runs within `MAX_ADMISSION_TESTS` always (or fewer if asked): the bound on hosted apps prunes at once
    when every app fits, but when few fit the (node or reject) branches grow as nodes^apps (ten apps of which
    five distinct nodes hold one each: 226 500 tests, 1.0 s; twelve on six: 16 s before the bound), and no
    caller should wait that long: past the budget the search gives up and says so (the service: 422)."""
    if len(apps) > MAX_APPS:
        raise ValueError(f"exact search is for small instances: {len(apps)} apps > {MAX_APPS}")
    budget = MAX_ADMISSION_TESTS
    if max_admission_tests is not None:
        budget = min(budget, max_admission_tests)
    best: dict[str, list[AppProfile]] = {}
    best_count = -1
    current = Placement(cluster, max_admission_tests=budget)

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
            if current.admits(node, app):
                current.host(node, app)
                search(index + 1, count + 1)
                current.unhost_last(node)
        search(index + 1, count)

    try:
        search(0, 0)
    except AdmissionBudgetExceeded as error:
        raise ValueError(
            f"exact search gave up after {budget} admission tests without proving an optimum for "
            f"{len(apps)} apps on {len(cluster.nodes)} nodes; use a greedy policy"
        ) from error
    placed = {app.name for hosted in best.values() for app in hosted}
    return Placement(cluster, hosted=best, rejected=[app for app in apps if app.name not in placed])
