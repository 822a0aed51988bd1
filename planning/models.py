"""The placement model a what-if study uses: the champion of an MLflow store, or one trained here, with how
far to trust it (its error on programs it never saw, next to a constant guess on the same runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from cotenant.datasets.table import RunTable
from cotenant.training.tracking import CHAMPION_ALIAS, REGISTERED, load_registered_predictor


@dataclass
class ModelReport:
    origin: str
    held_out_mae_pp: float | None  # mean absolute error of P in percentage points, held-out programs
    held_out_coverage: float | None  # share of held-out labels inside the predicted interval
    held_out_applications: list[str]
    fallback_reason: str | None = None  # why no champion was used
    constant_guess_mae_pp: float | None = None  # the same error for the training mean P, for scale


def registered_champion(tracking_uri: str, task: str = "placement") -> tuple[Any, ModelReport] | str:
    """The task's champion in ``tracking_uri`` with its run's held-out figures; else why not (a missing
    sqlite file is not created)."""
    if not tracking_uri:
        return "no tracking_uri given"
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return f"no MLflow store at {tracking_uri}"
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = REGISTERED[task]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return f"{tracking_uri} has no {name}@{CHAMPION_ALIAS}"
    try:
        predictor = load_registered_predictor(client, name, str(version.version), tracking_uri)
    except Exception as error:  # e.g. artifacts gone from the store: say so; the caller trains its own
        return f"{name} version {version.version} in {tracking_uri} could not be loaded: {error}"
    run = client.get_run(str(version.run_id))
    return predictor, ModelReport(
        origin=f"models:/{name}@{CHAMPION_ALIAS} (version {version.version}) from {tracking_uri}",
        held_out_mae_pp=run.data.metrics.get("test_mae"),
        held_out_coverage=run.data.metrics.get("test_coverage"),
        held_out_applications=[a for a in run.data.params.get("test_apps", "").split(",") if a],
    )


def trained_here(table: RunTable, source: str, epochs: int, reason: str) -> tuple[Any, ModelReport]:
    """A placement model trained on ``table`` (leave-programs-out split), written to no MLflow store."""
    from cotenant.training.config import TrainConfig
    from cotenant.training.run import train

    config = TrainConfig(model="placement", source=source, epochs=epochs, tracking_uri="none", progress=False)
    trained = train(config, table=table)
    return trained.outcome.predictor, ModelReport(
        origin=f"trained here ({epochs} epochs, leave-programs-out split)",
        held_out_mae_pp=trained.metrics["mae"],
        held_out_coverage=trained.metrics["coverage"],
        held_out_applications=trained.split.test_apps,
        fallback_reason=reason,
    )


def placement_model(table: RunTable, source: str, tracking_uri: str, epochs: int) -> tuple[Any, ModelReport]:
    """The champion of ``tracking_uri``, else one trained here; the report gets the constant guess's error
    on the same held-out programs."""
    champion = registered_champion(tracking_uri)
    predictor, report = (
        trained_here(table, source, epochs, champion) if isinstance(champion, str) else champion
    )
    held_out = pl.col("application").is_in(report.held_out_applications)
    labels = table.runs.filter(held_out)["label"]
    if len(labels):
        training_mean = table.runs.filter(~held_out)["label"].mean()
        report.constant_guess_mae_pp = float((labels - training_mean).abs().mean()) * 100
    return predictor, report
