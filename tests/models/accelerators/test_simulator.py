import numpy as np
import pytest
from cotenant.models.accelerators.simulator import fcfs_with_switch, processor_sharing


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
