from pathlib import Path

import pytest
from cotenant.models.accelerators import POLICIES, load_apps, load_cluster, place, predict_latencies
from cotenant.models.accelerators.policies import exact
from cotenant.models.accelerators.profiles import (
    AppProfile,
    ClusterSpec,
    DeviceProfile,
    NodeSpec,
    ibis_data_dir,
)
from cotenant.models.accelerators.simulator import SimulationConfig

EXAMPLES = Path(__file__).parents[3] / "models" / "accelerators" / "examples"


def app(
    name: str, model: str, service: float, memory: float = 1000, slo: float = 150, rate: float = 10
) -> AppProfile:
    return AppProfile(
        name=name,
        model=model,
        input_rate=rate,
        slo_ms=slo,
        devices={"gpu": DeviceProfile(service_ms=service, memory_mb=memory)},
    )


# Two 4 GB GPUs; four 1 GB apps at rho 0.3 each (1 req/s of 300 ms, so lambda T stays under 0.8 for two).
# Memory fits four per node (knapsack packs them, rho 1.2),
# the admission test allows two per node (rho 0.6; three would be 0.9 > 0.8).
CLUSTER = ClusterSpec(
    nodes=[NodeSpec(name="n1", kind="gpu", memory_mb=4096), NodeSpec(name="n2", kind="gpu", memory_mb=4096)]
)
APPS = [app(f"a{i}", f"m{i}", 300.0, slo=2000, rate=1) for i in range(4)]


@pytest.mark.parametrize(
    ("policy", "per_node"),
    [
        ("first_fit", {"n1": 4, "n2": 0}),
        ("best_fit", {"n1": 4, "n2": 0}),
        ("worst_fit", {"n1": 2, "n2": 2}),
        ("depth_first", {"n1": 2, "n2": 2}),
        ("breadth_first", {"n1": 2, "n2": 2}),
        ("heterogeneous", {"n1": 2, "n2": 2}),
        ("exact", {"n1": 2, "n2": 2}),
    ],
)
def test_policies_known_outcome(policy: str, per_node: dict[str, int]) -> None:
    placement = POLICIES[policy](CLUSTER, APPS)
    assert {node: len(apps) for node, apps in placement.hosted.items()} == per_node


def test_knapsack_overload_is_seen_by_simulation() -> None:
    config = SimulationConfig(horizon_s=120, seed=1)
    assert place(CLUSTER, APPS, "first_fit", config).violations > 0
    assert place(CLUSTER, APPS, "depth_first", config).violations == 0


def test_same_model_joins_without_new_copy() -> None:
    node = NodeSpec(name="n", kind="gpu", memory_mb=2000)
    cluster = ClusterSpec(nodes=[node])
    twins = [app("x", "shared", 10.0, memory=1000), app("y", "shared", 10.0, memory=1000)]
    assert len(POLICIES["depth_first"](cluster, twins).rejected) == 0  # one copy: 1000 <= 0.8 * 2000
    assert len(POLICIES["first_fit"](cluster, twins).rejected) == 0
    latencies = predict_latencies(node, twins)
    assert latencies[0].total_ms == pytest.approx(latencies[1].total_ms)


def test_exact_is_an_upper_bound() -> None:
    apps = load_apps(ibis_data_dir() / "gpu_workload1.yaml").apps[:8]
    best = POLICIES["exact"](CLUSTER, apps).n_hosted
    for policy in ("depth_first", "breadth_first"):
        assert POLICIES[policy](CLUSTER, apps).n_hosted <= best


def test_exact_search_past_its_budget_gives_up_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # ten apps of which five nodes of distinct sizes hold one each: the bound on hosted apps never prunes
    nodes = [NodeSpec(name=f"n{i}", kind="gpu", memory_mb=1000 + i) for i in range(5)]
    apps = [app(f"a{i}", f"m{i}", 1.0, memory=700) for i in range(10)]
    assert POLICIES["exact"](ClusterSpec(nodes=nodes[:3]), apps[:5]).n_hosted == 3  # small: solved
    monkeypatch.setattr(exact, "MAX_ADMISSION_TESTS", 2_000)
    with pytest.raises(
        ValueError, match=r"exact search gave up after 2000 admission tests.*10 apps on 5 nodes"
    ):
        POLICIES["exact"](ClusterSpec(nodes=nodes), apps)
    # the service's path: a 4xx for the input, not a worker held for minutes
    with pytest.raises(ValueError, match="use a greedy policy"):
        place(ClusterSpec(nodes=nodes), apps, policy="exact", run_simulation=False)


def test_ibis_files_load_and_examples_place(tmp_path: Path) -> None:
    for name, count in [
        ("gpu_workload1.yaml", 11),
        ("edgetpu_workload1.yaml", 3),
        ("heter_toy_workload.yaml", 2),
    ]:
        assert len(load_apps(ibis_data_dir() / name).apps) == count
    heter = load_apps(ibis_data_dir() / "heter_toy_workload.yaml").apps
    assert set(heter[0].devices) == {"gpu", "tpu"}
    result = place(
        load_cluster(EXAMPLES / "mixed_cluster.yaml"), heter, "heterogeneous", SimulationConfig(horizon_s=5)
    )
    assert result.assignment["mobilenet_v2-1"].startswith(
        "coral"
    )  # small SRAM-resident model drifts to a TPU
    bad = tmp_path / "bad.yaml"
    bad.write_text("apps: [{name: x}]")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_apps(bad)


def test_migration_runs_and_moves_late_apps() -> None:
    config = SimulationConfig(horizon_s=20, seed=2, migration=True)
    result = place(CLUSTER, APPS, "first_fit", config)
    assert result.migrations >= 1


def test_a_newly_registered_policy_reaches_the_report_scenarios() -> None:
    """CONTRIBUTING's promise: registering a policy is all it takes for `cotenant accelerators report`."""
    from cotenant.models.accelerators import POLICIES
    from cotenant.models.accelerators.policies.knapsack import first_fit
    from cotenant.models.accelerators.report import family, scenarios

    POLICIES.register("first_fit_again", family="knapsack")(first_fit)
    try:
        assert "first_fit_again" in family("knapsack")
        for scenario in scenarios(n_apps=4):
            assert "first_fit_again" in scenario.policies
            # a policy for mixed clusters only is compared only where there are several device kinds
            assert ("heterogeneous" in scenario.policies) == (scenario.name == "mixed")
            assert "exact" not in scenario.policies
    finally:
        del POLICIES["first_fit_again"]
    assert "first_fit_again" not in family("knapsack")
