"""Validation figures recomputed from the shipped traces against the issue's goals."""

import numpy as np
import polars as pl
import pytest
from cotenant.models.accelerators.fitting import fit_service_and_switch, linear_fit
from cotenant.models.accelerators.profiles import ibis_data_dir
from cotenant.models.accelerators.validation import validate


@pytest.fixture(scope="module")
def result():
    return validate()


def test_queueing_goal(result) -> None:
    assert result.overall.n == 25
    assert result.overall.mean <= 0.03
    assert result.overall.max <= 0.10
    assert result.held_out.mean <= 0.03
    # Ibis's own form misses the short SSD requests at low load by more than 10%: the reason for the overhead
    assert result.variants_overall["ibis"].max > 0.10


def test_closed_loop_checks(result) -> None:
    assert all(abs(c.relative_error) < 0.04 for c in result.gpu_ps + result.edgetpu_fcfs)


def test_fit_recovers_profiles_from_traces() -> None:
    trace = pl.read_csv(ibis_data_dir() / "queuing_tpu_efficientnet-LXinception_v3Xinception_v4.csv")
    fits = {fit.model: fit for fit in fit_service_and_switch(trace.filter(pl.col("vary_rho") == 0.1))}
    assert fits["efficientnet-L"].service_ms.value == pytest.approx(42.18, rel=0.03)
    assert fits["efficientnet-L"].switch_overhead_ms.value == pytest.approx(17.53, rel=0.1)
    assert fits["inception_v4"].switch_overhead_ms.stderr < 2.0


def test_linear_fit_exact_line() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    intercept, slope = linear_fit(x, 2.0 + 3.0 * x)
    assert (intercept.value, slope.value) == pytest.approx((2.0, 3.0))
    assert slope.stderr == pytest.approx(0.0, abs=1e-9)
