"""The canary runs the real sysbench and reads a speed per canary; a missing program is a clear error."""

from __future__ import annotations

import shutil

import pytest
from cotenant.datasets.lab import canary
from cotenant.datasets.lab.canary import CANARIES, CanaryFailed, CanarySpec, measure_speed

pytestmark = pytest.mark.skipif(
    shutil.which("sysbench") is None, reason="sysbench is installed by make setup"
)


def test_each_canary_measures_a_positive_speed() -> None:
    speeds = measure_speed(CanarySpec(seconds=1), cpus=2)
    assert set(speeds) == set(CANARIES)
    assert all(speed > 0 for speed in speeds.values())


def test_a_canary_that_cannot_run_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canary, "canary_workloads", lambda cpus: {"cpu": ("stressng_matrix", 1)})
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CanaryFailed, match="canary cpu"):
        measure_speed(CanarySpec(seconds=1), cpus=1)
