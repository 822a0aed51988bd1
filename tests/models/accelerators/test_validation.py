"""Validation figures recomputed from the shipped traces against the issue's goals."""

import numpy as np
import polars as pl
import pytest
from cotenant.models.accelerators.fitting import fit_service_and_switch, linear_fit
from cotenant.models.accelerators.profiles import ibis_data_dir
from cotenant.models.accelerators.validation import validate

# The two traces the validation goal was set on; Ibis's third (inception_v4 x mobilenet_v2), shipped since, is
# where the hand-written profiles miss (below) and the fitted catalogue is checked out of sample.
GOAL_TRACES = (
    "queuing_tpu_efficientnet-LXinception_v3Xinception_v4.csv",
    "queuing_tpu_inception_v3Xssd_mobilenet_v2.csv",
)


@pytest.fixture(scope="module")
def result():
    return validate()


@pytest.fixture(scope="module")
def goal_result():
    return validate(traces=[ibis_data_dir() / name for name in GOAL_TRACES])


def test_queueing_goal(goal_result) -> None:
    result = goal_result
    assert result.overall.n == 25
    assert result.overall.mean <= 0.03
    assert result.overall.max <= 0.10
    assert result.held_out.mean <= 0.03
    # Ibis's own form misses the short SSD requests at low load by more than 10%: the reason for the overhead
    assert result.variants_overall["ibis"].max > 0.10


def test_all_shipped_traces_are_validated_and_the_third_shows_where_ibis_profiles_miss(result) -> None:
    assert result.overall.n == 35
    third = [p for p in result.points if p.trace == "inception_v4Xmobilenet_v2" and p.model == "mobilenet_v2"]
    assert len(third) == 5
    # Ibis's profiled switch overhead for mobilenet_v2 (10.4 ms) is under what this trace shows (~14 ms):
    # every level is under-predicted. The profiles fitted from the trace itself do not miss it
    # (tests/training/test_accelerators_fit.py).
    assert all(p.relative_error < -0.05 for p in third)


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


def test_a_trace_of_any_profiled_model_validates_and_an_unprofiled_one_is_named(tmp_path) -> None:
    """A trace of mobilenet_v2 (no hand-written profile before the catalogue) validates with the catalogue;
    a model the catalogue does not hold is an error naming it, the trace and the catalogue, not a KeyError."""
    from cotenant.models.accelerators.profiles import load_catalogue

    shipped = pl.read_csv(ibis_data_dir() / "queuing_tpu_inception_v3Xssd_mobilenet_v2.csv")
    renamed = shipped.with_columns(pl.col("model").replace("ssd_mobilenet_v2", "mobilenet_v2"))
    trace = tmp_path / "queuing_tpu_mine.csv"
    renamed.write_csv(trace)
    result = validate(traces=[trace], profiles=load_catalogue())
    assert {p.model for p in result.points} == {"inception_v3", "mobilenet_v2"}
    assert result.gpu_ps == [] and result.edgetpu_fcfs == []  # the shipped closed-loop checks are not yours
    unknown = renamed.with_columns(pl.col("model").replace("mobilenet_v2", "resnet_9000"))
    unknown.write_csv(trace)
    with pytest.raises(ValueError, match=r"queuing_tpu_mine\.csv: model 'resnet_9000' has no tpu profile"):
        validate(traces=[trace])


def test_the_command_takes_a_trace_and_a_catalogue(tmp_path) -> None:
    from cotenant.models.accelerators.cli import app
    from typer.testing import CliRunner

    catalogue = tmp_path / "profiles.yaml"
    catalogue.write_text(
        "models:\n  inception_v3: {tpu: {service_ms: 62.95, switch_overhead_ms: 19.39, memory_mb: 150}}\n"
    )
    trace = ibis_data_dir() / "queuing_tpu_inception_v3Xssd_mobilenet_v2.csv"
    result = CliRunner().invoke(
        app, ["validate", "--trace", str(trace), "--profiles", str(catalogue), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "ssd_mobilenet_v2" in result.output and "profiles.yaml" in result.output
