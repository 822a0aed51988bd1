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
# For data scientists. The walk-through a retrained model takes before serving picks it up:
#
# 1. **Data**: run a small lab plan (real programs in cgroups, labelled with P), or load the bundled dataset,
#    a lab directory of your own, or CloudPerfTrace. Every source gives the same `RunTable`.
# 2. **Train** one registered model with MLflow tracking (`cotenant.training.run.train`, what `cotenant train`
#    calls).
# 3. **Evaluate against the champion**: the current `champion` of the MLflow registry is re-scored on
#    exactly the new model's evaluation (the same held-out applications of the same data), and the project's
#    alias rule (`cotenant.training.tracking.apply_alias_rules`) moves `champion` only when the new model is
#    better; otherwise the new version becomes `challenger`.
# 4. **Registry state** afterwards, a chart, and a JSON file of the key values. CLI equivalents at each step.

# %%
import json
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from cotenant.datasets import SOURCES, RunTable, load_source
from cotenant.datasets.lab.labels import noise_text
from cotenant.datasets.lab.plan import load_plan, summarise
from cotenant.datasets.lab.records import RunRecord
from cotenant.datasets.lab.session import run_lab
from cotenant.datasets.pack import summary
from cotenant.datasets.sources.base import looks_like
from cotenant.models import MODELS
from cotenant.training.config import TrainConfig
from cotenant.training.metrics import per_application
from cotenant.training.run import make_split, train
from cotenant.training.tracking import CHAMPION_ALIAS, REGISTERED
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

plt.switch_backend("Agg")  # charts go to PNG files; no display needed

# %% tags=["parameters"]
source = "bundled"  # bundled | lab (runs lab_plan) | synthetic | a lab dir, CloudPerfTrace tree or name:PATH
source_options: dict[str, Any] = {}  # keyword options of the source, e.g. {"n_runs": 64} for synthetic
lab_plan = ""  # for source lab: a plan YAML; empty for the two-application plan below (about a minute)
lab_out = "lab-output"  # for source lab: the lab output directory (resumed when it exists)
lab_allow_concurrent = False  # for source lab: start even while another lab runs (noisier labels)
model = "decision-tree"  # a name in cotenant.models.MODELS (cloudformer, lstm, linear, ...)
model_options: dict[str, Any] = {}  # overrides of the model's typed config
epochs = 5  # neural models only (cloudformer, lstm, system-only, temporal-only, placement)
seed = 0  # weights and data order
fold = 0  # which leave-programs-out fold is held out
tracking_uri = ""  # MLflow tracking and registry; empty for mlflow.db (sqlite) in the working dir
output_json = "retraining.json"  # key values for tests and downstream reports
figures_dir = ""  # where the PNG chart goes; empty for next to output_json

# %%
# Checked before any data is loaded or lab run starts: an unknown name lists the known ones.
task = MODELS[model].task
if epochs < 1:
    raise ValueError(f"epochs={epochs}: must be at least 1")

# %% [markdown]
# ## 1. Data
#
# `source="lab"` runs a lab plan now: each target program runs alone (solo references) and next to
# neighbours, each in its own cgroup, while the collector samples every cgroup and the host each second. It
# needs root (cgroups) and the Debian tools of the plan's workloads. The default plan below is tiny (two
# applications, 3 s executions): enough to see the whole path, far too small for a useful model; the plan
# behind the bundled dataset is `datasets/lab/plans/bundled.yaml` (about an hour on 2 cores).
#
# CLI: `cotenant lab plan-info PLAN`, `cotenant lab run PLAN --out DIR`, `cotenant lab labels DIR`.

# %%
TINY_PLAN = """\
name: retraining-notebook
seed: 3
duration_s: 3
warmup_s: 1.0  # stress-ng allocates for its first second: neighbours start early so their pressure is felt
solo_repeats: 2
# Waits up to 30 s before each run for a quiet host, then goes ahead (the run records how busy it was).
quiet: {max_wait_s: 30}
limits: {cpus: 1.0, memory_mib: 512}
targets:
  - {workload: sysbench_memory, levels: [1]}
  - {workload: sysbench_cpu, levels: [1]}
neighbours:
  membw1: {workload: pressure_membw, level: 1}
  cpu1: {workload: pressure_cpu, level: 1}
coruns: {count: 4, sizes: [1]}
"""


def run_lab_plan() -> Path:
    """Run (or resume) the lab plan into lab_out; returns the lab output directory."""
    if os.geteuid() != 0:
        raise PermissionError("source='lab' creates cgroups and needs root; use source='bundled' otherwise")
    plan_path = Path(lab_plan) if lab_plan else Path("retraining_plan.yaml")
    if not lab_plan:
        plan_path.write_text(TINY_PLAN)
    planned = summarise(load_plan(plan_path))
    print(
        f"plan {plan_path}: {planned.runs} runs ({planned.solo} solo, {planned.corun} co-runs, "
        f"{planned.neighbour_solo} neighbour solo), about {planned.estimated_s:.0f} s"
    )
    outcome = run_lab(
        plan_path,
        Path(lab_out),
        allow_concurrent=lab_allow_concurrent,
        on_progress=lambda index, total, spec, state: print(
            f"  {index}/{total} {getattr(spec, 'run_id', '')} {state}"
        ),
    )
    print(f"lab: {outcome.done} runs done, {outcome.skipped} already there, {len(outcome.failed)} failed")
    for failure in outcome.failed:
        print("  failed:", failure)
    return Path(lab_out)


def load_data() -> tuple[RunTable, str, str | None]:
    """(table, the source's kind for MLflow lineage, its path or None for a named source)."""
    if source == "lab":
        directory = run_lab_plan()
        return load_source(directory, **source_options), "lab", str(directory)
    name, _, path = source.partition(":")
    if name in SOURCES:  # bundled, synthetic, or name:PATH
        return load_source(source, **source_options), name, path or None
    # a directory: load_source recognises a lab dir, a CloudPerfTrace tree or a saved RunTable
    return load_source(Path(source), **source_options), looks_like(Path(source)) or "table", source


table, source_name, source_path = load_data()
facts = summary(table)
print(f"{source}: {facts['n_runs']} labelled co-runs of {facts['apps'].height} applications")
print("noise floor of the labels:", noise_text(facts["noise_floor"]))
print(facts["apps"])

# %% [markdown]
# ## Bringing your own telemetry, or CloudPerfTrace
#
# **Your own measurements** become a source when they are in the lab's directory format
# (`docs/architecture.md`, section 2); nothing else needs to change:
#
# ```
# DIR/runs.jsonl      one RunRecord per execution (fields printed below): solo references and co-runs;
#                     P is derived: each co-run against the median of its config's solo references
# DIR/telemetry/      `cotenant collect --out DIR/telemetry --cgroup-glob '...'` over the same period:
#                     table=cgroup (one row per cgroup per second) and table=host
# DIR/plan.yaml       optional: the plan that produced it, kept as lineage
# ```
#
# Each record's `cgroups.target` / `cgroups.neighbours` must name the cgroup paths the collector saw, and
# `started_at` / `ended_at` cut the telemetry into runs. Then set `source = "DIR"` in the parameters above (or
# `lab:DIR`). CLI: `cotenant datasets info DIR`, `cotenant train --model cloudformer --data DIR`.
#
# **CloudPerfTrace** (the CloudFormer paper's dataset, CC-BY-4.0) is read where you already keep it, never
# downloaded here: `cotenant.datasets.sources.cloudperftrace.load_cloudperftrace` reads
# `parquet_ds/tasks=<id>/*.parquet`. Set `source = "cloudperftrace:/data/CloudPerfTrace/parquet_ds"`; CLI:
# `cotenant datasets info cloudperftrace:PATH`, `cotenant train --data cloudperftrace:PATH`. It has no host
# table and no solo profiles, so only monitoring models train on it (not `placement`).

# %%
print("registered sources:", ", ".join(sorted(SOURCES)))
print("runs.jsonl record fields:", ", ".join(RunRecord.model_fields))

# %% [markdown]
# ## 2. The evaluation, and the champion it must beat
#
# Training holds out whole programs (fold `fold` of `leave_programs_out`): a held-out program appears in no
# training run, as target or as neighbour, and no statistic is fit on it. The registered model is the task's
# (`REGISTERED`: monitoring or placement).

# %%
registered_model = REGISTERED[task]
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
print(f"{model} ({task}) -> {registered_model}; tracking {uri}")
print(f"train on {split.train_apps} ({len(split.train_runs)} runs), held out {split.test_apps}")

client = MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_of(version: Any) -> str:
    """The model name a registered version was trained as (a parameter of its MLflow run)."""
    return str(client.get_run(version.run_id).data.params.get("model", "?"))


def version_by_alias(alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(registered_model, alias)
    except MlflowException:  # the registered model or the alias does not exist yet
        return None


previous_champion = version_by_alias(CHAMPION_ALIAS)
if previous_champion is None:
    print("no champion yet: the new model becomes champion whatever its error")
else:
    print(
        f"champion now: v{previous_champion.version} ({model_of(previous_champion)}), "
        f"MAE {previous_champion.tags.get('mae_pp')} pp on its own evaluation "
        f"{previous_champion.tags.get('evaluation')}"
    )

# %% [markdown]
# ## 3. Train, re-score the champion on the same evaluation, and let the alias rule decide
#
# CLI: `cotenant train --model MODEL --data SOURCE --epochs N --tracking-uri URI`.

# %%
result = train(config, table)
if result.registered is None:
    raise RuntimeError(f"{model} was not registered: the split {split.name} left no held-out runs to score")
registered_model, new_version = result.registered
new_mae = result.metrics["mae"]
tags = client.get_model_version(registered_model, new_version).tags
# the alias rule re-scored the previous champion's registered artifact on this very split
rescored = tags.get("champion_mae_pp_same_evaluation")
previous_mae = float(rescored) if rescored is not None else None
alias = result.alias
champion_after = version_by_alias(CHAMPION_ALIAS)
print(f"new {model}: v{new_version}, MAE {new_mae:.2f} pp on held-out {split.test_apps}")
if previous_champion is not None and previous_mae is not None:
    print(f"champion v{previous_champion.version} on the same runs: MAE {previous_mae:.2f} pp")
print(
    f"alias rule: v{new_version} is {alias}; champion is v{champion_after.version if champion_after else 0}"
)
applications = per_application(result.outcome.predicted, result.outcome.labels, result.outcome.applications)
print("new model, MAE pp per held-out application:", {a: round(e["mae"], 2) for a, e in applications.items()})

# %% [markdown]
# ## 4. The registry afterwards
#
# Serving loads each task's registered model at its `champion` alias and swaps when the alias
# moves; a `challenger` stays registered for comparison. `cotenant serve` with this tracking URI serves it.

# %%
versions = sorted(
    client.search_model_versions(f"name = '{registered_model}'"), key=lambda found: int(found.version)
)
registry = [
    {
        "version": str(found.version),
        "model": model_of(found),
        "aliases": sorted(client.get_model_version(registered_model, found.version).aliases),
        "mae_pp": float(found.tags["mae_pp"]) if "mae_pp" in found.tags else None,
        "evaluation": found.tags.get("evaluation"),
    }
    for found in versions
]
print(pl.DataFrame(registry))

# %% [markdown]
# ## Chart: the new model against the champion, and its predictions on the held-out runs

# %%
out_json = Path(output_json)
charts = Path(figures_dir) if figures_dir else out_json.parent
charts.mkdir(parents=True, exist_ok=True)
figure, (bars, scatter) = plt.subplots(1, 2, figsize=(10, 3.8))
compared = {f"new v{new_version}\n({alias})": new_mae}
if previous_mae is not None and previous_champion is not None:
    compared[f"champion v{previous_champion.version}\n(before)"] = previous_mae
bars.bar(list(compared), list(compared.values()), color=["tab:blue", "tab:gray"][: len(compared)])
bars.set_ylabel("MAE on held-out applications (pp)")
bars.set_title(f"same evaluation: {split.name}")
point = result.outcome.predicted[:, result.outcome.predicted.shape[1] // 2]
for application in sorted(set(result.outcome.applications)):
    chosen = np.asarray(result.outcome.applications) == application
    scatter.scatter(result.outcome.labels[chosen], point[chosen], s=12, label=application)
scatter.plot([0, 1], [0, 1], color="black", linewidth=0.8)
scatter.set_xlabel("measured P")
scatter.set_ylabel(f"predicted P ({model})")
scatter.legend(fontsize=7)
figure.tight_layout()
chart_png = charts / "retraining_vs_champion.png"
figure.savefig(chart_png, dpi=90)

# %% [markdown]
# ## Key values

# %%
values = {
    "source": source,
    "source_kind": source_name,
    "n_runs": table.runs.height,
    "applications": sorted(table.runs["application"].unique().to_list()),
    "test_applications": result.split.test_apps,
    "model": model,
    "task": task,
    "epochs": epochs,
    "tracking_uri": uri,
    "registered_model": registered_model,
    "new_version": new_version,
    "mae_new": new_mae,
    "previous_champion_version": str(previous_champion.version) if previous_champion else None,
    "mae_previous_champion": previous_mae,
    "alias": alias,
    "champion_version": str(champion_after.version) if champion_after else None,
    "registered_versions": registry,
    "figures": [str(chart_png)],
}
out_json.parent.mkdir(parents=True, exist_ok=True)
out_json.write_text(json.dumps(values, indent=2))
print(json.dumps({k: values[k] for k in ("n_runs", "mae_new", "mae_previous_champion", "alias")}, indent=1))
