"""A sitting's pre-flight: the canary's spread over a few samples, and the wait for a steady machine."""

from __future__ import annotations

import pytest
from cotenant.datasets.lab import session
from cotenant.datasets.lab.canary import CanarySpec, speed_spread_pct
from cotenant.datasets.lab.session import LabError, wait_for_steady_machine


def test_spread_is_the_range_over_the_median_per_canary() -> None:
    samples = [{"cpu": 100.0, "memory": 50.0}, {"cpu": 110.0, "memory": 50.0}, {"cpu": 95.0, "memory": 50.0}]
    spreads = speed_spread_pct(samples)
    assert spreads == pytest.approx({"cpu": 15.0, "memory": 0.0})


def test_waits_until_the_canary_is_steady(monkeypatch: pytest.MonkeyPatch) -> None:
    measured = iter([{"cpu": 2.0, "memory": 12.0}, {"cpu": 9.0, "memory": 1.0}, {"cpu": 3.0, "memory": 4.0}])
    monkeypatch.setattr(session, "measure_steadiness", lambda spec, cpus: next(measured))
    states: list[str] = []
    spreads = wait_for_steady_machine(
        CanarySpec(), 2, 5.0, 60.0, lambda i, n, spec, state: states.append(state), retry_s=0.0
    )
    assert spreads == {"cpu": 3.0, "memory": 4.0}
    assert len(states) == 2 and "memory 12.0%" in states[0] and "cpu 9.0%" in states[1]


def test_an_unsteady_machine_stops_the_sitting_naming_the_spreads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "measure_steadiness", lambda spec, cpus: {"cpu": 7.5, "memory": 2.0})
    stated = r"unsteady.*cpu 7\.5%.*more than 5% at each of 1 checks.*no run was started"
    with pytest.raises(LabError, match=stated):
        wait_for_steady_machine(CanarySpec(), 2, 5.0, 0.0)
