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
# placement policy places them on a fleet of identical nodes (`cotenant.planning.edge`). Per policy and fleet
# size: does the policy host every app (knapsack policies look at memory only; model-driven ones run Ibis's
# admission test), and does the simulator agree (an app violates when its simulated mean latency is over its
# SLO; each node runs until every mean is precise or `max_horizon_s`, apps still short of it counted as
# unsettled)? "Nodes needed" is the smallest fleet hosting all N apps with zero simulated violations. Apps
# the admission test refuses even alone are listed and left out of the sizing.
#
# Device profiles: the registered accelerator catalogue of `tracking_uri` (`cotenant accelerators fit`, from
# measured traces) for the models it has, the workload files' own for the others.

# %%
import json
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
from cotenant.models.accelerators import load_apps, predict_latencies
from cotenant.models.accelerators.base import LITTLE_LIMIT
from cotenant.models.accelerators.profiles import ibis_data_dir
from cotenant.models.accelerators.report import family
from cotenant.models.accelerators.simulator import SimulationConfig
from cotenant.planning.charts import edge_charts
from cotenant.planning.edge import fleet, hostable_alone, sizing_and_trend, with_catalogue
from cotenant.planning.models import accelerator_catalogue

# %% tags=["parameters"]
n_apps = 24  # apps in the stream (deployments cycling the workload file)
app_counts = [6, 12, 18, 24]  # stream lengths for the nodes-vs-apps trend
max_nodes = 12  # largest fleet tried per kind
horizon_s = 300.0  # first simulated run per node; shorter runs misjudge loaded nodes
max_horizon_s = 7200.0  # longest run while a mean is not yet precise
seed = 7
kinds = ["tpu", "gpu"]
policies = ["first_fit", "best_fit", "worst_fit", "depth_first", "breadth_first"]
tracking_uri = ""  # MLflow store with a cotenant-accelerators champion; empty: the workload files' profiles
output_json = "edge_fleet_sizing.json"  # key values for tests and downstream reports
figures_dir = ""  # where the charts are saved too (empty: next to output_json)

# %% [markdown]
# ## The workloads, and apps no fleet can host under their SLO

# %%
WORKLOADS = {"gpu": "gpu_workload1.yaml", "tpu": "edgetpu_workload1.yaml"}
simulation = SimulationConfig(horizon_s=horizon_s, max_horizon_s=max_horizon_s, seed=seed)
catalogue, profiles_from = accelerator_catalogue(tracking_uri)
print("device profiles:", profiles_from)
templates, refused, from_catalogue = {}, {}, {}
for kind in kinds:
    apps, from_catalogue[kind] = with_catalogue(load_apps(ibis_data_dir() / WORKLOADS[kind]).apps, catalogue)
    for app in apps:
        alone = predict_latencies(fleet(kind, 1).nodes[0], [app])[0]
        print(
            f"{kind}: {app.model:<18} lambda {app.input_rate:4.0f}/s  alone {alone.total_ms:6.1f} ms"
            f"  SLO {app.slo_ms:6.0f} ms  lambda*T {app.input_rate * alone.total_ms / 1000:.2f}"
            f" (limit {LITTLE_LIMIT})"
        )
    templates[kind] = [app for app in apps if hostable_alone(kind, app)]
    refused[kind] = sorted({app.model for app in apps if not hostable_alone(kind, app)})
print("refused even alone:", refused, "profiles from the catalogue:", from_catalogue)

# %% [markdown]
# ## Sizing per policy (its own rule, and zero simulated violations), and the trend as apps grow

# %%
sizing, trend = {}, {}
for kind in kinds:
    found = sizing_and_trend(templates[kind], kind, policies, n_apps, app_counts, max_nodes, simulation)
    sizing[kind] = {policy: asdict(row) for policy, row in found[0].items()}
    trend[kind] = found[1]
    for policy, row in sizing[kind].items():
        print(f"{kind} {policy:<14}", row, "trend", trend[kind][policy])

# %%
charts = Path(figures_dir) if figures_dir else Path(output_json).parent
charts.mkdir(parents=True, exist_ok=True)
figures = edge_charts(sizing, trend, app_counts, n_apps)
for name, figure in figures.items():
    figure.savefig(charts / f"{name}.png", dpi=90)
plt.show()  # inline in Jupyter; saved under `charts` as well

# %% [markdown]
# ## Key values

# %%
result = {
    "n_apps": n_apps,
    "app_counts": app_counts,
    "max_nodes": max_nodes,
    "horizon_s": horizon_s,
    "max_horizon_s": max_horizon_s,
    "profiles_from": profiles_from,
    "apps_with_catalogue_profiles": from_catalogue,
    "refused_alone": refused,
    "sizing": sizing,
    "trend": trend,
    "model_driven": [p for p in policies if p not in family("knapsack")],
    "figures": [str(charts / f"{name}.png") for name in figures],
}
Path(output_json).parent.mkdir(parents=True, exist_ok=True)
Path(output_json).write_text(json.dumps(result, indent=2))
