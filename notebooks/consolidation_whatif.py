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
# # Consolidation what-if: how many workloads fit on H hosts at a minimum-P SLO?
#
# For capacity planners. Workloads arrive one by one (drawn with a seed from the solo profiles of the fleet
# telemetry, the `bundled` dataset by default); each asks for CPU and memory equal to its solo profile's mean
# usage. Two online policies (`cotenant.planning.consolidation`) place the same stream on identical hosts:
# **requests-only** bin packing (Kubernetes' MostAllocated; interference is not looked at) and
# **degradation-aware** placement (the best predicted score among hosts where everyone stays at the SLO
# `min_p`; an empty host only when no occupied one qualifies). P is predicted by the placement model (the
# MLflow champion, or one trained here); a tenant alone on a host has P = 1 by definition.

# %%
import json
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from cotenant.datasets import load_source
from cotenant.models.base import QUANTILES
from cotenant.planning import (
    POLICIES,
    PredictorScorer,
    Scenario,
    hosts_lower_bound,
    placement_model,
    requests_from_profiles,
    study,
)
from cotenant.planning.charts import consolidation_charts

from cotenant.demo import profile_series

# %% tags=["parameters"]
source = "bundled"  # fleet telemetry: a cotenant.datasets source spec (bundled, a lab directory, ...)
n_workloads = 60  # incoming stream, drawn from the solo profiles of the source
n_hosts = 10  # the fleet the policies place the stream on
host_cpu_cores = 4.0
host_memory_gib = 16.0
min_p = 0.8  # the SLO: predicted P of every tenant at least this
slo_sweep = [0.5, 0.6, 0.7, 0.8, 0.9]
max_hosts = 60  # largest fleet tried when searching the hosts needed for the whole stream
seed = 7  # draws the stream
tracking_uri = ""  # MLflow store with the placement champion; empty or without one: train a model here
training_epochs = 40  # for a model trained here
cpu_request_metric = "cgroup_cpu_usage_seconds_per_second"  # cores
memory_request_metric = "tasks_vm_r_s_s_bytes"  # bytes
output_json = "consolidation_whatif.json"  # key values for tests and downstream reports
figures_dir = ""  # where the charts are saved too; empty: next to output_json

# %% [markdown]
# ## The workloads, and the placement model with how far to trust it
# Read every predicted P below with the held-out error in mind: a violation is a *predicted* P under the SLO.

# %%
scenario = Scenario(**{name: globals()[name] for name in Scenario.model_fields})  # fails naming a bad one
table = load_source(source)
requests = requests_from_profiles(table.profiles, cpu_request_metric, memory_request_metric)
stream_ids = [str(p) for p in np.random.default_rng(seed).choice(sorted(requests), n_workloads)]
stream = [requests[p] for p in stream_ids]
trained_max_tenants = int(table.runs["n_neighbours"].max() or 0) + 1  # more on one host: extrapolation
predictor, report = placement_model(table, source, tracking_uri, training_epochs)
scorer = PredictorScorer(predictor, {p: profile_series(table, p) for p in set(stream_ids)})
print(f"{len(requests)} profiles; model: {report.origin}")
print(
    f"held-out MAE {report.held_out_mae_pp} pp on {report.held_out_applications} (a constant guess: "
    f"{report.constant_guess_mae_pp} pp); the {QUANTILES[-1] - QUANTILES[0]:.0%} interval holds "
    f"{report.held_out_coverage} of them"
)

# %% [markdown]
# ## Placing the stream, and sensitivity to the SLO
# Per policy on the `n_hosts` fleet at `min_p`: workloads placed, hosts used, violations, tenants whose
# interval reaches under the SLO, tenants on hosts more crowded than any training run. Then per SLO: placed
# on the fleet, and hosts needed for the whole stream (None: not within `max_hosts`). Both policies are
# online and greedy, so a stricter SLO can place more on some streams (`surprises` lists every such case).

# %%
result = study(stream, scenario, scorer, trained_max_tenants)
for policy in POLICIES:
    print(policy, {k: v for k, v in asdict(result.at_slo[policy]).items() if k != "predicted_p"})
    print(*result.sensitivity[policy], sep="\n  ")
print("greedy surprises:", result.surprises)

# %%
charts = Path(figures_dir) if figures_dir else Path(output_json).parent
charts.mkdir(parents=True, exist_ok=True)
figures = consolidation_charts(result, min_p, f"{n_workloads} workloads offered to {n_hosts} hosts")
for name, figure in figures.items():
    figure.savefig(charts / f"{name}.png", dpi=90)
plt.show()  # inline in Jupyter; saved under `charts` as well

# %% [markdown]
# ## Key values

# %%
key_values = {
    "scenario": {**scenario.model_dump(), "source": source, "tracking_uri": tracking_uri},
    "model": asdict(report),
    "trained_max_tenants": trained_max_tenants,
    "requests": {
        p: {"cpu_cores": requests[p].cpu_cores, "memory_gib": requests[p].memory_gib} for p in stream_ids
    },
    "stream": stream_ids,
    "hosts_lower_bound": hosts_lower_bound(stream, scenario.capacity),
    "at_slo": {policy: asdict(outcome) for policy, outcome in result.at_slo.items()},
    "sensitivity": {policy: [asdict(p) for p in points] for policy, points in result.sensitivity.items()},
    "greedy_surprises": result.surprises,
    "figures": [str(charts / f"{name}.png") for name in figures],
}
Path(output_json).parent.mkdir(parents=True, exist_ok=True)
Path(output_json).write_text(json.dumps(key_values, indent=2))
