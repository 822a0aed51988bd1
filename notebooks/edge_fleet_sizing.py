# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Edge fleet sizing: how many GPU / TPU nodes do N inference apps need?
#
# For capacity planners. Apps arrive one by one (Ibis's workload files, cycled into N deployments); each
# placement policy places them on a fleet of identical nodes. For each policy and fleet size we ask two
# questions:
#
# 1. **Does the policy host every app?** Knapsack policies look at memory only; model-driven ones run Ibis's
#    admission test (memory, utilisation, lambda*T, every app's predicted latency within its SLO).
# 2. **Does the simulator agree?** Poisson arrivals are replayed against the placement; an app violates when
#    its simulated mean latency is over its SLO. Each node runs until every mean is precise (95% half-width
#    under 1% of the SLO, or the whole interval on one side of it) or `max_horizon_s` is reached; apps still
#    short of it are judged on the point estimate and counted as unsettled.
#
# "Nodes needed" is the smallest fleet on which the policy hosts all N apps with zero simulated violations.
# Apps the admission test refuses even on an idle node are listed and left out of the sizing: no fleet size
# can host them under their SLO by the model's rules.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
from cotenant.models.accelerators import POLICIES, ClusterSpec, NodeSpec, load_apps, predict_latencies
from cotenant.models.accelerators.base import LITTLE_LIMIT, admits
from cotenant.models.accelerators.profiles import AppProfile, ibis_data_dir
from cotenant.models.accelerators.report import family, stream
from cotenant.models.accelerators.simulator import SimulationConfig, simulate

plt.switch_backend("Agg")  # charts go to PNG files; no display needed

# %% tags=["parameters"]
n_apps = 24  # apps in the stream (deployments cycling the workload file)
app_counts = [6, 12, 18, 24]  # stream lengths for the nodes-vs-apps trend
max_nodes = 12  # largest fleet tried per kind
horizon_s = 300.0  # first simulated run per node; shorter runs misjudge loaded nodes
max_horizon_s = 7200.0  # longest run while a mean is not yet precise
seed = 7
kinds = ["tpu", "gpu"]
policies = ["first_fit", "best_fit", "worst_fit", "depth_first", "breadth_first"]
output_json = "edge_fleet_sizing.json"  # key values for tests and downstream reports
figures_dir = ""  # where PNG charts go (empty: next to output_json)

# %%
WORKLOADS = {"gpu": "gpu_workload1.yaml", "tpu": "edgetpu_workload1.yaml"}
NODE_MEMORY_MB = {"gpu": 4096.0, "tpu": 2048.0}  # Jetson (4 GB) and Raspberry Pi + Coral (2 GB)
simulation = SimulationConfig(horizon_s=horizon_s, max_horizon_s=max_horizon_s, seed=seed)


def fleet(kind: str, size: int) -> ClusterSpec:
    nodes = [NodeSpec(name=f"{kind}-{i:02d}", kind=kind, memory_mb=NODE_MEMORY_MB[kind]) for i in range(size)]
    return ClusterSpec(name=f"{kind}-fleet-{size}", nodes=nodes)


def hostable_alone(kind: str, app: AppProfile) -> bool:
    return admits(fleet(kind, 1).nodes[0], [app], fleet(kind, 1).network_ms)


# %% [markdown]
# ## The workloads, and apps no fleet can host under their SLO

# %%
templates: dict[str, list[AppProfile]] = {}
refused: dict[str, list[str]] = {}
for kind in kinds:
    apps = load_apps(ibis_data_dir() / WORKLOADS[kind]).apps
    node = fleet(kind, 1).nodes[0]
    for app in apps:
        alone = predict_latencies(node, [app])[0]
        print(
            f"{kind}: {app.model:<18} lambda {app.input_rate:4.0f}/s  alone {alone.total_ms:6.1f} ms"
            f"  SLO {app.slo_ms:6.0f} ms  lambda*T {app.input_rate * alone.total_ms / 1000:.2f}"
            f" (limit {LITTLE_LIMIT})"
        )
    templates[kind] = [app for app in apps if hostable_alone(kind, app)]
    refused[kind] = sorted({app.model for app in apps if not hostable_alone(kind, app)})
print("refused even alone:", refused)

# %% [markdown]
# ## Sizing: per policy, nodes by its own rule, and nodes with zero simulated violations


# %%
def size_fleet(kind: str, policy: str, count: int) -> dict[str, int | None]:
    """Smallest fleet where the policy hosts every app (its own rule), the simulated violations there, the
    smallest fleet hosting every app with zero simulated violations (None: not within max_nodes), and how
    many verdicts on the fleets tried rest on a mean short of the asked precision."""
    apps = stream(templates[kind], count)
    by_rule: int | None = None
    violations_at_rule: int | None = None
    unsettled = 0
    for size in range(1, max_nodes + 1):
        placement = POLICIES[policy](fleet(kind, size), apps)
        if placement.rejected:
            continue
        outcome = simulate(placement, simulation)
        unsettled += len(outcome.unsettled)
        if by_rule is None:
            by_rule, violations_at_rule = size, outcome.violations
        if outcome.violations == 0:
            return {
                "by_rule": by_rule,
                "violations_at_rule": violations_at_rule,
                "zero_violation": size,
                "unsettled": unsettled,
            }
    return {
        "by_rule": by_rule,
        "violations_at_rule": violations_at_rule,
        "zero_violation": None,
        "unsettled": unsettled,
    }


sizing = {kind: {policy: size_fleet(kind, policy, n_apps) for policy in policies} for kind in kinds}
for kind, rows in sizing.items():
    print(f"\n{kind}: {n_apps} apps")
    for policy, row in rows.items():
        print(
            f"  {policy:<14} by its rule {row['by_rule']}  simulated violations there"
            f" {row['violations_at_rule']}  zero-violation fleet {row['zero_violation']}"
            f"  unsettled verdicts {row['unsettled']}"
        )

# %% [markdown]
# ## Trend: nodes needed as the app count grows (zero simulated violations)

# %%
model_driven = [p for p in policies if p not in family("knapsack")]
trend = {
    kind: {
        policy: [size_fleet(kind, policy, count)["zero_violation"] for count in app_counts]
        for policy in policies
    }
    for kind in kinds
}
for kind, per_policy in trend.items():
    print(kind, "apps", app_counts, per_policy)

# %% [markdown]
# ## Charts

# %%
out_json = Path(output_json)
charts = Path(figures_dir) if figures_dir else out_json.parent
charts.mkdir(parents=True, exist_ok=True)
figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
for axis, kind in zip(axes[0], kinds, strict=True):
    needed = [sizing[kind][p]["zero_violation"] or 0 for p in policies]
    by_rule = [sizing[kind][p]["by_rule"] or 0 for p in policies]
    positions = range(len(policies))
    axis.bar([x - 0.2 for x in positions], by_rule, width=0.4, label="by the policy's own rule")
    axis.bar([x + 0.2 for x in positions], needed, width=0.4, label="zero simulated violations")
    axis.set_xticks(list(positions), policies, rotation=40)
    axis.set_ylabel("nodes (0 = not within max_nodes)")
    axis.set_title(f"{kind}: {n_apps} apps")
    axis.legend(fontsize=7)
figure.tight_layout()
sizing_png = charts / "edge_fleet_sizing_nodes.png"
figure.savefig(sizing_png, dpi=90)

figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.4), squeeze=False)
for axis, kind in zip(axes[0], kinds, strict=True):
    for policy in policies:
        values = [v if v is not None else float("nan") for v in trend[kind][policy]]
        axis.plot(app_counts, values, marker="o", label=policy)
    axis.set_xlabel("apps")
    axis.set_ylabel("nodes, zero violations")
    axis.set_title(kind)
    axis.legend(fontsize=7)
figure.tight_layout()
trend_png = charts / "edge_fleet_sizing_trend.png"
figure.savefig(trend_png, dpi=90)

# %% [markdown]
# ## Key values

# %%
result = {
    "n_apps": n_apps,
    "app_counts": app_counts,
    "max_nodes": max_nodes,
    "horizon_s": horizon_s,
    "max_horizon_s": max_horizon_s,
    "refused_alone": refused,
    "sizing": sizing,
    "trend": trend,
    "model_driven": model_driven,
    "figures": [str(sizing_png), str(trend_png)],
}
out_json.parent.mkdir(parents=True, exist_ok=True)
out_json.write_text(json.dumps(result, indent=2))
print(json.dumps(sizing, indent=1))
