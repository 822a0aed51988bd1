"""The retraining walk-through's steps that are not one call already (``notebooks/retraining.py``): load or
measure the data, and read the registry back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from cotenant.datasets import SOURCES, RunTable, load_source
from cotenant.datasets.lab.plan import load_plan, summarise
from cotenant.datasets.lab.session import run_lab
from cotenant.datasets.sources.base import looks_like
from cotenant.training.tracking import version_by_alias

# Two applications, 3 s executions: the whole path in about a minute (datasets/lab/plans/retraining.yaml).
TINY_PLAN = Path(str(files("cotenant.datasets.lab.plans") / "retraining.yaml"))


def run_lab_plan(plan: Path | None, out: Path, allow_concurrent: bool) -> Path:
    """Run (or resume) a lab plan into ``out``, printing progress; ``plan`` None runs the tiny plan."""
    if os.geteuid() != 0:
        raise PermissionError("source='lab' creates cgroups and needs root; use source='bundled' otherwise")
    plan = plan or TINY_PLAN
    planned = summarise(load_plan(plan))
    print(
        f"plan {plan}: {planned.runs} runs ({planned.solo} solo, {planned.corun} co-runs, "
        f"{planned.neighbour_solo} neighbour solo), about {planned.estimated_s:.0f} s"
    )
    outcome = run_lab(
        plan,
        out,
        allow_concurrent=allow_concurrent,
        on_progress=lambda index, total, spec, state: print(
            f"  {index}/{total} {getattr(spec, 'run_id', '')} {state}"
        ),
    )
    print(f"lab: {outcome.done} runs done, {outcome.skipped} already there, {len(outcome.failed)} failed")
    for failure in outcome.failed:
        print("  failed:", failure)
    return out


def load_data(
    source: str, options: dict[str, Any], lab_plan: str, lab_out: str, allow_concurrent: bool
) -> tuple[RunTable, str, str | None]:
    """(table, the source's kind for MLflow lineage, its path or None for a named source). ``source="lab"``
    runs ``lab_plan`` (empty: the tiny plan) into ``lab_out`` first."""
    if source == "lab":
        directory = run_lab_plan(Path(lab_plan) if lab_plan else None, Path(lab_out), allow_concurrent)
        return load_source(directory, **options), "lab", str(directory)
    name, _, path = source.partition(":")
    if name in SOURCES:  # bundled, synthetic, or name:PATH
        return load_source(source, **options), name, path or None
    # a directory: load_source recognises a lab dir, a CloudPerfTrace tree or a saved RunTable
    return load_source(Path(source), **options), looks_like(Path(source)) or "table", source


def model_of(client: Any, version: Any) -> str:
    """The model name a registered version was trained as (a parameter of its MLflow run)."""
    return str(client.get_run(version.run_id).data.params.get("model", "?"))


def registry_rows(client: Any, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``: its model, aliases, MAE and the evaluation it was scored on."""
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda found: int(found.version))
    return [
        {
            "version": str(found.version),
            "model": model_of(client, found),
            "aliases": sorted(client.get_model_version(name, found.version).aliases),
            "mae_pp": float(found.tags["mae_pp"]) if "mae_pp" in found.tags else None,
            "evaluation": found.tags.get("evaluation"),
        }
        for found in versions
    ]


def comparison_chart(
    outcome: Any,
    model: str,
    new: tuple[str, float],
    champion_before: tuple[str, float] | None,
    evaluation: str,
    judged_on: str,
) -> Any:
    """The new model's MAE beside the champion's where promotion compared them (``judged_on`` programs of
    the same split), and the new model's predictions against the measured P of the held-out test runs, per
    application."""
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (bars, scatter) = plt.subplots(1, 2, figsize=(10, 3.8))
    compared = {f"new {new[0]}": new[1]}
    if champion_before is not None:
        compared[f"champion {champion_before[0]}\n(before)"] = champion_before[1]
    bars.bar(list(compared), list(compared.values()), color=["tab:blue", "tab:gray"][: len(compared)])
    bars.set(ylabel=f"MAE on {judged_on} programs (pp)", title=f"promotion's comparison: {evaluation}")
    point = outcome.predicted[:, outcome.predicted.shape[1] // 2]
    applications = np.asarray(outcome.applications)
    for application in sorted(set(outcome.applications)):
        chosen = applications == application
        scatter.scatter(outcome.labels[chosen], point[chosen], s=12, label=application)
    scatter.plot([0, 1], [0, 1], color="black", linewidth=0.8)
    scatter.set(xlabel="measured P", ylabel=f"predicted P ({model})")
    scatter.legend(fontsize=7)
    figure.tight_layout()
    return figure


@dataclass
class Retrained:
    """A training run registered against the champion it had to beat, as the alias rule decided."""

    result: Any  # the TrainResult
    registered_model: str
    new_version: str
    previous_champion: str | None  # the champion's version before this run
    mae_previous_champion: float | None  # that champion re-scored where this run's promotion looked
    alias: str  # champion | challenger
    champion_version: str | None  # after this run


def retrain(config: Any, table: RunTable, client: Any, registered_model: str) -> Retrained:
    """Train and register ``config``'s model; the alias rule re-scores the champion on the same validation
    programs and moves ``champion`` only when the new model is better there."""
    from cotenant.training.run import train
    from cotenant.training.tracking import CHAMPION_ALIAS

    before = version_by_alias(client, registered_model, CHAMPION_ALIAS)
    result = train(config, table)
    if result.registered is None:
        raise RuntimeError(f"{config.model} was not registered: its split left no held-out runs to score")
    name, version = result.registered
    rescored = client.get_model_version(name, version).tags.get("champion_mae_pp_same_evaluation")
    after = version_by_alias(client, name, CHAMPION_ALIAS)
    return Retrained(
        result=result,
        registered_model=name,
        new_version=version,
        previous_champion=str(before.version) if before else None,
        mae_previous_champion=float(rescored) if rescored is not None else None,
        alias=str(result.alias),
        champion_version=str(after.version) if after else None,
    )
