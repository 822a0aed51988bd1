"""The placement model a what-if study uses: the champion of an MLflow store, or one trained here, with how
far to trust it (its error on programs it never saw, next to a constant guess on the same runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from cotenant.datasets.table import RunTable
from cotenant.training.tracking import CHAMPION_ALIAS, REGISTERED, load_registered_predictor, version_by_alias


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
    if reason := registered_store_missing(tracking_uri):
        return reason
    from mlflow import MlflowClient

    name = REGISTERED[task]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = version_by_alias(client, name)
    if version is None:
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


def champions_or_trained(
    table: RunTable, recipes: dict[str, Any], tracking_uri: str, local_uri: str
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Per registered name, the champion of ``tracking_uri``; else the champion of ``local_uri`` (a store in
    the study's working directory, never the project's), trained there from its recipe (a ``TrainConfig``)
    when it has none. Returns the predictors and, per name, the model, version and origin (``champion`` or
    ``trained here``)."""
    from cotenant.training.run import train
    from mlflow import MlflowClient

    def champion(uri: str, name: str) -> str | None:
        found = version_by_alias(MlflowClient(tracking_uri=uri, registry_uri=uri), name)
        return None if found is None else str(found.version)

    predictors, sources = {}, {}
    for name, recipe in recipes.items():
        uri = tracking_uri or local_uri
        version = champion(uri, name)
        refused = ""
        if version is None and tracking_uri:
            print(f"{tracking_uri} has no {name}@{CHAMPION_ALIAS}: using one trained here")
        if version is None:
            uri = local_uri
            if (version := champion(uri, name)) is None:  # none from an earlier run here either
                result = train(recipe.model_copy(update={"tracking_uri": uri, "progress": False}), table)
                version = champion(uri, name)
                if version is None and result.registered is not None:
                    # A study still needs a model: the one trained here is used, and said to have failed the
                    # gate a champion must pass (its figures are in the report beside the references).
                    version = result.registered[1]
                    refused = f"; not a champion: {result.gate.reason if result.gate else 'refused'}"
        if version is None:
            raise RuntimeError(f"no {name}@{CHAMPION_ALIAS} in {uri} after training")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            predictors[name] = load_registered_predictor(client, name, version, uri)
        except Exception as error:  # e.g. a registry whose artifact store is gone: say which URI and model
            raise RuntimeError(f"{uri}: cannot load {name} v{version}: {error}") from error
        origin = ("trained here" if uri == local_uri else "champion") + refused
        sources[name] = {"model": predictors[name].metadata.model_name, "version": version, "origin": origin}
    return predictors, sources


def accelerator_catalogue(tracking_uri: str) -> tuple[Any, str]:
    """The registered accelerator catalogue (``cotenant accelerators fit``) of ``tracking_uri`` and where it
    came from; None with the reason when there is none (the workload files' own profiles are used then)."""
    reason = registered_store_missing(tracking_uri)
    if reason:
        return None, f"{reason}: the workload files' own profiles"
    from cotenant.training.accelerators import load_registered_catalogue
    from mlflow import MlflowClient

    name = REGISTERED["accelerators"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = version_by_alias(client, name)
    if found is None:
        return None, f"{tracking_uri} has no {name}@{CHAMPION_ALIAS}: the workload files' own profiles"
    version = str(found.version)
    catalogue = load_registered_catalogue(client, version, tracking_uri)
    return catalogue, f"models:/{name}@{CHAMPION_ALIAS} (version {version}) from {tracking_uri}"


def registered_store_missing(tracking_uri: str) -> str | None:
    """Why ``tracking_uri`` cannot hold a champion without being created, or None."""
    if not tracking_uri:
        return "no tracking_uri given"
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return f"no MLflow store at {tracking_uri}"
    return None
