"""edgeTPU: one request at a time, FCFS, with a model-switch overhead (M/G/1 FCFS, Pollaczek-Khinchine).

Switching to another model reloads its parameters into the ~8 MB on-chip SRAM. With random interleaving the
previous request was another model with probability 1 - lambda_i/Lambda, so
s'_i = s_i + (1 - lambda_i/Lambda) o_i.
E[S] = sum (lambda_i/Lambda) s'_i, E[S^2] = sum (lambda_i/Lambda) E[S_i^2], rho = sum lambda_i s'_i,
W = Lambda E[S^2] / (2 (1 - rho)), R_i = s'_i + W (+ the app's client overhead, see below).

E[S_i^2] = s_i^2 + p_i (2 s_i o_i + o_i^2) with p_i = 1 - lambda_i/Lambda by default (`edgetpu_fcfs`: the
reload is paid in full or not at all), s'_i^2 in Ibis's form (`edgetpu_fcfs_ibis`), or a measured second
moment when the profile carries one (measured after the same and after another model, a fitted profile's
two are mixed as (1 - p_i) E[S_i^2 | same] + p_i E[S_i^2 | switch]). The default is exact for the
switching queue the simulator runs; Ibis's form fits the hardware traces better (`cotenant accelerators
validate`) but under-predicts that queue, which let depth-first admit an app the simulator showed over its
SLO, so admission uses the default.
`client_overhead_ms` is per-request time spent outside the device queue (host pre/post-processing that
overlaps the next request's device time); it adds to the response but not to rho.
`cotenant accelerators validate` shows why it is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from cotenant.models.accelerators.base import DEVICE_MODELS, DevicePrediction, ModelLoad
from cotenant.models.accelerators.device_models import (
    JoiningLoad,
    LoadTable,
    TablePrediction,
    beyond,
    saturated,
)

# (on-chip MB, switch overhead ms) pairs from Ibis's profiles. The brief lists sizes without naming the
# model of
# each; these four are matched by model (EfficientNet-S, EfficientNet-L, MobileNet v1, MobileNet v2), the rest
# are left out rather than guessed. Their fit is o ~ 1.5 + 2.4 ms/MB, close to Ibis's 1.95 + 2.30.
PROFILED_ONCHIP_MB_AND_OVERHEAD_MS: tuple[tuple[float, float], ...] = (
    (6.56, 17.33),
    (6.74, 17.53),
    (5.67, 15.12),
    (3.75, 10.43),
)


def effective_service_ms(loads: Sequence[ModelLoad]) -> list[float]:
    total_rate = sum(load.rate_per_ms for load in loads)
    return [
        load.service_ms + (1.0 - load.rate_per_ms / total_rate) * load.switch_overhead_ms for load in loads
    ]


def _switch_spread(service_ms: Any, overhead_ms: Any) -> Any:
    """k = 2 s o + o^2: what a reload adds to E[S^2] with probability p (one formula for the per-model
    moments, the table form and the refusal bound)."""
    return 2.0 * service_ms * overhead_ms + overhead_ms**2


def service_second_moments(loads: Sequence[ModelLoad], switch_variance: bool = True) -> list[float]:
    """E[S_i^2] per model. A request pays o_i with probability p_i = 1 - lambda_i/Lambda, so its service is
    s_i + B o_i with B ~ Bernoulli(p_i): E[S_i^2] = s_i^2 + p_i (2 s_i o_i + o_i^2). Ibis uses s'_i^2 =
    (s_i + p_i o_i)^2, which drops the switch's own variance p_i (1 - p_i) o_i^2 and so under-predicts the
    wait (by ~1 ms, enough to admit an app whose simulated mean then crosses a 60 ms SLO)."""
    total_rate = sum(load.rate_per_ms for load in loads)
    moments = []
    for load, service in zip(loads, effective_service_ms(loads), strict=True):
        switch_share = 1.0 - load.rate_per_ms / total_rate
        if load.second_moment_ms2 is not None and load.switch_second_moment_ms2 is not None:
            # measured apart (a fitted trace): mixed by how often this model follows another
            same, switched = load.second_moment_ms2, load.switch_second_moment_ms2
            moments.append((1.0 - switch_share) * same + switch_share * switched)
            continue
        if load.second_moment_ms2 is not None:
            moments.append(load.second_moment_ms2)  # measured: already includes the switches
            continue
        overhead = load.switch_overhead_ms
        if switch_variance:
            solo = load.service_ms
            moments.append(solo**2 + switch_share * _switch_spread(solo, overhead))
        else:
            moments.append(service**2)
    return moments


def predict_fcfs(loads: Sequence[ModelLoad], switch_variance: bool = True) -> DevicePrediction:
    if not loads:
        return DevicePrediction(0.0, {})
    total_rate = sum(load.rate_per_ms for load in loads)
    services = effective_service_ms(loads)
    rho = sum(load.rate_per_ms * service for load, service in zip(loads, services, strict=True))
    if rho >= 1.0:
        return DevicePrediction(rho, {load.model: float("inf") for load in loads})
    moments = service_second_moments(loads, switch_variance)
    second_moment = sum(
        load.rate_per_ms / total_rate * moment for load, moment in zip(loads, moments, strict=True)
    )
    wait = total_rate * second_moment / (2.0 * (1.0 - rho))
    return DevicePrediction(
        rho,
        {
            load.model: service + wait + load.client_overhead_ms
            for load, service in zip(loads, services, strict=True)
        },
    )


def fcfs_table(table: LoadTable, switch_variance: bool = True) -> TablePrediction:
    """`predict_fcfs` over a `LoadTable`: the same service times, moments and wait, row by row."""
    rates, services, overheads = table.rate_per_ms, table.service_ms, table.switch_overhead_ms
    total_rate = rates.sum(axis=1, keepdims=True)
    switch_share = 1.0 - rates / total_rate
    effective = services + switch_share * overheads
    rho = (rates * effective).sum(axis=1)
    same, switched = table.second_moment_ms2, table.switch_second_moment_ms2
    modelled = (
        services**2 + switch_share * _switch_spread(services, overheads) if switch_variance else effective**2
    )
    moments = np.where(
        np.isnan(same),
        modelled,
        np.where(np.isnan(switched), same, (1.0 - switch_share) * same + switch_share * switched),
    )
    moments = np.where(table.present, moments, 0.0)
    second_moment = (rates / total_rate * moments).sum(axis=1)
    with np.errstate(divide="ignore"):
        wait = total_rate[:, 0] * second_moment / (2.0 * (1.0 - rho))
    return saturated(rho, effective + wait[:, None] + table.client_overhead_ms)


class FcfsBound:
    """`predict_fcfs_switch`'s `RefusalBound` (second moments modelled). An app joining adds delta to one
    model's rate lambda_j (0 for a model not loaded). Its utilisation and Lambda E[S^2] after are exact from
    a few sums: with p_i = 1 - lambda_i / Lambda, each other model's terms lambda_i p_i o_i and lambda_i p_i
    k_i (k_i = 2 s_i o_i + o_i^2) grow by lambda_i^2 (.) delta / (Lambda (Lambda + delta)), and the joining
    model's by (Lambda - lambda_j)^2 (.) delta / (Lambda (Lambda + delta)) beside delta s_j and delta s_j^2;
    so is the wait W = Lambda E[S^2] / (2 (1 - rho)) and the joining model's response. Every other model's
    effective service s'_i only grows, so its response is at least s'_i + W + c_i as the device is now; the
    joining model's s'_j can fall (it follows itself more often), so where the app's model is loaded it alone
    is read at its plain s_j (its slack B_j - s_j - c_j from the app's `JoiningLoad`), and where its slack
    B_j - s'_j - c_j is the least the others' least is the next. Terms: rho, Lambda E[S^2], the least slack
    B_i - s'_i - c_i, its model's position, the next least (inf for one model), Lambda, sum lambda_i^2 o_i,
    sum lambda_i^2 k_i. NaN for a device with a measured second moment (a measured mix of the times after the
    same and after another model need not follow these sums); an app with one joining a device without its
    model adds delta times its measured moment. Ibis's s'_i^2 (`edgetpu_fcfs_ibis`) has no bound."""

    width = 8

    def terms(self, loads: Sequence[ModelLoad], budgets_ms: Mapping[str, float]) -> np.ndarray:
        if any(load.second_moment_ms2 is not None for load in loads):
            return np.full(self.width, np.nan)
        services = effective_service_ms(loads)
        moments = service_second_moments(loads, switch_variance=True)
        rho = sum(load.rate_per_ms * service for load, service in zip(loads, services, strict=True))
        second = sum(load.rate_per_ms * moment for load, moment in zip(loads, moments, strict=True))
        slacks = [
            budgets_ms[load.model] - service - load.client_overhead_ms
            for load, service in zip(loads, services, strict=True)
        ]
        least = min(range(len(slacks)), key=slacks.__getitem__)
        next_least = min((slack for slot, slack in enumerate(slacks) if slot != least), default=float("inf"))
        total_rate = sum(load.rate_per_ms for load in loads)
        squared_switch = sum(load.rate_per_ms**2 * load.switch_overhead_ms for load in loads)
        squared_spread = sum(
            load.rate_per_ms**2 * _switch_spread(load.service_ms, load.switch_overhead_ms) for load in loads
        )
        return np.array(
            [rho, second, slacks[least], least, next_least, total_rate, squared_switch, squared_spread]
        )

    def __call__(
        self, terms: np.ndarray, joining: JoiningLoad, tolerance: float
    ) -> tuple[np.ndarray, np.ndarray]:
        rho, second, least, least_slot, next_least, total, squared_switch, squared_spread = terms.T
        rate, service, overhead = joining.rate_per_ms, joining.service_ms, joining.switch_overhead_ms
        group_rate = joining.group_rate_per_ms
        others = total - group_rate  # Lambda - lambda_j
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = rate / (total * (total + rate))  # delta / (Lambda (Lambda + delta))
            utilisation = (
                rho
                + rate * service
                + spread * (squared_switch - group_rate**2 * overhead + others**2 * overhead)
            )
            spread_k = _switch_spread(service, overhead)
            added = rate * service**2 + spread * (
                squared_spread - group_rate**2 * spread_k + others**2 * spread_k
            )
            if not np.isnan(joining.second_moment_ms2):  # a model not loaded brings its measured moment
                same, switched = joining.second_moment_ms2, joining.switch_second_moment_ms2
                follows_another = total / (total + rate)  # its p as the one new model on the device
                moment = same if np.isnan(switched) else same + follows_another * (switched - same)
                added = np.where(joining.joins_group, added, rate * moment + spread * squared_spread)
            free = 1.0 - utilisation
            wait = np.where(free > 0.0, (second + added) / (2.0 * free), np.inf)
        wait[np.isnan(second)] = np.nan
        # group_slot is -1 where the app's model is not loaded: no model's position, and its plain slack inf
        others_least = np.where(least_slot == joining.group_slot, next_least, least)
        slack = np.minimum(others_least, joining.group_budget_ms - service - joining.client_overhead_ms)
        switch_share = 1.0 - (group_rate + rate) / (total + rate)
        own = service + switch_share * overhead + wait + joining.client_overhead_ms
        budget = np.minimum(joining.group_budget_ms, joining.budget_ms)
        return utilisation, beyond(wait, slack, tolerance) | beyond(own, budget, tolerance)


@DEVICE_MODELS.register("edgetpu_fcfs", table=fcfs_table, bound=FcfsBound())
def predict_fcfs_switch(loads: Sequence[ModelLoad]) -> DevicePrediction:
    """Default: the Pollaczek-Khinchine wait with the switch's variance in E[S^2]."""
    return predict_fcfs(loads, switch_variance=True)


@DEVICE_MODELS.register("edgetpu_fcfs_ibis", table=partial(fcfs_table, switch_variance=False))
def predict_fcfs_switch_ibis(loads: Sequence[ModelLoad]) -> DevicePrediction:
    """Ibis's form: E[S_i^2] = s'_i^2 (the mean switch cost squared)."""
    return predict_fcfs(loads, switch_variance=False)


def estimate_switch_overhead_ms(
    onchip_mb: float, pairs: Sequence[tuple[float, float]] = PROFILED_ONCHIP_MB_AND_OVERHEAD_MS
) -> float:
    """o = a + b * MB by least squares on profiled models, for a model whose overhead was never measured."""
    sizes, overheads = np.asarray(pairs, dtype=float).T
    slope, intercept = np.polyfit(sizes, overheads, 1)
    return float(intercept + slope * onchip_mb)
