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
# # Rescheduling what-if: which running workloads to move, and how few moves are enough?
#
# A fleet is running and some tenants are slowed down by their neighbours: which should move, and where, to
# raise the **worst predicted P** with the fewest moves (`cotenant.planning.rescheduling`)? `n_hosts` hosts
# each run the tenants of one recorded co-run (drawn with `seed`), `empty_hosts` of them none; a tenant asks
# for the CPUs and memory its lab cgroup had. **Current P** comes from the monitoring model (recorded co-run
# telemetry where the dataset has it, else solo profiles: the table says which). **Hypothetical** moves are
# scored by the placement model from solo profiles. Only tenants the dataset labels as targets are **rated**
# (the lab's pressure generators only slow others down). Greedy takes the best move until none raises the
# worst P by `min_gain` or `move_budget` is spent; on small fleets the exact search over every plan of up to
# `exact_moves` moves is its yardstick; the monitoring model then re-checks the greedy plan.

# %%
import json
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import polars as pl
from cotenant.datasets import load_source
from cotenant.planning import (
    MonitoringView,
    Planner,
    PredictorScorer,
    champions_or_trained,
    fleet_from_co_runs,
)
from cotenant.planning.charts import rescheduling_charts
from cotenant.planning.rescheduling import Scenario, key_values, study
from cotenant.training.config import TrainConfig
from cotenant.training.tracking import REGISTERED

from cotenant.demo import profile_series

warnings.filterwarnings("ignore", category=UserWarning)  # Lightning's and MLflow's notices on tiny runs

# %% tags=["parameters"]
n_hosts = 8  # hosts in the fleet, the empty ones included
empty_hosts = 1  # hosts with no tenant at the start (spare capacity)
host_cpus = 6.0  # CPUs a host offers to its tenants' requests
host_memory_mb = 4096  # memory a host offers, MB
max_tenants_per_host = 4  # the dataset's co-runs have at most 4 tenants: the models never saw more
move_budget = 6  # greedy stops after this many moves
min_gain = 0.005  # a move must raise the worst P by this much (half a point) to be worth it
exact_moves = 2  # exact search over plans of up to this many moves (0: skip)
exact_max_states = 200_000  # skip the exact search when it would visit more fleet states than this
seed = 0
source = "bundled"  # cotenant.datasets source of telemetry and solo profiles
tracking_uri = ""  # MLflow URI holding both tasks' champions; empty: train here
monitoring_model = "decision-tree"  # trained when there is no champion: a single-threaded tree takes seconds
monitoring_options: dict[str, Any] = {}  # overrides of that model's typed config
placement_epochs = 20
output_json = "rescheduling_whatif.json"  # key values for tests and downstream reports
figures_dir = ""  # where the charts are saved too; empty: next to output_json

# %% [markdown]
# ## The models, the fleet, and its current P
# Without champions in `tracking_uri`, models are trained into a store in this working directory.

# %%
scenario = Scenario.model_validate({name: globals()[name] for name in Scenario.model_fields})
table = load_source(source)
recipes = {
    REGISTERED["monitoring"]: TrainConfig(model=monitoring_model, model_options=monitoring_options),
    REGISTERED["placement"]: TrainConfig(model="placement", epochs=placement_epochs),
}
local_uri = f"sqlite:///{Path.cwd() / 'rescheduling-mlflow.db'}"
predictors, model_sources = champions_or_trained(table, recipes, tracking_uri, local_uri)
fleet, start = fleet_from_co_runs(table, n_hosts, empty_hosts, scenario.capacity, max_tenants_per_host, seed)
solo = {r.profile_id: profile_series(table, r.profile_id) for r in fleet.tenants.values()}
monitoring = MonitoringView(table, predictors[REGISTERED["monitoring"]], solo)
planner = Planner(fleet, PredictorScorer(predictors[REGISTERED["placement"]], solo))
print(json.dumps(model_sources), f"{len(fleet.tenants)} tenants ({len(fleet.rated)} rated)", sep="\n")
current = monitoring.of(fleet, start)
rows = [(t, start[t], *current[t]) for t in fleet.tenants]
print(pl.DataFrame(rows, schema=["tenant", "host", "P (monitoring)", "series from"], orient="row"))

# %% [markdown]
# ## Greedy plan, the exact yardstick, and the monitoring model's re-check

# %%
result = study(planner, start, scenario, lambda state: monitoring.of(fleet, state))
print(pl.DataFrame(result.greedy.moves, schema=["tenant", "from", "to"], orient="row"), result.greedy.values)
if result.exact:
    print(f"exact: {result.exact_states} fleet states; gap of greedy to exact by moves: {result.gap}")
else:
    print(f"exact search skipped: {result.state_bound} states (cap {exact_max_states})")
worst = result.worst_monitored(fleet.rated)
print(f"monitoring re-check: worst P {worst[0]:.3f} -> {worst[-1]:.3f} over the plan")

# %%
charts = Path(figures_dir) if figures_dir else Path(output_json).parent
charts.mkdir(parents=True, exist_ok=True)
figures = rescheduling_charts(result, planner, start)
for name, figure in figures.items():
    figure.savefig(charts / f"{name}.png", dpi=90)
plt.show()  # inline in Jupyter; saved under `charts` as well

# %% [markdown]
# ## Key values

# %%
values = {"scenario": scenario.model_dump(), **key_values(result, planner, start, model_sources)}
values["figures"] = [str(charts / f"{name}.png") for name in figures]
Path(output_json).parent.mkdir(parents=True, exist_ok=True)
Path(output_json).write_text(json.dumps(values, indent=2))
