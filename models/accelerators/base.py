"""Shared pieces of the device models: grouping apps into per-model loads, end-to-end latency, admission
(the loads and the device-model registry are ``device_models.py``).

A device hosts model groups: apps whose model is already loaded there join that group (their rates add up,
no new
copy in memory and no new switch partner), so device models see one `ModelLoad` per distinct model.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def group_loads(apps: Sequence[AppProfile], kind: str) -> list[ModelLoad]:
    """Merge apps sharing a model; the profile of the first app of each model stands for the group."""
    groups: dict[str, ModelLoad] = {}
    for app in apps:
        profile = app.on(kind)
        rate = app.input_rate / 1000.0
        if app.model in groups:
            seen = groups[app.model]
            groups[app.model] = ModelLoad(**{**seen.__dict__, "rate_per_ms": seen.rate_per_ms + rate})
            continue
        groups[app.model] = ModelLoad(
            model=app.model,
            rate_per_ms=rate,
            service_ms=profile.service_ms,
            switch_overhead_ms=profile.switch_overhead_ms or 0.0,
            second_moment_ms2=profile.second_moment_ms2,
            switch_second_moment_ms2=profile.switch_second_moment_ms2,
            client_overhead_ms=profile.client_overhead_ms,
            l2_util=profile.l2_util,
            dram_util=profile.dram_util,
        )
    return list(groups.values())


def node_memory_mb(apps: Sequence[AppProfile], kind: str) -> float:
    """One copy per distinct model: a joining app reuses the loaded one."""
    per_model: dict[str, float] = {}
    for app in apps:
        per_model.setdefault(app.model, app.on(kind).memory_mb)
    return sum(per_model.values())


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


def device_model_for(node: NodeSpec) -> DeviceModel:
    return DEVICE_MODELS[node.device_model or DEFAULT_DEVICE_MODEL[node.kind]]


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


def admits(node: NodeSpec, apps: Sequence[AppProfile], network_ms: float) -> bool:
    """Ibis's admission test on a node with the candidate already in `apps`; incumbents are re-checked."""
    if node_memory_mb(apps, node.kind) > MEMORY_LIMIT * node.memory_mb:
        return False
    prediction, latencies = predict_node(node, apps, network_ms)
    if prediction.utilisation > UTILISATION_LIMIT:
        return False
    return all(
        latency.within_slo and app.input_rate * latency.total_ms / 1000.0 < LITTLE_LIMIT
        for app, latency in zip(apps, latencies, strict=True)
    )


def utilisation(node: NodeSpec, apps: Sequence[AppProfile]) -> float:
    return device_model_for(node)(group_loads(apps, node.kind)).utilisation if apps else 0.0


def node_by_name(cluster: ClusterSpec) -> dict[str, NodeSpec]:
    return {node.name: node for node in cluster.nodes}
