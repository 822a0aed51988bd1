"""Consolidation planning with a scorer whose answers are known: each workload has an intensity, and a
tenant's P is 1 / (1 + the summed intensity of its neighbours), so every expectation can be computed by
hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from cotenant.models.base import MEDIAN, QUANTILES
from cotenant.planning import (
    ALONE,
    Capacity,
    Request,
    greedy_surprises,
    hosts_lower_bound,
    outcome,
    place_stream,
    sweep,
)

INTENSITY = {"calm": 0.05, "busy": 0.6, "noisy": 1.5}


class KnownScorer:
    """P = 1 / (1 + neighbours' summed intensity); the interval is P -/+ 0.05."""

    def __init__(self) -> None:
        self.calls = 0

    def joining(self, newcomer: str, hosts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        self.calls += 1
        answers = []
        for incumbents in hosts:
            if not incumbents:
                answers.append(ALONE)
                continue
            tenants = [newcomer, *incumbents]
            total = sum(INTENSITY[t] for t in tenants)
            p = np.array([1.0 / (1.0 + total - INTENSITY[t]) for t in tenants])
            answers.append(np.stack([p - 0.05, p, p + 0.05], axis=1)[:, : len(QUANTILES)])
        return answers


HOST = Capacity(cpu_cores=4.0, memory_gib=16.0)


def requests(*names: str) -> list[Request]:
    return [Request(name, cpu_cores=1.0, memory_gib=2.0) for name in names]


def test_requests_only_packs_to_capacity_and_breaks_the_slo() -> None:
    stream = requests("noisy", "busy", "busy", "calm", "noisy", "calm")
    hosts = place_stream(stream, 2, HOST, "requests_only", 0.8, KnownScorer())
    assert [len(h.tenants) for h in hosts] == [4, 2]  # the fullest host first: 4 cores, then the next
    result = outcome(hosts, 0.8, trained_max_tenants=4)
    assert result.placed == 6 and result.hosts_used == 2
    # first host: noisy, busy, busy, calm -> the calm one sees 2.7 of intensity: P = 1 / 3.7
    assert min(result.predicted_p) == pytest.approx(1 / 3.7, abs=1e-4)
    assert result.violations == sum(p < 0.8 for p in result.predicted_p) > 0


def test_degradation_aware_keeps_everyone_at_the_slo_and_consolidates() -> None:
    stream = requests("calm", "calm", "noisy", "calm", "busy", "noisy")
    hosts = place_stream(stream, 3, HOST, "degradation_aware", 0.8, KnownScorer())
    result = outcome(hosts, 0.8, trained_max_tenants=4)
    assert result.violations == 0 and min(result.predicted_p) >= 0.8
    # the three calm ones share a host (P = 1 / 1.1 each); noisy and busy cannot join anyone at P >= 0.8,
    # so they take the two other hosts alone, and the last noisy one is refused
    assert sorted(len(h.tenants) for h in hosts) == [1, 1, 3] and result.placed == 5
    calm_host = next(h for h in hosts if len(h.tenants) == 3)
    assert {t.profile_id for t in calm_host.tenants} == {"calm"}
    # each admitted tenant's row is in the host's tenant order: the quantiles follow the tenants
    assert calm_host.quantiles.shape == (3, len(QUANTILES))
    assert calm_host.quantiles[:, MEDIAN] == pytest.approx([1 / 1.1] * 3)


def test_capacity_is_respected_by_both_policies() -> None:
    big = [Request("calm", cpu_cores=3.0, memory_gib=2.0), Request("calm", cpu_cores=2.0, memory_gib=2.0)]
    for policy in ("requests_only", "degradation_aware"):
        hosts = place_stream(big, 1, HOST, policy, 0.0, KnownScorer())  # type: ignore[arg-type]
        assert [len(h.tenants) for h in hosts] == [1], policy  # 3 + 2 cores > 4


def test_sweep_finds_the_hosts_needed_and_the_lower_bound() -> None:
    stream = requests(*["calm"] * 4, *["noisy"] * 4)
    assert hosts_lower_bound(stream, HOST) == 2  # 8 cores on hosts of 4
    points = sweep(stream, 2, HOST, "degradation_aware", [0.3, 0.8], KnownScorer(), 8, 4)
    lenient, strict = points
    assert lenient.hosts_needed == 3  # noisy pairs still reach P >= 0.3; calm ones fill a host of 4
    # at 0.8 every noisy workload needs a host of its own, and the calm ones share one
    assert strict.hosts_needed == 5
    assert strict.violations == 0 and strict.placed <= lenient.placed
    packing = sweep(stream, 2, HOST, "requests_only", [0.3, 0.8], KnownScorer(), 8, 4)
    assert [p.hosts_needed for p in packing] == [2, 2]  # requests alone: the lower bound
    # the calm ones packed together (P = 1 / 1.15), the noisy ones together (P = 1 / 5.5): 4 under either SLO
    assert [p.violations for p in packing] == [4, 4]
    surprises = greedy_surprises(points, packing)
    assert surprises == {"stricter_slo_placed_more": [], "aware_placed_more_than_requests_only": []}


def test_nothing_fits_within_max_hosts_is_none() -> None:
    stream = requests("noisy", "noisy", "noisy")
    (point,) = sweep(stream, 1, HOST, "degradation_aware", [0.9], KnownScorer(), 2, 4)
    assert point.hosts_needed is None and point.violations_on_hosts_needed is None
