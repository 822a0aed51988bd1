"""Placement report: apps hosted with zero simulated SLO violations per policy on clusters and app streams
built
from Ibis's profiles (GPU, TPU, mixed), and the gap to the exact optimum on a small cluster.

Metric (Ibis's): apps arrive one by one; for each policy, the number of apps hosted at the longest stream
prefix
whose placement shows no app with a simulated mean latency over its SLO.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from pathlib import Path

from cotenant.models.accelerators.base import LITTLE_LIMIT, predict_node
from cotenant.models.accelerators.policies import POLICIES
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec, ibis_data_dir, load_apps
from cotenant.models.accelerators.simulator import SimulatedApp, SimulationConfig, simulate
from pydantic import BaseModel


def family(name: str) -> list[str]:
    """Registered policies of one family (``knapsack``, ``model_driven``, ``exact``): every policy a module
    registers reaches the report without an edit here."""
    return POLICIES.named(family=name)


def streaming_policies(mixed: bool) -> list[str]:
    """The policies compared on a stream: knapsack and model-driven ones (mixed-cluster ones on mixed
    clusters only)."""
    return [
        name
        for name in (*family("knapsack"), *family("model_driven"))
        if mixed or not POLICIES.metadata[name].get("mixed_clusters_only")
    ]


class Scenario(BaseModel):
    name: str
    description: str
    cluster: ClusterSpec
    apps: list[AppProfile]
    policies: list[str]


class PolicyVerdict(BaseModel):
    hosted: int  # apps hosted at the longest stream prefix with zero simulated violations
    stopped_by: list[str]  # the violating apps of the first prefix rejected, with their means
    unsettled: list[str]  # apps of the accepted and first rejected placements judged on an imprecise mean


class ScenarioOutcome(BaseModel):
    scenario: str
    description: str
    hosted: dict[str, int]
    verdicts: dict[str, PolicyVerdict]
    best_knapsack: int
    best_model_driven: int
    ratio: float


def stream(templates: Sequence[AppProfile], count: int) -> list[AppProfile]:
    """Cycle the profiles into `count` distinct apps (one deployment each)."""
    cycle = itertools.cycle(templates)
    return [next(cycle).model_copy(update={"name": f"app{index:02d}"}) for index in range(count)]


def differing(apps: Sequence[AppProfile], seed: int) -> list[AppProfile]:
    """The apps, each with its own rate (x 0.5-1.5) and SLO (x 0.8-1.5) drawn with `seed`: a stream whose apps
    all differ, so that no admission verdict is re-used (replicas of `stream` re-use them)."""
    rng = random.Random(seed)
    return [
        app.model_copy(
            update={
                "input_rate": app.input_rate * rng.uniform(0.5, 1.5),
                "slo_ms": app.slo_ms * rng.uniform(0.8, 1.5),
            }
        )
        for app in apps
    ]


def scenarios(n_apps: int = 40) -> list[Scenario]:
    data = ibis_data_dir()
    gpu_apps = load_apps(data / "gpu_workload1.yaml").apps
    tpu_apps = load_apps(data / "edgetpu_workload1.yaml").apps
    heter_apps = load_apps(data / "heter_toy_workload.yaml").apps
    jetsons = [NodeSpec(name=f"jetson-{i}", kind="gpu", memory_mb=4096) for i in range(1, 5)]
    corals = [NodeSpec(name=f"coral-{i}", kind="tpu", memory_mb=2048) for i in range(1, 5)]
    return [
        Scenario(
            name="gpu",
            description="4 Jetson (4 GB) nodes, apps cycling gpu_workload1.yaml",
            cluster=ClusterSpec(name="gpu", nodes=jetsons),
            apps=stream(gpu_apps, n_apps),
            policies=streaming_policies(mixed=False),
        ),
        Scenario(
            name="tpu",
            description="4 Raspberry Pi + Coral (2 GB) nodes, apps cycling edgetpu_workload1.yaml",
            cluster=ClusterSpec(name="tpu", nodes=corals),
            apps=stream(tpu_apps, n_apps),
            policies=streaming_policies(mixed=False),
        ),
        Scenario(
            name="mixed",
            description="2 Jetson + 2 Coral nodes, apps cycling heter_toy_workload.yaml",
            cluster=ClusterSpec(name="mixed", nodes=jetsons[:2] + corals[:2]),
            apps=stream(heter_apps, n_apps),
            policies=streaming_policies(mixed=True),
        ),
    ]


def describe(app: SimulatedApp) -> str:
    return (
        f"{app.app} on {app.node}: {app.mean_ms:.1f} +- {app.mean_halfwidth_ms:.1f} ms vs SLO"
        f" {app.slo_ms:.0f} ({app.simulated_s:.0f} s)"
    )


def judge_policy(
    cluster: ClusterSpec, apps: Sequence[AppProfile], policy: str, config: SimulationConfig
) -> PolicyVerdict:
    """Place growing prefixes of the stream until the simulator finds a violation."""
    best, stopped_by, unsettled, accepted = 0, [], [], None
    for prefix in range(1, len(apps) + 1):
        placement = POLICIES[policy](cluster, apps[:prefix])
        result = simulate(placement, config)
        if result.violations:
            stopped_by = [describe(app) for app in result.apps if app.violated]
            unsettled = [f"{describe(app)} (first rejected)" for app in result.unsettled]
            break
        best, accepted = placement.n_hosted, result
    if accepted is not None:
        unsettled = [f"{describe(app)} (accepted)" for app in accepted.unsettled] + unsettled
    return PolicyVerdict(hosted=best, stopped_by=stopped_by, unsettled=unsettled)


def run_scenario(scenario: Scenario, config: SimulationConfig) -> ScenarioOutcome:
    verdicts = {p: judge_policy(scenario.cluster, scenario.apps, p, config) for p in scenario.policies}
    hosted = {p: verdict.hosted for p, verdict in verdicts.items()}
    knapsack = max(hosted[p] for p in hosted if p in family("knapsack"))
    model_driven = max(v for p, v in hosted.items() if p not in family("knapsack"))
    return ScenarioOutcome(
        scenario=scenario.name,
        description=scenario.description,
        hosted=hosted,
        verdicts=verdicts,
        best_knapsack=knapsack,
        best_model_driven=model_driven,
        ratio=model_driven / knapsack if knapsack else float("inf"),
    )


def optimum_gap(config: SimulationConfig, n_apps: int = 10) -> dict[str, int]:
    """Small cluster (2 Jetsons): greedy policies against the exact optimum of the admission test."""
    apps = stream(load_apps(ibis_data_dir() / "gpu_workload1.yaml").apps, n_apps)
    cluster = ClusterSpec(
        name="small", nodes=[NodeSpec(name=f"jetson-{i}", kind="gpu", memory_mb=4096) for i in (1, 2)]
    )
    counts = {}
    greedy = [policy for policy in streaming_policies(mixed=False) if policy in family("model_driven")]
    for policy in (*greedy, *family("exact")):
        placement = POLICIES[policy](cluster, apps)
        counts[policy] = placement.n_hosted
        counts[f"{policy}_violations"] = simulate(placement, config).violations
    return counts


def refused_alone(scenario: Scenario) -> list[str]:
    """Apps the lambda*T rule refuses even on an idle node of their kind: model-driven policies never host
    them; knapsack does, and when the simulator shows them within SLO they count for knapsack."""
    refused = {}
    for app in scenario.apps:
        for node in scenario.cluster.nodes:
            if node.kind in app.devices:
                latency = predict_node(node, [app], scenario.cluster.network_ms)[1][0]
                product = app.input_rate * latency.total_ms / 1000.0
                if product >= LITTLE_LIMIT:
                    refused[app.model] = (
                        f"{app.model} (lambda {app.input_rate:.0f}/s x T {latency.total_ms:.0f} ms"
                    )
                    refused[app.model] += f" = {product:.2f})"
                break
    return sorted(refused.values())


READING = """## Reading the scenarios

- **Verdict.** An app violates when its simulated mean latency is over its SLO: a point rule, so neither the
  policy nor the SLO gets the benefit of the doubt. The mean is made precise first: each node runs (seeded,
  the first {warmup:.0f} s dropped) for {horizon:.0f} s, then longer, up to {cap:.0f} s, until every app's
  95% batch-means half-width is under {precision:.0%} of its SLO or its whole interval lies on one side of the
  SLO (the point estimate lies inside it, so a longer run would not flip the verdict). Apps still short of
  that at the cap are judged on the point estimate anyway and listed as unsettled. The first run must be
  long because the early stop trusts its interval, and a short run's interval is noisy in the wrong way: a
  quiet stretch looks both fast and steady. 60 s runs of worst-fit's 13th GPU app (a ResNet-50 on a loaded
  Jetson; the model predicts 153.3 ms, the long run gives 153-156 ms) covered that mean in 37 of 40 seeds,
  and the report's own seed read 130 +- 10 ms and waved it through; 300 s runs covered it in 20 of 20.
- **tpu is the realistic scenario**: Ibis's own edgeTPU deployment workload (`edgetpu_workload1.yaml`, its
  rates, SLOs and switch overheads as profiled) on the Raspberry Pi + Coral nodes that workload was written
  for. Apps sharing a model share one loaded copy (model-as-a-service); traditional hosting gives each app its
  own container. Depth-first mixes EfficientNet-S with MobileNet-v2 and pays reloads (its 60 ms SLO binds);
  breadth-first keeps one model per node and pays none. Knapsack's limits here sit on a knife edge (an
  EfficientNet-S at 60.2 +- 0.4 ms against 60): the long runs are what decide them.
- **gpu** is where the model-driven policies gain least. Ibis's admission test keeps lambda_i T_i < 0.8 with
  T_i the app's end-to-end latency (as its code does: the frontend is served at rate 1/T_i and its load must
  stay under 0.8), a guard for a frontend that holds each request until the reply. It refuses
  {refused}
  even on an idle Jetson. Our simulator's frontend does not block, so knapsack's copies of those
  apps meet their SLO while their node is light and count for knapsack until a neighbour pushes one over:
  the rule is kept as Ibis states it, and this scenario shows its cost.
- **mixed** uses Ibis's two-app toy file cycled; it shows the GPU/TPU choice more than a real fleet.
"""


def policy_rows(outcome: ScenarioOutcome) -> list[str]:
    rows = [
        "| policy | apps hosted | stopped by (first violation) | unsettled verdicts |",
        "|---|---|---|---|",
    ]
    for policy, verdict in outcome.verdicts.items():
        stopped = verdict.stopped_by[0] if verdict.stopped_by else "no violation"
        if len(verdict.stopped_by) > 1:
            stopped += f" (+{len(verdict.stopped_by) - 1} more)"
        rows.append(f"| {policy} | {verdict.hosted} | {stopped} | {'; '.join(verdict.unsettled) or 'none'} |")
    return rows


def write_report(out_dir: Path, n_apps: int = 40, config: SimulationConfig | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = config or SimulationConfig(seed=7)
    outcomes = [run_scenario(s, config) for s in scenarios(n_apps)]
    gap = optimum_gap(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "placement.json").write_text(
        json.dumps(
            {
                "config": config.model_dump(),
                "outcomes": [o.model_dump() for o in outcomes],
                "optimum_gap": gap,
            },
            indent=2,
        )
    )
    figure, axes = plt.subplots(1, len(outcomes), figsize=(5 * len(outcomes), 3.5))
    for axis, outcome in zip(axes, outcomes, strict=True):
        axis.bar(list(outcome.hosted), list(outcome.hosted.values()))
        axis.set_title(f"{outcome.scenario}: ratio {outcome.ratio:.2f}x")
        axis.set_ylabel("apps hosted, zero violations")
        axis.tick_params(axis="x", rotation=45)
    figure.tight_layout()
    figure.savefig(out_dir / "placement.png", dpi=100)
    lines = [
        "# Placement report",
        "",
        "Generated by `cotenant accelerators report`. Apps hosted with zero simulated SLO violations",
        "(no app's simulated mean latency over its SLO; each node runs until every mean's 95% half-width",
        f"is under {config.precision:.0%} of its SLO or its verdict is decided, {config.horizon_s:.0f} s"
        f" to at most {config.max_horizon_s:.0f} s simulated, seed {config.seed}), stream of {n_apps} apps;",
        "admission uses the default device models. Means below are +- the 95% half-width, with the",
        "simulated time of the node's run.",
        "",
        "![hosted apps](placement.png)",
        "",
    ]
    for outcome in outcomes:
        lines += [f"## {outcome.scenario}: {outcome.description}", "", *policy_rows(outcome)]
        lines += [
            "",
            f"Model-driven / best knapsack: **{outcome.ratio:.2f}x** ({outcome.best_model_driven} vs "
            f"{outcome.best_knapsack}).",
            "",
        ]
    gpu = next(s for s in scenarios(n_apps) if s.name == "gpu")
    reading = READING.format(
        refused=", ".join(refused_alone(gpu)) or "nothing",
        warmup=config.warmup_s,
        horizon=config.horizon_s,
        cap=config.max_horizon_s,
        precision=config.precision,
    )
    lines += [*reading.splitlines(), ""]
    lines += [
        "## Gap to the exact optimum (2 Jetsons, 10 apps from gpu_workload1.yaml)",
        "",
        "| policy | apps hosted | simulated violations |",
        "|---|---|---|",
    ]
    lines += [f"| {p} | {gap[p]} | {gap[p + '_violations']} |" for p in gap if not p.endswith("_violations")]
    path = out_dir / "placement.md"
    path.write_text("\n".join(lines) + "\n")
    return path
