"""GPU with time-sliced processes: M/G/1 processor sharing, in Ibis's per-app form and the exact per-class
form.

Both share rho = sum lambda_i s_i. Ibis adds one common wait to every app, R_i = s_i + W with
W = 1/(mu - Lambda) - 1/mu and mu = 1/s_bar; the exact multi-class PS result is R_i = s_i / (1 - rho).
They agree on the aggregate mean, but the common W over-predicts small models sharing with large ones.

Default: the exact form. Evidence (`cotenant accelerators validate`, `trt_ps_validation.csv`): jobs sharing
the
Jetson are stretched by the same factor, not delayed by the same amount: while all three jobs run, YOLOv4-tiny
(25.6 ms alone) and ResNet-50 (30.1 ms) take 77 and 85 ms, both about 3x, which is what egalitarian PS (and
the
per-class formula's common slowdown 1/(1 - rho)) says; a common additive wait would give both the same +W.
PS results are insensitive to the service distribution, so the second moment is not needed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from cotenant.models.accelerators.base import DEVICE_MODELS, DevicePrediction, ModelLoad
from cotenant.models.accelerators.device_models import (
    JoiningLoad,
    LoadTable,
    TablePrediction,
    beyond,
    saturated,
)


def _utilisation(loads: Sequence[ModelLoad]) -> float:
    return sum(load.rate_per_ms * load.service_ms for load in loads)


def _saturated(loads: Sequence[ModelLoad], rho: float) -> DevicePrediction:
    return DevicePrediction(rho, {load.model: float("inf") for load in loads})


def ps_ibis_table(table: LoadTable) -> TablePrediction:
    """`predict_ps_ibis` over a `LoadTable`."""
    rho = (table.rate_per_ms * table.service_ms).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_service = rho / table.rate_per_ms.sum(axis=1)
        wait = mean_service / (1.0 - rho) - mean_service
    return saturated(rho, table.service_ms + wait[:, None] + table.client_overhead_ms)


def ps_exact_table(table: LoadTable) -> TablePrediction:
    """`predict_ps_exact` over a `LoadTable`."""
    rho = (table.rate_per_ms * table.service_ms).sum(axis=1)
    with np.errstate(divide="ignore"):
        slowdown = 1.0 / (1.0 - rho)
    return saturated(rho, table.service_ms * slowdown[:, None] + table.client_overhead_ms)


@DEVICE_MODELS.register("gpu_ps_ibis", table=ps_ibis_table)
def predict_ps_ibis(loads: Sequence[ModelLoad]) -> DevicePrediction:
    """Ibis's form: every app waits the same W of an M/M/1 with the rate-weighted mean service time."""
    rho = _utilisation(loads)
    if rho >= 1.0:
        return _saturated(loads, rho)
    total_rate = sum(load.rate_per_ms for load in loads)
    mean_service = rho / total_rate
    wait = mean_service / (1.0 - rho) - mean_service  # 1/(mu - Lambda) - 1/mu
    return DevicePrediction(
        rho, {load.model: load.service_ms + wait + load.client_overhead_ms for load in loads}
    )


class PsExactBound:
    """`predict_ps_exact`'s `RefusalBound`: an app joining adds lambda s (its group's s) to rho, and every
    response s_i / (1 - rho) + c_i grows with rho, so model i is refused once the added utilisation reaches
    1 - rho - s_i / (B_i - c_i) (its budget can only tighten). Terms: rho, and the least of these."""

    width = 2

    def terms(self, loads: Sequence[ModelLoad], budgets_ms: Mapping[str, float]) -> np.ndarray:
        rho = _utilisation(loads)
        room = [
            1.0 - rho - load.service_ms / (budgets_ms[load.model] - load.client_overhead_ms)
            if budgets_ms[load.model] > load.client_overhead_ms
            else -math.inf
            for load in loads
        ]
        return np.array([rho, min(room)])

    def __call__(
        self, terms: np.ndarray, joining: JoiningLoad, tolerance: float
    ) -> tuple[np.ndarray, np.ndarray]:
        rho, room = terms[:, 0], terms[:, 1]
        added = joining.rate_per_ms * joining.service_ms
        utilisation = rho + added
        free = 1.0 - utilisation
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(free > 0.0, joining.service_ms / free, np.inf) + joining.client_overhead_ms
        own[np.isnan(utilisation)] = np.nan
        return utilisation, beyond(added, room, tolerance) | beyond(own, joining.budget_ms, tolerance)


@DEVICE_MODELS.register("gpu_ps_exact", table=ps_exact_table, bound=PsExactBound())
def predict_ps_exact(loads: Sequence[ModelLoad]) -> DevicePrediction:
    """Exact per-class M/G/1-PS: each class is slowed by the same factor 1/(1 - rho)."""
    rho = _utilisation(loads)
    if rho >= 1.0:
        return _saturated(loads, rho)
    return DevicePrediction(
        rho, {load.model: load.service_ms / (1.0 - rho) + load.client_overhead_ms for load in loads}
    )


def closed_loop_ps_means(service_ms: Sequence[float], runs: int) -> list[float]:
    """Mean response of jobs started together, each running `runs` requests back to back under egalitarian PS.

    Fluid model: while k jobs are active each progresses at 1/k; a job's mean response is its finish time /
    runs.
    This is the set-up of Ibis's `trt_ps_validation.csv` check.
    """
    remaining = {index: service * runs for index, service in enumerate(service_ms)}
    finish: dict[int, float] = {}
    clock = 0.0
    while remaining:
        active = len(remaining)
        work = min(remaining.values())
        clock += work * active
        for other in remaining:
            remaining[other] -= work
        for key in [key for key, value in remaining.items() if value <= 1e-9]:
            finish[key] = clock
            del remaining[key]
    return [finish[index] / runs for index in range(len(service_ms))]
