"""The placement bookkeeping that makes big requests fast must not change a decision.

`Placement` keeps each node's admission state as apps join (`NodeLoad`), rules nodes out by memory for all of
them at once, screens the rest with the device model's table form (`AdmissionScreen`), and re-uses a
replica's verdict while a node is unchanged. The reference policies below are the
rules written plainly, every node tested from its whole app list by `admits` (as the policies were before),
and must place every stream exactly as the registered policies do: replicas and apps that all differ, every
device model, mixed clusters.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest
from cotenant.models.accelerators import POLICIES, ClusterSpec, NodeSpec, api, load_apps
from cotenant.models.accelerators.base import admits, node_load, utilisation
from cotenant.models.accelerators.device_models import DEVICE_MODELS
from cotenant.models.accelerators.policies import base as policies_base
from cotenant.models.accelerators.policies.base import Placement
from cotenant.models.accelerators.profiles import AppProfile, ibis_data_dir
from cotenant.models.accelerators.report import differing, stream
from cotenant.models.accelerators.simulator import SimulationConfig

IBIS = ibis_data_dir()
WORKLOADS = {
    "gpu": load_apps(IBIS / "gpu_workload1.yaml").apps,
    "tpu": load_apps(IBIS / "edgetpu_workload1.yaml").apps,
    "mixed": load_apps(IBIS / "heter_toy_workload.yaml").apps,
}
NODE_DEVICE_MODELS = {"gpu": [None, "gpu_ps_ibis", "gpu_mps"], "tpu": [None, "edgetpu_fcfs_ibis"]}

Hosted = dict[str, list[AppProfile]]


def reference(
    cluster: ClusterSpec, apps: Sequence[AppProfile], choose: Callable[[Hosted, AppProfile], NodeSpec | None]
) -> tuple[Hosted, list[str]]:
    hosted: Hosted = {node.name: [] for node in cluster.nodes}
    rejected = []
    for app in apps:
        node = choose(hosted, app)
        if node is None:
            rejected.append(app.name)
        else:
            hosted[node.name].append(app)
    return hosted, rejected


def reference_policies(cluster: ClusterSpec) -> dict[str, Callable[[Hosted, AppProfile], NodeSpec | None]]:
    def passes(hosted: Hosted, node: NodeSpec, app: AppProfile) -> bool:
        return node.kind in app.devices and admits(node, [*hosted[node.name], app], cluster.network_ms)

    def container_free_after(hosted: Hosted, node: NodeSpec, app: AppProfile) -> float:
        return node.memory_mb - sum(other.on(node.kind).memory_mb for other in [*hosted[node.name], app])

    def fitting(hosted: Hosted, app: AppProfile) -> list[NodeSpec]:
        return [
            node
            for node in cluster.nodes
            if node.kind in app.devices and container_free_after(hosted, node, app) >= 0
        ]

    def depth(hosted: Hosted, app: AppProfile, kind: str | None = None) -> NodeSpec | None:
        return next(
            (n for n in cluster.nodes if (kind is None or n.kind == kind) and passes(hosted, n, app)), None
        )

    def breadth(hosted: Hosted, app: AppProfile) -> NodeSpec | None:
        nodes = [node for node in cluster.nodes if passes(hosted, node, app)]
        sharing = [node for node in nodes if any(other.model == app.model for other in hosted[node.name])]
        idle = [node for node in nodes if not hosted[node.name]]
        if sharing or idle:
            return (sharing or idle)[0]
        return min(nodes, key=lambda node: utilisation(node, hosted[node.name]), default=None)

    def heterogeneous(hosted: Hosted, app: AppProfile) -> NodeSpec | None:
        firsts = [node for kind in app.devices if (node := depth(hosted, app, kind)) is not None]

        def increase(node: NodeSpec) -> float:
            incumbents = hosted[node.name]
            return utilisation(node, [*incumbents, app]) - utilisation(node, incumbents)

        return min(firsts, key=increase, default=None)

    return {
        "first_fit": lambda hosted, app: next(iter(fitting(hosted, app)), None),
        "best_fit": lambda hosted, app: min(
            fitting(hosted, app), key=lambda n: container_free_after(hosted, n, app), default=None
        ),
        "worst_fit": lambda hosted, app: max(
            fitting(hosted, app), key=lambda n: container_free_after(hosted, n, app), default=None
        ),
        "depth_first": depth,
        "breadth_first": breadth,
        "heterogeneous": heterogeneous,
    }


def varied(templates: Sequence[AppProfile], count: int, seed: int, distinct: bool) -> list[AppProfile]:
    """`count` apps cycling `templates`: replicas, or each with its own rate and SLO."""
    apps = stream(templates, count)
    return differing(apps, seed) if distinct else apps


def cluster_of(workload: str, size: int, seed: int) -> ClusterSpec:
    rng = random.Random(seed)
    nodes = []
    for index in range(size):
        kind = rng.choice(["gpu", "tpu"]) if workload == "mixed" else workload
        nodes.append(
            NodeSpec(
                name=f"{kind}-{index}",
                kind=kind,
                memory_mb=rng.choice([1024.0, 2048.0, 4096.0]),
                device_model=None if workload == "mixed" else rng.choice(NODE_DEVICE_MODELS[kind]),
            )
        )
    return ClusterSpec(nodes=nodes)


@pytest.mark.parametrize("workload", ["gpu", "tpu", "mixed"])
@pytest.mark.parametrize("distinct", [False, True])
def test_every_policy_places_as_its_plain_rule_does(workload: str, distinct: bool) -> None:
    cluster = cluster_of(workload, 40, seed=len(workload))  # past SCREEN_FROM_NODES: screened
    apps = varied(WORKLOADS[workload], 800, seed=3, distinct=distinct)
    checked = 0
    for name, choose in reference_policies(cluster).items():
        placement = POLICIES[name](cluster, apps)
        hosted, rejected = reference(cluster, apps, choose)
        assert {node: [a.name for a in on] for node, on in placement.hosted.items()} == {
            node: [a.name for a in on] for node, on in hosted.items()
        }, name
        assert [app.name for app in placement.rejected] == rejected, name
        assert placement.n_hosted > 0 and rejected, f"{name}: the stream should fill the cluster"
        if distinct and name in ("depth_first", "breadth_first"):  # the screen helped, as in big clusters
            assert placement.screened > 0, name
        checked += 1
    assert checked == 6


def uniform_cluster(kind: str, size: int, device_model: str | None) -> ClusterSpec:
    memory_mb = {"gpu": 4096.0, "tpu": 2048.0}[kind]  # a Jetson's, a Coral's
    return ClusterSpec(
        nodes=[
            NodeSpec(name=f"{kind}-{index}", kind=kind, memory_mb=memory_mb, device_model=device_model)
            for index in range(size)
        ]
    )


def unscreened(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placements as without the screen: no device model offers its table form."""
    for name in DEVICE_MODELS:
        monkeypatch.setitem(DEVICE_MODELS.metadata[name], "table", None)


def names(placement: Placement) -> tuple[dict[str, list[str]], list[str]]:
    hosted = {node: [app.name for app in apps] for node, apps in placement.hosted.items()}
    return hosted, [app.name for app in placement.rejected]


@pytest.mark.parametrize(
    ("kind", "device_model", "size", "count"),
    [("gpu", None, 60, 600), ("tpu", None, 30, 750), ("gpu", "gpu_mps", 40, 400)],
)
def test_replicas_reuse_verdicts_and_apps_that_differ_are_screened(
    kind: str, device_model: str | None, size: int, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = uniform_cluster(kind, size, device_model)
    replicas = varied(WORKLOADS[kind], count, seed=1, distinct=False)
    differing = varied(WORKLOADS[kind], count, seed=1, distinct=True)
    for policy in ("depth_first", "breadth_first"):
        reused = POLICIES[policy](cluster, replicas)
        tested = POLICIES[policy](cluster, differing)
        assert reused.rejected and tested.rejected  # the stream fills the nodes
        # a replica's verdict holds until its node changes: a few tests per app (one per class of apps
        # placed since), not one per app and node
        assert reused.admission_tests < len(replicas) * len(cluster.nodes) / 8, policy
        if device_model == "gpu_mps":  # no table form: apps that all differ are tested on every node
            assert tested.screened == 0
            assert tested.admission_tests > 5 * reused.admission_tests, policy
            continue
        # the screen settles all but a few nodes per app; the placement is the one testing every node gives
        with monkeypatch.context() as patched:
            unscreened(patched)
            one_by_one = POLICIES[policy](cluster, differing)
        assert names(tested) == names(one_by_one), policy
        assert tested.screened > 0 and one_by_one.screened == 0
        assert tested.admission_tests < one_by_one.admission_tests / 5, policy


def test_unhosting_leaves_the_state_of_a_node_built_afresh() -> None:
    cluster = cluster_of("tpu", 3, seed=2)
    apps = varied(WORKLOADS["tpu"], 12, seed=2, distinct=True)
    placement = POLICIES["first_fit"](cluster, apps)
    node = next(node for node in cluster.nodes if len(placement.hosted[node.name]) >= 3)
    leaving = placement.hosted[node.name][1]
    placement.unhost(node, leaving)
    left = placement.hosted[node.name]
    assert leaving not in left and placement.node_of(leaving.name) is None
    assert placement.load(node) == node_load(node, left, cluster.network_ms)
    fresh = Placement(cluster, hosted={name: list(on) for name, on in placement.hosted.items()})
    for probe in apps:  # every verdict and every memory filter as on a placement built with the apps left
        assert placement.first_admitting(probe) == fresh.first_admitting(probe)
        assert (placement.admitting(probe) == fresh.admitting(probe)).all()
        assert (placement.container_candidates(probe)[0] == fresh.container_candidates(probe)[0]).all()


def test_a_served_placement_past_its_admission_tests_is_refused_naming_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MPS nodes have no table form, so apps that all differ are tested on every node one by one
    cluster = uniform_cluster("gpu", 20, "gpu_mps")
    apps = varied(WORKLOADS["gpu"], 300, seed=4, distinct=True)
    offline = api.place(cluster, apps, "depth_first", run_simulation=False)
    assert offline.rejected  # offline there is no bound: the cluster fills and the rest are refused
    for module in (policies_base, api):
        monkeypatch.setattr(module, "MAX_ADMISSION_TESTS", 1000)
    request = api.PlacementRequest(cluster=cluster, apps=apps, policy="depth_first", simulate=False)
    with pytest.raises(ValueError, match=r"depth_first placement of 300 apps on 20 nodes gave up after 1000"):
        api.serve_request(request)
    # a knapsack policy runs no admission test, and replicas of few apps need few
    assert api.serve_request(request.model_copy(update={"policy": "first_fit"})).assignment
    replicas = varied(WORKLOADS["gpu"], 300, seed=4, distinct=False)
    served = api.serve_request(request.model_copy(update={"apps": replicas}))
    assert served.rejected and len(served.rejected) < len(replicas)
    # on the default GPU model the same apps are screened, and answered within the same bound, as offline
    screened = request.model_copy(update={"cluster": uniform_cluster("gpu", 20, None)})
    answer = api.serve_request(screened)
    placed = api.place(screened.cluster, apps, "depth_first", run_simulation=False)
    assert answer.assignment == placed.assignment and answer.rejected == placed.rejected
    # migrations are admission tests too, paid from the same budget (a cluster the simulator runs, its TPUs
    # unscreened here so that every migration tests)
    unscreened(monkeypatch)
    for module in (policies_base, api):
        monkeypatch.setattr(module, "MAX_ADMISSION_TESTS", 500)
    corals, tpu_apps = cluster_of("tpu", 20, seed=4), varied(WORKLOADS["tpu"], 100, seed=4, distinct=True)
    config = SimulationConfig(horizon_s=20, migration=True, migration_period_s=5)
    assert api.place(corals, tpu_apps, "first_fit", config).migrations > 0  # offline: unbounded
    migrating = api.PlacementRequest(cluster=corals, apps=tpu_apps, policy="first_fit", simulation=config)
    with pytest.raises(
        ValueError, match=r"first_fit placement of 100 apps on 20 nodes and its migrations gave"
    ):
        api.serve_request(migrating)


def test_migration_moves_as_the_plain_rule_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Late apps go to the first other node whose admission test they pass: the same moves, and so the same
    simulated latencies, as testing every node from its app list with `admits`."""
    cluster = cluster_of("tpu", 6, seed=5)
    apps = varied(WORKLOADS["tpu"], 40, seed=5, distinct=True)
    config = SimulationConfig(horizon_s=30, seed=1, migration=True, migration_period_s=10)
    moved = api.place(cluster, apps, "first_fit", config)

    def plain_first_admitting(
        placement: Placement, app: AppProfile, kind: str | None = None, besides: str | None = None
    ) -> NodeSpec | None:
        return next(
            (
                node
                for node in placement.cluster.nodes
                if node.name != besides
                and (kind is None or node.kind == kind)
                and node.kind in app.devices
                and admits(node, [*placement.hosted[node.name], app], placement.cluster.network_ms)
            ),
            None,
        )

    monkeypatch.setattr(Placement, "first_admitting", plain_first_admitting)
    plain = api.place(cluster, apps, "first_fit", config)
    assert moved.migrations >= 3
    assert (moved.migrations, moved.violations) == (plain.migrations, plain.violations)
    assert [(a.app, a.node, a.mean_ms) for a in moved.simulated] == [
        (a.app, a.node, a.mean_ms) for a in plain.simulated
    ]
