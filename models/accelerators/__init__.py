"""Analytic interference models for shared DNN accelerators, placement policies and a simulator.

API for the prediction service (all types pydantic, exposable as request/response bodies)::

    from cotenant.models.accelerators import (
        AppProfile, ClusterSpec, NodeSpec, AppLatency, PlacementRequest, PlacementResult,
        predict_latencies, place, serve_request,
    )
    predict_latencies(device: NodeSpec, apps: list[AppProfile], network_ms=10.0) -> list[AppLatency]
    place(cluster: ClusterSpec, apps: list[AppProfile], policy="depth_first",
          simulation: SimulationConfig | None = None, run_simulation=True) -> PlacementResult
    serve_request(PlacementRequest) -> PlacementResult

Times in ms, rates in requests/s, memory in MB. Device models live in `DEVICE_MODELS` (`gpu_ps_exact`
default for GPUs, `gpu_ps_ibis`, `edgetpu_fcfs` default for TPUs, `edgetpu_fcfs_ibis`, `gpu_mps`); policies
in `POLICIES` (`first_fit`, `best_fit`, `worst_fit`, `depth_first`, `breadth_first`, `heterogeneous`,
`exact`). Profiles load from YAML (`load_apps`, `load_cluster`), including Ibis's workload files as they are.
"""

from cotenant.models.accelerators import devices, policies
from cotenant.models.accelerators.api import (
    PlacementRequest,
    PlacementResult,
    place,
    predict_latencies,
    serve_request,
)
from cotenant.models.accelerators.base import DEVICE_MODELS, AppLatency
from cotenant.models.accelerators.policies import POLICIES
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec, load_apps, load_cluster
from cotenant.models.accelerators.simulator import SimulationConfig

__all__ = [
    "DEVICE_MODELS",
    "POLICIES",
    "AppLatency",
    "AppProfile",
    "ClusterSpec",
    "NodeSpec",
    "PlacementRequest",
    "PlacementResult",
    "SimulationConfig",
    "devices",
    "load_apps",
    "load_cluster",
    "place",
    "policies",
    "predict_latencies",
    "serve_request",
]
