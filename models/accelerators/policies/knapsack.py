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
        fitting, _ = placement.container_candidates(app)
        return placement.cluster.nodes[fitting[0]] if len(fitting) else None

    return place_each(cluster, apps, choose, max_admission_tests)


@POLICIES.register("best_fit", family="knapsack")
def best_fit(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        fitting, free_after = placement.container_candidates(app)
        # the first of equals, in cluster order
        return placement.cluster.nodes[fitting[free_after.argmin()]] if len(fitting) else None

    return place_each(cluster, apps, choose, max_admission_tests)


@POLICIES.register("worst_fit", family="knapsack")
def worst_fit(
    cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
) -> Placement:
    def choose(placement: Placement, app: AppProfile) -> NodeSpec | None:
        fitting, free_after = placement.container_candidates(app)
        return placement.cluster.nodes[fitting[free_after.argmax()]] if len(fitting) else None

    return place_each(cluster, apps, choose, max_admission_tests)
