"""Regression: in the TPU report scenario depth-first used to co-locate a 4th app (a second EfficientNet-S
next to two MobileNet-v2) that the simulator then showed over its 60 ms SLO.

Cause: Ibis's Pollaczek-Khinchine term uses E[S_i^2] = s'_i^2, the square of the *mean* switch cost, but a
request pays the full reload o_i or nothing, so E[S_i^2] = s_i^2 + p_i (2 s_i o_i + o_i^2). The missing
p_i (1 - p_i) o_i^2 made the model predict 59.1 ms for a node whose long-run simulated mean is ~60 ms.
"""

import numpy as np
import pytest
from cotenant.models.accelerators import POLICIES, load_apps
from cotenant.models.accelerators.base import ModelLoad, predict_node
from cotenant.models.accelerators.devices.edgetpu_fcfs import predict_fcfs_switch, predict_fcfs_switch_ibis
from cotenant.models.accelerators.profiles import ClusterSpec, NodeSpec, ibis_data_dir
from cotenant.models.accelerators.report import stream
from cotenant.models.accelerators.simulator import SimulationConfig, fcfs_with_switch, simulate, simulate_node

CORALS = ClusterSpec(nodes=[NodeSpec(name=f"coral-{i}", kind="tpu", memory_mb=2048) for i in range(1, 5)])


def tpu_stream(count: int):
    return stream(load_apps(ibis_data_dir() / "edgetpu_workload1.yaml").apps, count)


def test_fcfs_model_matches_the_switching_queue_it_describes() -> None:
    """Poisson arrivals with i.i.d. model labels through an FCFS server that reloads on every model change."""
    rates, services, overheads = [0.01, 0.02], [10.0, 5.0], [20.0, 12.0]  # per ms; rho ~ 0.45
    rng = np.random.default_rng(11)
    n = 200_000
    arrivals = np.cumsum(rng.exponential(1.0 / sum(rates), n))
    labels = rng.choice(2, size=n, p=np.array(rates) / sum(rates))
    response = fcfs_with_switch(
        arrivals, [str(label) for label in labels], np.take(services, labels), np.take(overheads, labels)
    )
    loads = [
        ModelLoad(model=str(i), rate_per_ms=rates[i], service_ms=services[i], switch_overhead_ms=overheads[i])
        for i in range(2)
    ]
    exact, ibis = predict_fcfs_switch(loads).response_ms, predict_fcfs_switch_ibis(loads).response_ms
    for i in range(2):
        simulated = float(response[labels == i].mean())
        assert exact[str(i)] == pytest.approx(simulated, rel=0.02)
        assert ibis[str(i)] < simulated * 0.97  # Ibis's s'^2 under-predicts the wait


def test_depth_first_no_longer_admits_the_fourth_tpu_app() -> None:
    apps = tpu_stream(4)
    placement = POLICIES["depth_first"](CORALS, apps)
    assert [app.name for app in placement.hosted["coral-1"]] == ["app00", "app01", "app02"]
    assert placement.node_of("app03") == "coral-2"
    # the rejected co-location really is over the SLO in a long simulation, and the model now says so
    node, crowded = CORALS.nodes[0], apps
    predicted = {lat.app: lat.total_ms for lat in predict_node(node, crowded, CORALS.network_ms)[1]}
    simulated = simulate_node(node, crowded, CORALS.network_ms, SimulationConfig(horizon_s=600), seed=3)
    for app in ("app00", "app03"):
        assert predicted[app] > app_slo(apps, app)
        assert predicted[app] == pytest.approx(float(simulated[app].mean()), rel=0.03)


def app_slo(apps, name: str) -> float:
    return next(app.slo_ms for app in apps if app.name == name)


def test_model_driven_tpu_placements_show_no_violation() -> None:
    config = SimulationConfig(seed=7)  # the report's judge: runs until each mean is precise
    for policy in ("depth_first", "breadth_first"):
        placement = POLICIES[policy](CORALS, tpu_stream(16))
        assert placement.n_hosted >= 12
        result = simulate(placement, config)
        assert result.violations == 0, policy
        assert not result.unsettled, policy
