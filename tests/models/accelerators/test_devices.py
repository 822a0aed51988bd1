import math

import pytest
from cotenant.models.accelerators.base import ModelLoad
from cotenant.models.accelerators.devices.edgetpu_fcfs import (
    estimate_switch_overhead_ms,
    predict_fcfs_switch,
    predict_fcfs_switch_ibis,
)
from cotenant.models.accelerators.devices.gpu_ps import (
    closed_loop_ps_means,
    predict_ps_exact,
    predict_ps_ibis,
)
from cotenant.models.accelerators.devices.mps import batch_meets_slo, mig_instances, predict_mps
from cotenant.models.accelerators.profiles import NodeSpec


def load(model: str, rate_per_s: float, service: float, overhead: float = 0.0) -> ModelLoad:
    return ModelLoad(
        model=model, rate_per_ms=rate_per_s / 1000, service_ms=service, switch_overhead_ms=overhead
    )


def test_ps_hand_worked() -> None:
    loads = [load("a", 10, 10.0), load("b", 10, 30.0)]  # rho = 0.4, s_bar = 20
    exact = predict_ps_exact(loads)
    assert exact.utilisation == pytest.approx(0.4)
    assert exact.response_ms == pytest.approx({"a": 10 / 0.6, "b": 30 / 0.6})
    ibis = predict_ps_ibis(loads)
    wait = 20 / 0.6 - 20
    assert ibis.response_ms == pytest.approx({"a": 10 + wait, "b": 30 + wait})
    # same aggregate mean, Ibis over-predicts the small model
    assert sum(ibis.response_ms.values()) == pytest.approx(sum(exact.response_ms.values()))
    assert ibis.response_ms["a"] > exact.response_ms["a"]


@pytest.mark.parametrize("predict", [predict_ps_exact, predict_ps_ibis, predict_fcfs_switch])
def test_limits(predict) -> None:
    assert predict([load("a", 1e-6, 12.0, 5.0)]).response_ms["a"] == pytest.approx(12.0, rel=1e-6)
    near = [predict([load("a", rate, 10.0)]).response_ms["a"] for rate in (90, 99, 99.9)]
    assert near[0] < near[1] < near[2] and near[2] > 1000
    assert math.isinf(predict([load("a", 100, 10.0)]).response_ms["a"])
    twins = predict([load("a", 20, 10.0, 4.0), load("b", 20, 10.0, 4.0)]).response_ms
    assert twins["a"] == pytest.approx(twins["b"])


def test_fcfs_switch_hand_worked() -> None:
    # lambda 10/s each, s = 10 and 20, o = 10: switch prob 1/2 -> s' = 15, 25; rho = 0.4
    loads = [load("a", 10, 10.0, 10.0), load("b", 10, 20.0, 10.0)]
    ibis = predict_fcfs_switch_ibis(loads)
    wait = 0.02 * (0.5 * 15**2 + 0.5 * 25**2) / (2 * 0.6)  # Ibis: E[S_i^2] = s'_i^2
    assert ibis.utilisation == pytest.approx(0.4)
    assert ibis.response_ms == pytest.approx({"a": 15 + wait, "b": 25 + wait})
    # default: the switch is paid or not (Bernoulli 1/2): E[S_i^2] = s_i^2 + 1/2 (2 s_i o + o^2)
    exact = predict_fcfs_switch(loads)
    second_moment = 0.5 * (100 + 0.5 * (200 + 100)) + 0.5 * (400 + 0.5 * (400 + 100))
    wait = 0.02 * second_moment / (2 * 0.6)
    assert exact.utilisation == pytest.approx(0.4)
    assert exact.response_ms == pytest.approx({"a": 15 + wait, "b": 25 + wait})


def test_single_model_pays_no_switch() -> None:
    alone = predict_fcfs_switch([load("a", 10, 10.0, 50.0)])
    assert alone.utilisation == pytest.approx(0.1)


def test_overhead_from_size_is_linear_and_plausible() -> None:
    small, large = estimate_switch_overhead_ms(4.0), estimate_switch_overhead_ms(6.0)
    assert 10 < small < large < 20


def test_closed_loop_ps_three_equal_jobs() -> None:
    assert closed_loop_ps_means([10.0, 10.0, 10.0], 5) == pytest.approx([30.0, 30.0, 30.0])
    assert closed_loop_ps_means([10.0, 20.0], 1) == pytest.approx([20.0, 30.0])


def test_mps_interference_and_mig() -> None:
    quiet = predict_mps([load("a", 1e-6, 10.0)])
    assert quiet.response_ms["a"] == pytest.approx(10.0, rel=1e-3)  # alpha 0.895 < 1 -> solo latency
    busy = ModelLoad(model="b", rate_per_ms=1e-6, service_ms=10.0, l2_util=0.5, dram_util=0.5)
    noisy = predict_mps([load("a", 1e-6, 10.0), busy])
    assert noisy.response_ms["a"] == pytest.approx(10.0 * (0.716 * 0.5 + 0.088 * 0.5 + 0.895), rel=1e-3)
    slices = mig_instances(NodeSpec(name="a100", kind="gpu", memory_mb=40000), [0.5, 0.25, 0.25])
    assert [s.memory_mb for s in slices] == [20000, 10000, 10000]
    with pytest.raises(ValueError, match="exceed"):
        mig_instances(NodeSpec(name="a100", kind="gpu", memory_mb=40000), [0.7, 0.7])


def test_batching_rules() -> None:
    assert batch_meets_slo(40.0, 8, rate_per_s=1000, slo_ms=80)  # saturated: 2 L <= SLO
    assert not batch_meets_slo(41.0, 8, rate_per_s=1000, slo_ms=80)
    assert batch_meets_slo(20.0, 2, rate_per_s=50, slo_ms=60)  # 20 + 40
    assert not batch_meets_slo(20.0, 2, rate_per_s=40, slo_ms=60)  # 20 + 50
