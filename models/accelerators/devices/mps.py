"""Spatial sharing (MPS, gpulet-style), MIG instances as separate devices, and batching SLO rules.

MPS: kernels of co-located models run at once, so there is no queue between models; each is slowed by
interference in shared L2 and DRAM: latency = solo x max(1, alpha),
alpha = c_l2_self L2_self + c_l2_other sum L2_other + c_dram_self DRAM_self + c_dram_other sum DRAM_other +
c0,
coefficients fitted per GPU model (`fit_interference`). Each model then queues only for itself (M/D/1 on its
stretched latency).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cotenant.models.accelerators.base import DEVICE_MODELS, DevicePrediction, ModelLoad
from cotenant.models.accelerators.profiles import NodeSpec
from pydantic import BaseModel


class InterferenceCoefficients(BaseModel):
    l2_self: float
    l2_other: float
    dram_self: float
    dram_other: float
    constant: float


# gpulet's published fit for an RTX 2080 Ti.
RTX_2080_TI = InterferenceCoefficients(
    l2_self=0.113, l2_other=0.716, dram_self=0.355, dram_other=0.088, constant=0.895
)


def interference_factor(own: ModelLoad, others: Sequence[ModelLoad], coef: InterferenceCoefficients) -> float:
    alpha = (
        coef.l2_self * own.l2_util
        + coef.l2_other * sum(other.l2_util for other in others)
        + coef.dram_self * own.dram_util
        + coef.dram_other * sum(other.dram_util for other in others)
        + coef.constant
    )
    return max(1.0, alpha)


def predict_mps(loads: Sequence[ModelLoad], coef: InterferenceCoefficients = RTX_2080_TI) -> DevicePrediction:
    response: dict[str, float] = {}
    utilisation = 0.0
    for index, load in enumerate(loads):
        others = [other for position, other in enumerate(loads) if position != index]
        stretched = load.service_ms * interference_factor(load, others, coef)
        own_rho = load.rate_per_ms * stretched
        # A spatial partition is only busy for its own model: utilisation is the worst partition's.
        utilisation = max(utilisation, own_rho)
        wait = own_rho * stretched / (2.0 * (1.0 - own_rho)) if own_rho < 1.0 else float("inf")  # M/D/1
        response[load.model] = stretched + wait + load.client_overhead_ms
    return DevicePrediction(utilisation, response)


DEVICE_MODELS.register("gpu_mps")(predict_mps)


def fit_interference(
    features: np.ndarray, slowdowns: np.ndarray
) -> tuple[InterferenceCoefficients, np.ndarray]:
    """Least squares on measured co-runs: features [N, 4] = (L2_self, L2_other, DRAM_self, DRAM_other).

    Returns the coefficients and their standard errors (constant last).
    """
    design = np.column_stack([features, np.ones(len(features))])
    solution, *_ = np.linalg.lstsq(design, slowdowns, rcond=None)
    residual = slowdowns - design @ solution
    dof = max(1, len(slowdowns) - design.shape[1])
    covariance = np.linalg.pinv(design.T @ design) * float(residual @ residual) / dof
    names = ("l2_self", "l2_other", "dram_self", "dram_other", "constant")
    coef = InterferenceCoefficients(**dict(zip(names, map(float, solution), strict=True)))
    return coef, np.sqrt(np.diag(covariance))


def mig_instances(gpu: NodeSpec, memory_fractions: Sequence[float]) -> list[NodeSpec]:
    """Each MIG instance is its own device: its own memory, its own time-sliced queue (PS model inside it)."""
    if sum(memory_fractions) > 1.0 + 1e-9:
        raise ValueError(f"MIG slices of {gpu.name} exceed the GPU: {list(memory_fractions)}")
    return [
        gpu.model_copy(update={"name": f"{gpu.name}-mig{index}", "memory_mb": gpu.memory_mb * fraction})
        for index, fraction in enumerate(memory_fractions)
    ]


def batch_meets_slo(batch_latency_ms: float, batch_size: int, rate_per_s: float, slo_ms: float) -> bool:
    """Batching rule: saturated (a batch fills before the last one finishes) needs 2 L(b) <= SLO, since a
    request can wait a whole batch then run in the next; otherwise the batch-fill time counts: L(b) +
    b/lambda."""
    fill_ms = batch_size / rate_per_s * 1000.0
    if fill_ms <= batch_latency_ms:
        return 2.0 * batch_latency_ms <= slo_ms
    return batch_latency_ms + fill_ms <= slo_ms


def largest_batch_within_slo(
    latency_ms_by_batch: dict[int, float], rate_per_s: float, slo_ms: float
) -> int | None:
    feasible = [
        size
        for size, latency in latency_ms_by_batch.items()
        if batch_meets_slo(latency, size, rate_per_s, slo_ms)
    ]
    return max(feasible) if feasible else None
