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
# # Retraining: lab plan -> dataset -> train -> evaluate against the champion -> promote
#
# For data scientists, the walk-through a retrained model takes before serving picks it up: (1) **data** from
# a small lab plan (real programs in cgroups, labelled with P), the bundled dataset, a lab directory of your
# own or CloudPerfTrace, all as one `RunTable`; (2) **train** one registered model with MLflow tracking (what
# `cotenant train` does); (3) **evaluate against the champion**: the registry's `champion` is re-scored on the
# new model's validation programs (inside its training programs: promotion is a choice, and choices never look
# at the test programs), and the alias rule moves `champion` only when the new model is better there
# (otherwise it becomes `challenger`); (4) the **registry** afterwards, a chart and the key values.

# %%
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import polars as pl
from cotenant.datasets.lab.labels import noise_text
from cotenant.datasets.pack import summary
from cotenant.models import MODELS
from cotenant.training.config import TrainConfig
from cotenant.training.metrics import per_application
from cotenant.training.retraining import comparison_chart, load_data, registry_rows, retrain
from cotenant.training.run import make_split
from cotenant.training.tracking import REGISTERED
from mlflow import MlflowClient

# %% tags=["parameters"]
source = "bundled"  # bundled | lab (runs lab_plan) | synthetic | a lab dir, CloudPerfTrace tree or name:PATH
source_options: dict[str, Any] = {}  # keyword options of the source, e.g. {"n_runs": 64} for synthetic
lab_plan = ""  # for source lab: a plan YAML; empty for datasets/lab/plans/retraining.yaml (about a minute)
lab_out = "lab-output"  # for source lab: the lab output directory (resumed when it exists)
lab_allow_concurrent = False  # for source lab: start even while another lab runs (noisier labels)
model = "decision-tree"  # a name in cotenant.models.MODELS (cloudformer, lstm, linear, ...)
model_options: dict[str, Any] = {}  # overrides of the model's typed config
epochs = 5  # neural models only (cloudformer, lstm, system-only, temporal-only, placement)
seed = 0  # weights and data order
fold = 0  # which leave-programs-out fold is held out
tracking_uri = ""  # MLflow tracking and registry; empty for mlflow.db (sqlite) in the working dir
output_json = "retraining.json"  # key values for tests and downstream reports
figures_dir = ""  # where the chart is saved too; empty for next to output_json

# %%
task = MODELS[model].task  # checked before any data is loaded: an unknown name lists the known ones
if epochs < 1:
    raise ValueError(f"epochs={epochs}: must be at least 1")

# %% [markdown]
# ## 1. Data
#
# `source="lab"` runs a lab plan now (root and the plan's Debian tools needed): each program alone and beside
# neighbours in cgroups, sampled each second. The default plan is tiny: the whole path, far too little data
# for a useful model. Your own measurements (`docs/architecture.md` section 2) or CloudPerfTrace are sources
# too: `source = "DIR"` or `"cloudperftrace:PATH"`. CLI: `cotenant lab run PLAN --out DIR`.

# %%
table, source_name, source_path = load_data(source, source_options, lab_plan, lab_out, lab_allow_concurrent)
facts = summary(table)
print(f"{source}: {facts['n_runs']} labelled co-runs of {facts['apps'].height} applications")
print("noise floor of the labels:", noise_text(facts["noise_floor"]))
print(facts["apps"])

# %% [markdown]
# ## 2. Train against the champion
#
# Training holds out whole programs (fold `fold` of `leave_programs_out`): a held-out program is in no
# training run. CLI: `cotenant train --model MODEL --data SOURCE --tracking-uri URI`.

# %%
uri = tracking_uri or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
config = TrainConfig(
    model=model,
    source=source_name,
    source_path=source_path,
    source_options=source_options,
    model_options=model_options,
    epochs=epochs,
    seed=seed,
    split="programs",
    fold=fold,
    tracking_uri=uri,
    progress=False,  # per-epoch losses go to MLflow; bars would flood the notebook's output
)
split = make_split(table, config)
print(f"{model} ({task}): train on {split.train_apps}, held out {split.test_apps}; tracking {uri}")
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
run = retrain(config, table, client, REGISTERED[task])
outcome = run.result.outcome
gate = run.result.gate
print(
    f"new {model}: v{run.new_version}, MAE {run.result.metrics['mae']:.2f} pp on held-out {split.test_apps}; "
    f"{gate.model_mae_pp:.2f} pp on the {gate.judged_on} programs {split.validation_apps}"
)
before_text = f"v{run.previous_champion}, on those {gate.judged_on} runs: {run.mae_previous_champion} pp"
print(f"champion before: {before_text}")
print(gate.reason)
print(f"alias rule: v{run.new_version} is {run.alias}; champion is v{run.champion_version}")
by_application = per_application(outcome.predicted, outcome.labels, outcome.applications)
print("MAE pp per held-out application:", {a: round(e["mae"], 2) for a, e in by_application.items()})

# %% [markdown]
# ## 3. The registry afterwards
# Serving loads each task's `champion` and swaps when the alias moves; a `challenger` stays for comparison.

# %%
registry = registry_rows(client, run.registered_model)
print(pl.DataFrame(registry))
charts = Path(figures_dir) if figures_dir else Path(output_json).parent
charts.mkdir(parents=True, exist_ok=True)
before = (
    None if run.mae_previous_champion is None else (f"v{run.previous_champion}", run.mae_previous_champion)
)
new = (f"v{run.new_version} ({run.alias})", gate.model_mae_pp)
figure = comparison_chart(outcome, model, new, before, split.name, gate.judged_on)
figure.savefig(charts / "retraining_vs_champion.png", dpi=90)
plt.show()  # inline in Jupyter; saved under `charts` as well

# %% [markdown]
# ## Key values

# %%
values = {
    "source": source,
    "source_kind": source_name,
    "n_runs": table.runs.height,
    "applications": sorted(table.runs["application"].unique().to_list()),
    "test_applications": run.result.split.test_apps,
    "model": model,
    "task": task,
    "epochs": epochs,
    "tracking_uri": uri,
    "registered_model": run.registered_model,
    "new_version": run.new_version,
    "mae_new": run.result.metrics["mae"],
    "mae_new_promotion": gate.model_mae_pp,
    "promotion_judged_on": gate.judged_on,
    "validation_applications": split.validation_apps,
    "previous_champion_version": run.previous_champion,
    "mae_previous_champion": run.mae_previous_champion,
    "alias": run.alias,
    "champion_version": run.champion_version,
    "registered_versions": registry,
    "figures": [str(charts / "retraining_vs_champion.png")],
}
Path(output_json).write_text(json.dumps(values, indent=2))  # its folder holds the chart: it exists
