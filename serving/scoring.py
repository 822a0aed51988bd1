"""Degradation and placement answers from champions and host state: plain functions, no HTTP."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from cotenant.serving.hosts import HostSnapshot, HostStore
from cotenant.serving.models import LoadedModel
from cotenant.serving.schemas import EstimateView, HostPlacement

NEUTRAL_SCORE = 0.5


def driving_resource(drivers: dict[str, float]) -> str | None:
    return max(drivers, key=lambda group: drivers[group]) if drivers else None


def estimate_view(estimate: Any) -> EstimateView:
    drivers = {str(k): float(v) for k, v in (getattr(estimate, "drivers", None) or {}).items()}
    return EstimateView(
        p=float(estimate.p),
        lower=float(estimate.lower),
        upper=float(estimate.upper),
        drivers=drivers,
        driving_resource=driving_resource(drivers),
    )


def neutral(host: str, status: str, reason: str) -> HostPlacement:
    return HostPlacement(host=host, status=status, reason=reason, score=NEUTRAL_SCORE)


def score_hosts(
    newcomer: np.ndarray,
    hosts: Sequence[str],
    store: HostStore,
    placement: LoadedModel,
    min_performance: float,
) -> list[HostPlacement]:
    """Per candidate host: newcomer P, worst incumbent P, feasibility, score; sorted best first.

    Unknown or stale hosts get the neutral score and a reason: a scheduler must never fail on our account.
    """
    results: list[HostPlacement] = []
    scored: list[HostSnapshot] = []
    for host in hosts:
        snapshot = store.snapshot(host, placement)
        if snapshot is None:
            results.append(neutral(host, "unknown_host", "no telemetry received for this host"))
        elif store.is_stale(snapshot.last_seen):
            age = store.age_s(snapshot.last_seen)
            results.append(
                neutral(host, "stale_host", f"last telemetry {age:.0f}s ago (> {store.stale_after_s:g}s)")
            )
        else:
            scored.append(snapshot)
    if scored:
        estimates = placement.predictor.score_placement(newcomer, [s.encoding for s in scored])
        results.extend(
            placement_result(snapshot, estimate, min_performance)
            for snapshot, estimate in zip(scored, estimates, strict=True)
        )
    # feasible first, then by score; unknown feasibility (neutral) between feasible and infeasible
    rank = {True: 0, None: 1, False: 2}
    results.sort(key=lambda r: (rank[r.feasible], -r.score, r.host))
    return results


def placement_result(snapshot: HostSnapshot, estimate: Any, min_performance: float) -> HostPlacement:
    newcomer = estimate_view(estimate.newcomer)
    incumbents = [estimate_view(e) for e in estimate.incumbents]
    worst_index = min(range(len(incumbents)), key=lambda i: incumbents[i].p) if incumbents else None
    worst = incumbents[worst_index] if worst_index is not None else None
    binding = newcomer if worst is None or newcomer.p <= worst.p else worst
    score = min(newcomer.p, worst.p if worst else 1.0)
    score = score if math.isfinite(score) else NEUTRAL_SCORE
    return HostPlacement(
        host=snapshot.host,
        status="scored",
        newcomer=newcomer,
        worst_incumbent=worst,
        worst_incumbent_target=snapshot.incumbents[worst_index] if worst_index is not None else None,
        driving_resource=binding.driving_resource,
        feasible=score >= min_performance,
        score=min(1.0, max(0.0, score)),
    )
