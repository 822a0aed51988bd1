"""Traditional hosting: memory-only bin packing (first-, best-, worst-fit). It ignores queueing, so it can
admit
sets whose utilisation is at or past 1 (unbounded queues); the simulator shows what that costs. They run no
admission test, so `max_admission_tests` never binds them."""

from __future__ import annotations

from collections.abc import Sequence

from cotenant.models.accelerators.policies.base import POLICIES, Placement, place_each
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec


@POLICIES.register("first_fit", family="knapsack")
def first_fit(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        nodes, _ = placement.container_candidates(app)
        return nodes[0] if nodes else None

    return place_each(cluster, apps, choose, max_admission_tests)


@POLICIES.register("best_fit", family="knapsack")
def best_fit(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        nodes, free_after = placement.container_candidates(app)
        return nodes[int(free_after.argmin())] if nodes else None  # the first of equals, as min() gives

    return place_each(cluster, apps, choose, max_admission_tests)


@POLICIES.register("worst_fit", family="knapsack")
def worst_fit(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        nodes, free_after = placement.container_candidates(app)
        return nodes[int(free_after.argmax())] if nodes else None

    return place_each(cluster, apps, choose, max_admission_tests)
