"""Placement policies: each takes a cluster and an app stream (in arrival order) and returns where apps
went."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cotenant.models.accelerators.base import admits, utilisation
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec

from cotenant.registry import Registry


@dataclass
class Placement:
    """Apps per node in placement order; `rejected` holds apps the policy refused."""

    cluster: ClusterSpec
    hosted: dict[str, list[AppProfile]] = field(default_factory=dict)
    rejected: list[AppProfile] = field(default_factory=list)

    def __post_init__(self) -> None:
        for node in self.cluster.nodes:
            self.hosted.setdefault(node.name, [])

    def node_of(self, app_name: str) -> str | None:
        for node, apps in self.hosted.items():
            if any(app.name == app_name for app in apps):
                return node
        return None

    @property
    def n_hosted(self) -> int:
        return sum(len(apps) for apps in self.hosted.values())


Policy = Callable[[ClusterSpec, Sequence[AppProfile]], Placement]
POLICIES: Registry[Policy] = Registry("placement policy")


def compatible(node: NodeSpec, app: AppProfile) -> bool:
    return node.kind in app.devices


def per_app_memory_mb(node: NodeSpec, apps: Sequence[AppProfile]) -> float:
    """Traditional hosting deploys every app as its own container: no shared model copies."""
    return sum(app.on(node.kind).memory_mb for app in apps)


def fits_memory(node: NodeSpec, incumbents: Sequence[AppProfile], app: AppProfile) -> bool:
    return per_app_memory_mb(node, [*incumbents, app]) <= node.memory_mb


def feasible(placement: Placement, node: NodeSpec, app: AppProfile) -> bool:
    """The model-driven admission test with the candidate on this node."""
    if not compatible(node, app):
        return False
    return admits(node, [*placement.hosted[node.name], app], placement.cluster.network_ms)


def utilisation_increase(placement: Placement, node: NodeSpec, app: AppProfile) -> float:
    incumbents = placement.hosted[node.name]
    return utilisation(node, [*incumbents, app]) - utilisation(node, incumbents)


def place_each(
    cluster: ClusterSpec,
    apps: Sequence[AppProfile],
    choose: Callable[[Placement, AppProfile], NodeSpec | None],
) -> Placement:
    """Online placement: apps arrive one by one and are never moved by the policy itself."""
    placement = Placement(cluster)
    for app in apps:
        node = choose(placement, app)
        if node is None:
            placement.rejected.append(app)
        else:
            placement.hosted[node.name].append(app)
    return placement
