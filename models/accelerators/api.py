"""The Python API the prediction service calls; request/response types are pydantic and can be exposed as
is."""

from __future__ import annotations

from cotenant.models.accelerators.base import AppLatency, Unbounded, predict_node
from cotenant.models.accelerators.policies import POLICIES
from cotenant.models.accelerators.policies.base import MAX_ADMISSION_TESTS, AdmissionBudgetExceeded
from cotenant.models.accelerators.profiles import MAX_APPS, NETWORK_MS, AppProfile, ClusterSpec, NodeSpec
from cotenant.models.accelerators.simulator import (
    MAX_SIMULATED_REQUESTS,
    SERVED_SIMULATED_REQUESTS,
    SimulatedApp,
    SimulationConfig,
    simulate,
)
from pydantic import BaseModel, Field


def predict_latencies(
    device: NodeSpec, apps: list[AppProfile], network_ms: float = NETWORK_MS
) -> list[AppLatency]:
    """Predicted end-to-end latency of every app sharing `device` (one per app, in order)."""
    return predict_node(device, apps, network_ms)[1]


class PlacementRequest(BaseModel):
    cluster: ClusterSpec
    apps: list[AppProfile] = Field(max_length=MAX_APPS, description="app names are unique")
    policy: str = Field(default="depth_first", json_schema_extra={"enum": sorted(POLICIES)})
    simulate: bool = True
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)


class PlacementResult(BaseModel):
    policy: str
    assignment: dict[str, str | None]  # app name -> node name, None = rejected
    predicted: list[AppLatency]
    simulated: list[SimulatedApp]
    utilisation: dict[str, Unbounded]
    rejected: list[str]
    violations: int  # apps whose simulated mean latency exceeds their SLO
    migrations: int = 0


def place(
    cluster: ClusterSpec,
    apps: list[AppProfile],
    policy: str = "depth_first",
    simulation: SimulationConfig | None = None,
    run_simulation: bool = True,
    max_requests: float = MAX_SIMULATED_REQUESTS,
    max_admission_tests: int | None = None,
) -> PlacementResult:
    names = [app.name for app in apps]
    if len(set(names)) != len(names):
        raise ValueError("app names must be unique within a request")
    try:
        placement = POLICIES[policy](cluster, apps, max_admission_tests)
        outcome = simulate(placement, simulation, max_requests) if run_simulation else None
    except AdmissionBudgetExceeded as error:
        migrating = run_simulation and simulation is not None and simulation.migration
        raise ValueError(
            f"{policy} placement of {len(apps)} apps on {len(cluster.nodes)} nodes"
            f"{' and its migrations' if migrating else ''} {error}: apps that differ need a test per app "
            "and node where the device model has no table form to screen nodes with (gpu_mps) or its "
            "verdicts are close calls; send fewer apps or nodes per request, or replicas of fewer distinct "
            "apps, or use a knapsack policy without migration"
        ) from error
    predicted: list[AppLatency] = []
    utilisation: dict[str, float] = {}
    for node in cluster.nodes:
        hosted = placement.hosted[node.name]
        if hosted:
            device, latencies = predict_node(node, hosted, cluster.network_ms)
            predicted += latencies
            utilisation[node.name] = device.utilisation
        else:
            utilisation[node.name] = 0.0
    return PlacementResult(
        policy=policy,
        assignment={app.name: placement.node_of(app.name) for app in apps},
        predicted=predicted,
        simulated=outcome.apps if outcome else [],
        utilisation=utilisation,
        rejected=[app.name for app in placement.rejected],
        violations=outcome.violations if outcome else 0,
        migrations=outcome.migrations if outcome else 0,
    )


def serve_request(request: PlacementRequest) -> PlacementResult:
    """A placement answered while its caller waits: placed within `MAX_ADMISSION_TESTS` and simulated
    within the served request budget."""
    return place(
        request.cluster,
        request.apps,
        request.policy,
        request.simulation,
        request.simulate,
        max_requests=SERVED_SIMULATED_REQUESTS,
        max_admission_tests=MAX_ADMISSION_TESTS,
    )
