"""Shared pieces of the device models: grouping apps into per-model loads, end-to-end latency, admission
(the loads and the device-model registry are ``device_models.py``).

A device hosts model groups: apps whose model is already loaded there join that group (their rates add up,
no new
copy in memory and no new switch partner), so device models see one `ModelLoad` per distinct model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from cotenant.models.accelerators.device_models import (
    DEFAULT_DEVICE_MODEL,
    DEVICE_MODELS,
    DeviceModel,
    DevicePrediction,
    ModelLoad,
)
from cotenant.models.accelerators.profiles import FRONTEND_MS, AppProfile, ClusterSpec, NodeSpec
from pydantic import BaseModel, WithJsonSchema

# Ibis's admission limits (fractions) for a node with the candidate included.
MEMORY_LIMIT = 0.8
UTILISATION_LIMIT = 0.8
LITTLE_LIMIT = 0.8  # lambda_i * T_i: keeps each app's own pipeline from saturating


def model_load(app: AppProfile, kind: str) -> ModelLoad:
    """One app's load on a device of `kind`: its model's profile there at the app's rate."""
    profile = app.on(kind)
    return ModelLoad(
        model=app.model,
        rate_per_ms=app.input_rate / 1000.0,
        service_ms=profile.service_ms,
        switch_overhead_ms=profile.switch_overhead_ms or 0.0,
        second_moment_ms2=profile.second_moment_ms2,
        switch_second_moment_ms2=profile.switch_second_moment_ms2,
        client_overhead_ms=profile.client_overhead_ms,
        l2_util=profile.l2_util,
        dram_util=profile.dram_util,
    )


def joined_load(group: ModelLoad | None, app: AppProfile, kind: str) -> ModelLoad:
    """`app` joining its model's group on a device (None: the first of its model there): the rates add up,
    and the first app's profile stands for the group."""
    if group is None:
        return model_load(app, kind)
    return ModelLoad(  # every field but the rate (``dataclasses.replace`` took 8 us of a 15 us test)
        model=group.model,
        rate_per_ms=group.rate_per_ms + app.input_rate / 1000.0,
        service_ms=group.service_ms,
        switch_overhead_ms=group.switch_overhead_ms,
        second_moment_ms2=group.second_moment_ms2,
        switch_second_moment_ms2=group.switch_second_moment_ms2,
        client_overhead_ms=group.client_overhead_ms,
        l2_util=group.l2_util,
        dram_util=group.dram_util,
    )


def group_loads(apps: Sequence[AppProfile], kind: str) -> list[ModelLoad]:
    """Merge apps sharing a model; the profile of the first app of each model stands for the group."""
    groups: dict[str, ModelLoad] = {}
    for app in apps:
        groups[app.model] = joined_load(groups.get(app.model), app, kind)
    return list(groups.values())


def mm1_ms(service_ms: float, rate_per_ms: float) -> float:
    """M/M/1 response time; inf at or past saturation."""
    utilisation = service_ms * rate_per_ms
    return service_ms / (1.0 - utilisation) if utilisation < 1.0 else float("inf")


# A saturated queue (utilisation >= 1) has no steady state: its latency is infinite, and so is a mean's
# confidence half-width from too few requests. JSON cannot write infinity; pydantic writes null, and the
# published schema says so.
Unbounded = Annotated[
    float,
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "null"}],
            "description": "null when infinite (a saturated queue, or too few requests to bound it)",
        }
    ),
]


class AppLatency(BaseModel):
    """Predicted end-to-end latency of one app on its node (ms)."""

    app: str
    node: str
    accelerator_ms: Unbounded
    frontend_ms: Unbounded
    network_ms: float
    total_ms: Unbounded
    slo_ms: float
    within_slo: bool


def device_model_name_for(node: NodeSpec) -> str:
    return node.device_model or DEFAULT_DEVICE_MODEL[node.kind]


def device_model_for(node: NodeSpec) -> DeviceModel:
    return DEVICE_MODELS[device_model_name_for(node)]


def predict_node(
    node: NodeSpec, apps: Sequence[AppProfile], network_ms: float
) -> tuple[DevicePrediction, list[AppLatency]]:
    """T_i = R_i (device) + M/M/1 CPU frontend + network, for every app on the node."""
    prediction = device_model_for(node)(group_loads(apps, node.kind))
    frontend_service = node.frontend_ms or FRONTEND_MS[node.kind]
    latencies = []
    for app in apps:
        accelerator = prediction.response_ms[app.model]
        frontend = mm1_ms(frontend_service, app.input_rate / 1000.0)
        total = accelerator + frontend + network_ms
        latencies.append(
            AppLatency(
                app=app.name,
                node=node.name,
                accelerator_ms=accelerator,
                frontend_ms=frontend,
                network_ms=network_ms,
                total_ms=total,
                slo_ms=app.slo_ms,
                within_slo=total < app.slo_ms,
            )
        )
    return prediction, latencies


def latency_budget_ms(node: NodeSpec, app: AppProfile, network_ms: float) -> float:
    """The device response time `app` tolerates on `node` by Ibis's per-app tests: its end-to-end latency
    (device + M/M/1 CPU frontend + network) under its SLO, and lambda x latency under `LITTLE_LIMIT`; the
    app passes while its model's response time is below this (-inf: its own frontend saturates)."""
    frontend = mm1_ms(node.frontend_ms or FRONTEND_MS[node.kind], app.input_rate / 1000.0)
    return min(app.slo_ms, LITTLE_LIMIT * 1000.0 / app.input_rate) - frontend - network_ms


@dataclass
class NodeLoad:
    """What the admission test reads of the apps on one node, kept as apps join: per distinct model its
    load and the tightest latency budget among its apps, and the memory of one copy per model. An app
    joining costs O(models on the node), where re-reading every app cost O(apps on the node) per test (a
    placement tests every node for every app: 1000 apps on 100 nodes took 3 s). Not changed once built:
    `joined` gives a new one."""

    node: NodeSpec
    network_ms: float
    loads: dict[str, ModelLoad] = field(default_factory=dict)
    budgets_ms: dict[str, float] = field(default_factory=dict)
    memory_mb: float = 0.0
    _prediction: DevicePrediction | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._device_model = device_model_for(self.node)

    def _memory_with(self, app: AppProfile) -> float:
        """The memory with `app` joining: a copy of its model only where none is loaded."""
        if app.model in self.loads:
            return self.memory_mb
        return self.memory_mb + app.on(self.node.kind).memory_mb

    def _with(self, app: AppProfile) -> tuple[dict[str, ModelLoad], dict[str, float]]:
        """Loads and budgets with `app` joining."""
        kind, model = self.node.kind, app.model
        budget = latency_budget_ms(self.node, app, self.network_ms)
        loads = {**self.loads, model: joined_load(self.loads.get(model), app, kind)}
        budgets = {**self.budgets_ms, model: min(budget, self.budgets_ms.get(model, budget))}
        return loads, budgets

    def joined(self, app: AppProfile) -> NodeLoad:
        """This node with `app` on it too."""
        return NodeLoad(self.node, self.network_ms, *self._with(app), memory_mb=self._memory_with(app))

    def admits(self, app: AppProfile) -> bool:
        """Whether the node with `app` joining passes the admission test (`joined(app).acceptable()`
        without building the joined state: the test a placement runs per node and app; memory first, as
        most refusals of a full node are)."""
        return self._fits(self._memory_with(app)) and self._queues_pass(*self._with(app))

    def acceptable(self) -> bool:
        """Ibis's admission test on these apps: memory, utilisation, and every app within its budget."""
        return self._fits(self.memory_mb) and self._queues_pass(self.loads, self.budgets_ms)

    def _fits(self, memory_mb: float) -> bool:
        return memory_mb <= MEMORY_LIMIT * self.node.memory_mb

    def _queues_pass(self, loads: dict[str, ModelLoad], budgets_ms: dict[str, float]) -> bool:
        prediction = self._device_model(list(loads.values()))
        if prediction.utilisation > UTILISATION_LIMIT:
            return False
        response = prediction.response_ms
        return all(response[model] < budget for model, budget in budgets_ms.items())

    @property
    def prediction(self) -> DevicePrediction:
        if self._prediction is None:
            self._prediction = self._device_model(list(self.loads.values()))
        return self._prediction

    @property
    def utilisation(self) -> float:
        return self.prediction.utilisation if self.loads else 0.0


def node_load(node: NodeSpec, apps: Sequence[AppProfile], network_ms: float) -> NodeLoad:
    load = NodeLoad(node, network_ms)
    for app in apps:
        load = load.joined(app)
    return load


def admits(node: NodeSpec, apps: Sequence[AppProfile], network_ms: float) -> bool:
    """Ibis's admission test on a node with the candidate already in `apps`; incumbents are re-checked."""
    return node_load(node, apps, network_ms).acceptable()


def utilisation(node: NodeSpec, apps: Sequence[AppProfile]) -> float:
    return device_model_for(node)(group_loads(apps, node.kind)).utilisation if apps else 0.0


def node_by_name(cluster: ClusterSpec) -> dict[str, NodeSpec]:
    return {node.name: node for node in cluster.nodes}
