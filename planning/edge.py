"""Edge fleet sizing: how many GPU / TPU nodes do N inference apps need?

Per placement policy and fleet size, two questions: does the policy host every app (knapsack policies look at
memory only; model-driven ones run Ibis's admission test), and does the simulator agree (an app violates
when its simulated mean latency is over its SLO)? "Nodes needed" is the smallest fleet on which the policy
hosts every app with zero simulated violations. Apps the admission test refuses even alone on an idle node
are left out of the sizing: no fleet can host them under their SLO by the model's rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cotenant.models.accelerators import POLICIES, ClusterSpec, NodeSpec
from cotenant.models.accelerators.base import admits
from cotenant.models.accelerators.profiles import AppProfile, DeviceKind, ProfileCatalogue
from cotenant.models.accelerators.report import stream
from cotenant.models.accelerators.simulator import SimulationConfig, simulate

NODE_MEMORY_MB: dict[str, float] = {
    "gpu": 4096.0,
    "tpu": 2048.0,
}  # Jetson (4 GB), Raspberry Pi + Coral (2 GB)


def fleet(kind: DeviceKind, size: int) -> ClusterSpec:
    nodes = [NodeSpec(name=f"{kind}-{i:02d}", kind=kind, memory_mb=NODE_MEMORY_MB[kind]) for i in range(size)]
    return ClusterSpec(name=f"{kind}-fleet-{size}", nodes=nodes)


def hostable_alone(kind: DeviceKind, app: AppProfile) -> bool:
    single = fleet(kind, 1)
    return admits(single.nodes[0], [app], single.network_ms)


def with_catalogue(
    apps: Sequence[AppProfile], catalogue: ProfileCatalogue | None
) -> tuple[list[AppProfile], list[str]]:
    """Each app with its model's profiles from ``catalogue`` (a registered, fitted one) where it has them,
    else the workload file's own; and the apps that took the catalogue's."""
    if catalogue is None:
        return list(apps), []
    updated, from_catalogue = [], []
    for app in apps:
        profiles = catalogue.models.get(app.model)
        if profiles:
            updated.append(app.model_copy(update={"devices": {**app.devices, **profiles}}))
            from_catalogue.append(app.name)
        else:
            updated.append(app)
    return updated, from_catalogue


@dataclass
class Sizing:
    by_rule: int | None  # smallest fleet where the policy hosts every app by its own rule
    violations_at_rule: int | None  # simulated violations there
    zero_violation: int | None  # smallest fleet hosting every app with zero simulated violations
    unsettled: int  # verdicts on the fleets tried that rest on a mean short of the asked precision


def size_fleet(
    kind: DeviceKind, policy: str, apps: Sequence[AppProfile], max_nodes: int, simulation: SimulationConfig
) -> Sizing:
    by_rule: int | None = None
    violations_at_rule: int | None = None
    unsettled = 0
    for size in range(1, max_nodes + 1):
        placement = POLICIES[policy](fleet(kind, size), list(apps))
        if placement.rejected:
            continue
        outcome = simulate(placement, simulation)
        unsettled += len(outcome.unsettled)
        if by_rule is None:
            by_rule, violations_at_rule = size, outcome.violations
        if outcome.violations == 0:
            return Sizing(by_rule, violations_at_rule, size, unsettled)
    return Sizing(by_rule, violations_at_rule, None, unsettled)


def sizing_and_trend(
    templates: Sequence[AppProfile],
    kind: DeviceKind,
    policies: Sequence[str],
    n_apps: int,
    app_counts: Sequence[int],
    max_nodes: int,
    simulation: SimulationConfig,
) -> tuple[dict[str, Sizing], dict[str, list[int | None]]]:
    """Per policy: the sizing of ``n_apps`` apps, and the zero-violation fleet for each of ``app_counts``."""
    sizing = {p: size_fleet(kind, p, stream(templates, n_apps), max_nodes, simulation) for p in policies}
    trend = {
        p: [
            size_fleet(kind, p, stream(templates, count), max_nodes, simulation).zero_violation
            for count in app_counts
        ]
        for p in policies
    }
    return sizing, trend
