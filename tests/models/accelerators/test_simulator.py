import numpy as np
import pytest
from cotenant.models.accelerators.queues import fcfs_departures
from cotenant.models.accelerators.simulator import (
    BATCHES,
    fcfs_with_switch,
    mean_halfwidth,
    processor_sharing,
)
from scipy import stats


def poisson(rate_per_ms: float, n: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).exponential(1 / rate_per_ms, n))


def test_mm1_fcfs_and_ps_match_closed_form() -> None:
    arrivals = poisson(0.05, 20000, 1)  # rho = 0.5 with 10 ms mean service
    services = np.random.default_rng(2).exponential(10.0, len(arrivals))
    assert fcfs_with_switch(arrivals, ["m"] * len(arrivals), services, np.zeros(len(arrivals))).mean() == (
        pytest.approx(20.0, rel=0.06)
    )
    assert processor_sharing(arrivals, services).mean() == pytest.approx(20.0, rel=0.06)


def test_md1_closed_form() -> None:
    arrivals = poisson(0.06, 20000, 3)  # rho 0.6: W = rho s / (2 (1 - rho)) = 7.5
    response = fcfs_with_switch(
        arrivals, ["m"] * len(arrivals), np.full(len(arrivals), 10.0), np.zeros(20000)
    )
    assert response.mean() == pytest.approx(17.5, rel=0.05)


def test_switch_paid_only_between_models() -> None:
    arrivals = np.array([0.0, 100.0, 200.0, 300.0])
    response = fcfs_with_switch(arrivals, ["a", "a", "b", "a"], np.full(4, 10.0), np.full(4, 5.0))
    assert response.tolist() == [10.0, 10.0, 15.0, 15.0]


def test_ps_two_jobs_share() -> None:
    response = processor_sharing(np.array([0.0, 0.0]), np.array([10.0, 10.0]))
    assert response.tolist() == pytest.approx([20.0, 20.0])


def direct_processor_sharing(arrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """Reference: advance every active job's remaining work at each event (quadratic, obviously right)."""
    order = np.argsort(arrivals, kind="stable")
    response = np.empty(len(arrivals))
    remaining: dict[int, float] = {}
    clock, position = 0.0, 0
    while position < len(order) or remaining:
        next_arrival = arrivals[order[position]] if position < len(order) else np.inf
        job, work = min(remaining.items(), key=lambda item: item[1]) if remaining else (-1, np.inf)
        next_departure = clock + work * len(remaining)
        event = min(next_arrival, next_departure)
        remaining = {key: value - (event - clock) / len(remaining) for key, value in remaining.items()}
        clock = event
        if next_departure <= next_arrival:
            response[job] = clock - arrivals[job]
            del remaining[job]
        else:
            remaining[int(order[position])] = float(services[order[position]])
            position += 1
    return response


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_virtual_time_ps_matches_the_direct_simulation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    arrivals = rng.uniform(0.0, 2000.0, 300)
    arrivals[10:14] = arrivals[10]  # simultaneous arrivals
    services = rng.exponential(8.0, 300)  # rho ~ 1.2: long busy periods with many jobs sharing
    assert processor_sharing(arrivals, services) == pytest.approx(
        direct_processor_sharing(arrivals, services), abs=1e-6
    )


def test_vectorised_fcfs_is_the_lindley_recursion() -> None:
    rng = np.random.default_rng(4)
    arrivals = np.sort(rng.uniform(0.0, 1000.0, 500))
    work = rng.exponential(2.5, 500)
    expected, free_at = [], 0.0
    for arrival, need in zip(arrivals, work, strict=True):
        free_at = max(arrival, free_at) + need
        expected.append(free_at)
    assert fcfs_departures(arrivals, work) == pytest.approx(expected)
    assert len(fcfs_departures(np.empty(0), np.empty(0))) == 0


@pytest.mark.parametrize("count", [40, 41, 59, 60, 999, 12_345])
def test_batch_means_half_width_is_the_batches_of_array_split(count: int) -> None:
    """The half-width is Student's t over the means of np.array_split's batches (the first count % BATCHES
    one request longer, in arrival order), summed in one pass: every boundary where array_split puts it."""
    latencies = np.random.default_rng(count).exponential(30.0, count) + np.linspace(0.0, 50.0, count)
    batch_means = np.array([batch.mean() for batch in np.array_split(latencies, BATCHES)])
    quantile = stats.t.ppf(0.975, BATCHES - 1)
    expected = quantile * batch_means.std(ddof=1) / np.sqrt(BATCHES)
    assert mean_halfwidth(latencies, 0.95) == pytest.approx(expected, rel=1e-12)
    assert mean_halfwidth(latencies[: 2 * BATCHES - 1], 0.95) == float("inf")  # too few to say anything
