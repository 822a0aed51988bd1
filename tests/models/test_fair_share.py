"""The fair share placement-probes reads: max-min fair CPU between equal-weight cgroups."""

from __future__ import annotations

import numpy as np
import pytest
from cotenant.models.placement_probes import FAIR_LEVELS, fair_share


def capped(demands: list[float], levels: np.ndarray) -> np.ndarray:
    """Summed demands capped at each level ``[L]`` (what a host's DeepSets sum of embeddings carries)."""
    return np.minimum(np.asarray(demands, dtype=np.float64)[:, None], levels).sum(axis=0)


def water_filling(demands: list[float], cores: float) -> list[float]:
    """Reference: allocation / demand per tenant by exact progressive filling."""
    allocation = dict.fromkeys(range(len(demands)), 0.0)
    left, active = cores, set(range(len(demands)))
    while active and left > 1e-12:
        level = left / len(active)
        satisfied = {i for i in active if demands[i] - allocation[i] <= level}
        if not satisfied:
            for i in active:
                allocation[i] += level
            break
        for i in satisfied:
            left -= demands[i] - allocation[i]
            allocation[i] = demands[i]
        active -= satisfied
    return [allocation[i] / demands[i] for i in range(len(demands))]


def shares(demands: list[float], cores: float) -> list[float]:
    levels = np.asarray(FAIR_LEVELS) * cores
    rows = [
        (capped([d], levels), capped([o for j, o in enumerate(demands) if j != i] or [0.0], levels))
        for i, d in enumerate(demands)
    ]
    own = np.stack([r[0] for r in rows])
    others = np.stack([r[1] for r in rows])
    return list(fair_share(own, others, levels, cores))


def test_a_two_thread_build_beside_a_one_thread_job_gets_one_core_and_the_job_keeps_its_own() -> None:
    assert shares([2.0, 1.0], cores=2.0) == pytest.approx([0.5, 1.0])


def test_tenants_that_fit_are_not_slowed_and_equal_tenants_split_evenly() -> None:
    assert shares([0.5, 1.0, 0.25], cores=2.0) == pytest.approx([1.0, 1.0, 1.0])
    assert shares([1.0, 1.0, 1.0, 1.0], cores=2.0) == pytest.approx([0.5] * 4)


@pytest.mark.parametrize(
    "demands",
    [[2.0, 0.3, 1.0], [0.25, 0.25, 2.0, 1.5], [1.0, 0.75, 0.5], [0.1, 0.1, 0.1, 1.9, 2.0]],
)
def test_the_grid_matches_exact_water_filling_where_demands_sit_on_the_grid(demands: list[float]) -> None:
    levels_on_grid = all(any(abs(d - 2.0 * f) < 1e-9 for f in FAIR_LEVELS) for d in demands)
    got, want = shares(demands, cores=2.0), water_filling(demands, 2.0)
    # between grid points the level is interpolated: within a few points of P elsewhere
    assert got == pytest.approx(want, abs=1e-9 if levels_on_grid else 0.05)
    # the binding tenant is the one that asked most, and nobody gets more than it asked
    assert np.argmin(got) == int(np.argmax(demands))
    assert all(0.0 < s <= 1.0 for s in got)


def test_a_tenant_demanding_nothing_is_never_slowed() -> None:
    assert shares([0.0, 2.0, 2.0], cores=2.0)[0] == 1.0


def queue_p(own: float, others: list[float], cores: float) -> float:
    """P a latency's queue keeps beside ``others`` (``service_queue``'s term, ``exp(-term)``)."""
    from cotenant.models.placement_probes import ProbePlacementModel

    model = ProbePlacementModel(service_queue=True)
    model.host_cores_ = cores
    levels = np.asarray(FAIR_LEVELS) * cores
    term = model._queue_slowdown(capped([own], levels)[None], capped(others or [0.0], levels)[None], levels)
    return float(np.exp(-term[0]))


def test_a_latency_waits_as_a_queue_on_the_cpu_the_fair_share_leaves_it() -> None:
    """A service of 0.2 cores beside half a core: the fair share leaves it 0.5 of the CPU, where it is
    busy 0.2 / 0.5 of the time against 0.2 alone: response time (1 - 0.2) / (1 - 0.4) longer, P 0.75; the
    fair share itself gives it all it asks (P 1)."""
    assert queue_p(0.2, [0.5], cores=1.0) == pytest.approx(0.75)
    assert shares([0.2, 0.5], cores=1.0)[0] == 1.0
    assert queue_p(0.2, [], cores=1.0) == pytest.approx(1.0)  # alone, as in its solo run
    # On two cores beside two one-core jobs the level where it asks for everything is 2/3 of a core.
    assert queue_p(0.5, [1.0, 1.0], cores=2.0) == pytest.approx((1 - 0.5 / (2 / 3)) / (1 - 0.25))


def test_a_latency_offered_more_than_it_is_left_queues_without_bound() -> None:
    from cotenant.models.base import P_FLOOR

    assert queue_p(0.6, [0.5], cores=1.0) == pytest.approx(P_FLOOR)
    assert queue_p(0.3, [0.25, 0.25, 0.25], cores=1.0) == pytest.approx(P_FLOOR)  # left exactly 0.25
    # more neighbours of the same demand never leave it more
    ps = [queue_p(0.1, [0.2] * n, cores=1.0) for n in range(5)]
    assert ps == sorted(ps, reverse=True) and ps[0] == pytest.approx(1.0) and ps[-1] < 0.8
