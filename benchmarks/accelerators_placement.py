"""Benchmark: the cost of one placement decision per policy, of predicting a node's latencies, and of the
exact search on small clusters, side by side with the knapsack first-fit baseline.

One decision = placing one more app on a cluster already holding the first `--incumbents` apps of a stream
(Ibis's GPU and edgeTPU workload files cycled; 4 nodes of each kind). The policy is given the whole prefix, so
its time includes re-placing the incumbents; the decision time is that minus the time to place the prefix
alone (median over `--repeats`). Prediction = the device model + frontend for every app on one loaded node.
Exact = branch and bound on 2 nodes for 6..`--max-exact` apps. Served simulations = the slowest requests
the simulator knows, answered as the service answers them (its request budget) and as offline (the larger
one), median of 3: migration periods of 1e-300 s, and an app at 2000 requests/s whose mean no run makes as
precise as asked. Request sizes = each policy placing a whole request (no simulation) of `--sizes` apps x
nodes, once, for a stream of replicas (Ibis's workload cycled) and one whose apps all differ (each its own
rate and SLO), each also without the admission screen (every node tested one by one: the reference),
with the admission tests it ran and the verdicts the screen gave; then the service's answer (placement,
simulation with migration) to the largest request of replicas, and to one whose apps differ.
Usage: `python benchmarks/accelerators_placement.py [--only sizes] [--sizes 1000x100,10000x1000]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial

from cotenant.models.accelerators import (
    POLICIES,
    ClusterSpec,
    NodeSpec,
    api,
    load_apps,
    predict_latencies,
    simulator,
)
from cotenant.models.accelerators.api import PlacementRequest
from cotenant.models.accelerators.device_models import DEVICE_MODELS
from cotenant.models.accelerators.profiles import AppProfile, DeviceProfile, ibis_data_dir
from cotenant.models.accelerators.report import differing, stream
from cotenant.models.accelerators.simulator import SimulationConfig

BASELINE = "first_fit"
POLICY_ORDER = ("first_fit", "best_fit", "worst_fit", "depth_first", "breadth_first", "heterogeneous")
WORKLOADS = {"gpu": "gpu_workload1.yaml", "tpu": "edgetpu_workload1.yaml"}
MEMORY_MB = {"gpu": 4096.0, "tpu": 2048.0}
# Apps x nodes past which a request of apps that all differ is not placed here without the admission screen
# (the reference row): it needs about one admission test per app and node (10-20 us each), minutes at the
# schema's limits.
UNSCREENED_PAIRS = 1_000_000


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cluster(kind: str, size: int) -> ClusterSpec:
    return ClusterSpec(
        nodes=[NodeSpec(name=f"{kind}-{i}", kind=kind, memory_mb=MEMORY_MB[kind]) for i in range(size)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incumbents", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--max-exact", type=int, default=12)
    parser.add_argument(
        "--sizes", default="1000x100,10000x1000", help="apps x nodes per request, comma-separated"
    )
    parser.add_argument("--only", choices=("decisions", "exact", "served", "sizes"), default=None)
    args = parser.parse_args()
    sizes = [(int(apps), int(nodes)) for apps, nodes in (size.split("x") for size in args.sizes.split(","))]
    sections: dict[str, Callable[[], None]] = {
        "decisions": partial(decisions, args.incumbents, args.repeats),
        "exact": partial(exact_search, args.max_exact),
        "served": served_simulations,
        "sizes": partial(request_sizes, sizes),
    }
    for name, section in sections.items():
        if args.only in (None, name):
            section()


def decisions(incumbents: int, repeats: int) -> None:
    for kind, workload in WORKLOADS.items():
        apps = stream(load_apps(ibis_data_dir() / workload).apps, incumbents + 1)
        nodes = cluster(kind, 4)
        print(f"\n{kind}: one decision with {incumbents} incumbents on 4 nodes (median of {repeats})")
        print(f"{'policy':<15}{'decision us':>13}{'x first_fit':>13}")
        decisions: dict[str, float] = {}
        for policy in POLICY_ORDER:
            place = POLICIES[policy]
            whole = median_seconds(partial(place, nodes, apps), repeats)
            prefix = median_seconds(partial(place, nodes, apps[:-1]), repeats)
            decisions[policy] = max(whole - prefix, 0.0)
        for policy, seconds in decisions.items():
            ratio = seconds / decisions[BASELINE] if decisions[BASELINE] > 0 else float("inf")
            print(f"{policy:<15}{seconds * 1e6:>13.1f}{ratio:>13.1f}")
        loaded = POLICIES["depth_first"](nodes, apps).hosted[nodes.nodes[0].name]
        predict = median_seconds(partial(predict_latencies, nodes.nodes[0], loaded), repeats * 10)
        print(f"predict latencies for a node of {len(loaded)} apps: {predict * 1e6:.1f} us")


def exact_search(max_exact: int) -> None:
    print("\nexact search, 2 Jetsons (median of 3), against depth_first on the same apps")
    print(f"{'apps':>5}{'exact ms':>12}{'depth_first ms':>16}{'ratio':>10}{'hosted exact/df':>18}")
    gpu_apps = load_apps(ibis_data_dir() / WORKLOADS["gpu"]).apps
    small = cluster("gpu", 2)
    for count in range(6, max_exact + 1, 2):
        apps = stream(gpu_apps, count)
        exact = median_seconds(partial(POLICIES["exact"], small, apps), 3)
        greedy = median_seconds(partial(POLICIES["depth_first"], small, apps), 3)
        hosted = f"{POLICIES['exact'](small, apps).n_hosted}/{POLICIES['depth_first'](small, apps).n_hosted}"
        print(f"{count:>5}{exact * 1e3:>12.1f}{greedy * 1e3:>16.2f}{exact / greedy:>10.0f}{hosted:>18}")


def served_simulations() -> None:
    print(
        f"\nserved simulations (median of 3): the service's budget of "
        f"{simulator.SERVED_SIMULATED_REQUESTS:,} requests against the offline "
        f"{simulator.MAX_SIMULATED_REQUESTS:,}"
    )
    print(f"{'request':<34}{'served s':>10}{'offline s':>11}{'ratio':>8}")
    for name, request in slowest_requests().items():
        served = median_seconds(partial(uncached, api.serve_request, request), 3)
        offline = median_seconds(
            partial(uncached, api.place, request.cluster, request.apps, request.policy, request.simulation), 3
        )
        print(f"{name:<34}{served:>10.2f}{offline:>11.2f}{offline / served:>8.1f}")


def request_stream(kind: str, count: int, differ: bool) -> list[AppProfile]:
    """`count` apps cycling Ibis's workload for `kind`: replicas, or each with its own rate and SLO."""
    apps = stream(load_apps(ibis_data_dir() / WORKLOADS[kind]).apps, count)
    return differing(apps, seed=count) if differ else apps


@contextmanager
def unscreened() -> Iterator[None]:
    """Placements as without `AdmissionScreen`: no device model offers its table form."""
    saved = {name: DEVICE_MODELS.metadata[name].pop("table", None) for name in DEVICE_MODELS}
    try:
        yield
    finally:
        for name, table in saved.items():
            if table is not None:
                DEVICE_MODELS.metadata[name]["table"] = table


def request_sizes(sizes: list[tuple[int, int]]) -> None:
    print(
        "\nrequest sizes: one placement per policy (no simulation), seconds, admission tests run and verdicts"
        " the screen gave; 'ref': the same apps with every node tested one by one (the reference)"
    )
    print(f"{'kind':<5}{'apps':>7}{'nodes':>7}{'stream':>12}  " + "".join(f"{p:>30}" for p in POLICY_ORDER))
    for apps_count, nodes_count in sizes:
        for kind in WORKLOADS:
            nodes = cluster(kind, nodes_count)
            for differ, screen in ((False, True), (False, False), (True, True), (True, False)):
                label = ("differ" if differ else "replicas") + ("" if screen else " ref")
                if differ and not screen and apps_count * nodes_count > UNSCREENED_PAIRS:
                    print(f"{kind:<5}{apps_count:>7}{nodes_count:>7}{label:>12}  skipped: minutes")
                    continue
                apps = request_stream(kind, apps_count, differ)
                cells = []
                with nullcontext() if screen else unscreened():
                    for policy in POLICY_ORDER:
                        start = time.perf_counter()
                        placement = POLICIES[policy](nodes, apps)
                        seconds = time.perf_counter() - start
                        tests = getattr(placement, "admission_tests", None)
                        screened = getattr(placement, "screened", 0)
                        counts = "" if tests is None else f" {tests:,} / {screened:,}"
                        cells.append(f"{seconds:.2f} s{counts}")
                print(
                    f"{kind:<5}{apps_count:>7}{nodes_count:>7}{label:>12}  "
                    + "".join(f"{c:>30}" for c in cells)
                )
    apps_count, nodes_count = max(sizes)
    print(f"\nserved: {apps_count} apps on {nodes_count} nodes, simulated with migration")
    for kind in WORKLOADS:
        for differ in (False, True):
            for policy in ("depth_first", "first_fit"):
                request = PlacementRequest(
                    cluster=cluster(kind, nodes_count),
                    apps=request_stream(kind, apps_count, differ),
                    policy=policy,
                    simulation=SimulationConfig(migration=True),
                )
                start = time.perf_counter()
                try:
                    result = api.serve_request(request)
                    outcome = f"{len(result.rejected)} refused, {result.migrations} migrations"
                except ValueError as error:
                    outcome = f"422: {str(error)[:90]}"
                label = "differ" if differ else "replicas"
                print(f"{kind:<5}{label:<9}{policy:<12}{time.perf_counter() - start:>8.2f} s  {outcome}")


def uncached(action: Callable[..., object], *args: object) -> object:
    """``action`` with the simulator's memo emptied first: each repeat simulates anew."""
    simulator.clear_cache()
    return action(*args)


def slowest_requests() -> dict[str, PlacementRequest]:
    """Requests within the schema whose simulation the budget has to stop (tests/models/accelerators)."""

    def app(name: str, rate: float, service_ms: float) -> AppProfile:
        device = DeviceProfile(service_ms=service_ms, memory_mb=1)
        return AppProfile(name=name, model=name, input_rate=rate, slo_ms=100.0, devices={"gpu": device})

    jetsons = ClusterSpec(nodes=[NodeSpec(name=f"jetson-{i}", kind="gpu", memory_mb=4096) for i in range(5)])
    fast = ClusterSpec(
        network_ms=0, nodes=[NodeSpec(name="fast", kind="gpu", memory_mb=4096, frontend_ms=0.01)]
    )
    return {
        "migration, 5 apps, periods 1e-300 s": PlacementRequest(
            cluster=jetsons,
            apps=[app(f"app{i}", 10.0, 1.0) for i in range(5)],
            simulation=SimulationConfig(migration=True, migration_period_s=1e-300),
        ),
        "2000 req/s, precision 1e-9": PlacementRequest(
            cluster=fast,
            apps=[app("busy", 2000.0, 0.2)],
            simulation=SimulationConfig(precision=1e-9, stop_when_decided=False),
        ),
    }


if __name__ == "__main__":
    main()
