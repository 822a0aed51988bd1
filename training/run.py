"""``train(cfg)``: load a source, split it, fit one model, track it in MLflow and register the predictor."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.splits import Split, by_time, leave_applications_out, leave_programs_out
from cotenant.datasets.table import RunTable
from cotenant.models.base import MEDIAN
from cotenant.training.config import TrainConfig
from cotenant.training.fit import FitOutcome, fit_model
from cotenant.training.gate import GateResult, promotion_gate
from cotenant.training.metrics import error_bands, errors_pp


@dataclass
class TrainResult:
    outcome: FitOutcome
    split: Split
    digest: str
    metrics: dict[str, float]
    run_id: str | None = None
    registered: tuple[str, str] | None = None  # (name, version)
    alias: str | None = None
    gate: GateResult | None = None


def is_global_zero() -> bool:
    """Whether this process is rank 0 of a (possibly distributed) training; True without one."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0)) == 0


def data_digest(table: RunTable) -> str:
    """Content digest of a RunTable: labels, run ids, the profiles each run is linked to, telemetry, profile
    and probe contents (row hashes): whatever a model reads, so that two tables a model would see
    differently never share a digest."""
    hasher = hashlib.sha256()
    runs = table.runs.select(
        "run_id", "application", "label", "target_profile", pl.col("neighbour_profiles").list.join("|")
    )
    hasher.update(runs.sort("run_id").write_csv().encode())
    probes = [table.extras[name] for name in ("sensitivity", "pressure") if name in table.extras]
    for frame in (table.telemetry, table.profiles, *probes):
        hasher.update(",".join(frame.columns).encode())
        hasher.update(
            str(int(frame.hash_rows(seed=0).cast(pl.UInt64).sum() or 0) if frame.height else 0).encode()
        )
    return hasher.hexdigest()


def make_split(table: RunTable, cfg: TrainConfig) -> Split:
    if cfg.split == "programs":
        splits = leave_programs_out(table, cfg.folds)
        if cfg.fold >= len(splits):
            raise ValueError(f"fold {cfg.fold} does not exist: {len(splits)} folds (0-{len(splits) - 1})")
        return splits[cfg.fold]
    if cfg.split == "apps":
        return leave_applications_out(table, cfg.seed)
    if cfg.split == "time":
        return by_time(table)
    return Split("all", table.runs["run_id"].to_list(), [])


def load_table(cfg: TrainConfig) -> RunTable:
    from cotenant.datasets import load_source

    spec = f"{cfg.source}:{cfg.source_path}" if cfg.source_path else cfg.source
    return load_source(spec, **cfg.source_options)


def score_on_runs(predictor: Any, table: RunTable, run_ids: list[str]) -> float:
    """MAE (pp) of any stored predictor on raw test runs: how a champion is re-scored on a new evaluation."""
    runs = table.runs.filter(pl.col("run_id").is_in(run_ids)).sort("run_id")
    if predictor.metadata.task == "monitoring":
        telemetry = table.telemetry.filter(pl.col("run_id").is_in(run_ids)).sort("run_id", "second")
        features = predictor.metadata.features
        present = [f for f in features if f in telemetry.columns]
        matrices = []
        for (_,), frame in telemetry.group_by("run_id", maintain_order=True):
            matrix = np.full((frame.height, len(features)), np.nan)
            values = frame.select(present).to_numpy()
            matrix[:, [features.index(f) for f in present]] = values
            matrices.append(matrix)
        predicted, _ = predictor.predict_steps(matrices)
        return errors_pp(predicted, runs["label"].to_numpy())["mae"]
    from cotenant.datasets.tensors import probe_results
    from cotenant.models.batching import pad_neighbours

    runs = runs.filter(pl.col("target_profile").is_not_null())
    summaries: dict[str, np.ndarray] = {}
    for (profile_id,), frame in table.profiles.sort("profile_id", "second").group_by("profile_id"):
        series = {m: frame[m].to_numpy() for m in table.profile_metrics}
        probes = probe_results(table, str(profile_id))  # read only by models with probe inputs
        summaries[str(profile_id)] = predictor.profile_summary(series, probes)
    newcomer = np.stack([summaries[p] for p in runs["target_profile"]])
    neighbours, mask = pad_neighbours(
        [
            np.stack([summaries[p] for p in ps]) if len(ps) else np.zeros((0, newcomer.shape[1]))
            for ps in runs["neighbour_profiles"].to_list()
        ],
        newcomer.shape[1],
    )
    cores = table.run_cores(runs["run_id"].to_list())
    predicted = predictor.predict_placement(newcomer, neighbours, mask, cores)
    return errors_pp(predicted, runs["label"].to_numpy())["mae"]


def train(cfg: TrainConfig, table: RunTable | None = None) -> TrainResult:
    table = table if table is not None else load_table(cfg)
    digest = data_digest(table)
    split = make_split(table, cfg)
    outcome = fit_model(table, split, cfg, digest)
    metrics = {**errors_pp(outcome.predicted, outcome.labels), "train_seconds": outcome.train_seconds}
    metrics["runs_per_second"] = outcome.n_train * max(1, cfg.epochs) / max(outcome.train_seconds, 1e-9)
    result = TrainResult(outcome, split, digest, metrics)
    if cfg.tracking_uri == "none" or not is_global_zero():
        # Under DDP every process runs this function with identical weights: one run, one registered version.
        return result
    _track(cfg, table, result)
    return result


def _track(cfg: TrainConfig, table: RunTable, result: TrainResult) -> None:
    import mlflow
    from cotenant.training.tracking import (
        apply_alias_rules,
        load_registered_predictor,
        log_dataset,
        log_predictor,
        use_experiment,
    )
    from mlflow import MlflowClient

    from cotenant.paths import default_tracking_uri

    uri = cfg.tracking_uri or default_tracking_uri()
    use_experiment(cfg.experiment, uri)
    task = result.outcome.predictor.metadata.task
    with mlflow.start_run(run_name=f"{cfg.model}-{cfg.source}-seed{cfg.seed}") as run:
        result.run_id = run.info.run_id
        mlflow.log_params(
            {k: v for k, v in cfg.model_dump(exclude={"optim", "model_options", "source_options"}).items()}
        )
        mlflow.log_params({f"optim.{k}": v for k, v in cfg.optim.model_dump().items()})
        mlflow.log_params({f"model.{k}": v for k, v in result.outcome.predictor.metadata.config.items()})
        mlflow.log_params(
            {
                "data_digest": result.digest,
                "split_name": result.split.name,
                "task": task,
                "test_apps": ",".join(result.split.test_apps)[:500],
            }
        )
        log_dataset(table, result.digest, cfg.source)
        numeric = {k: v for k, v in result.metrics.items() if np.isfinite(v)}
        mlflow.log_metrics(
            {f"test_{k}" if k in ("mae", "mse", "rmse", "coverage") else k: v for k, v in numeric.items()}
        )
        mlflow.log_dict(error_bands(result.outcome.predicted, result.outcome.labels), "error_bands.json")
        if not cfg.register_model or not result.outcome.labels.size:
            return
        name, version = log_predictor(result.outcome.predictor, task)
        result.registered = (name, version)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        outcome = result.outcome
        # Promotion is a choice: it looks at the split's validation programs (as the service would answer
        # there), never at its test programs, unless the split has no validation programs at all.
        if outcome.validation_runs and outcome.validation_predicted is not None:
            judged_on, judged_runs = "validation", outcome.validation_runs
            answers, labels = outcome.validation_predicted, outcome.validation_labels
        else:
            judged_on, judged_runs = "test", outcome.test_runs
            answers, labels = outcome.extra.get("served", outcome.predicted), outcome.labels

        def score_champion(champion: Any) -> float:
            predictor = load_registered_predictor(client, name, str(champion.version), uri)
            return score_on_runs(predictor, table, judged_runs)

        key = f"{result.digest[:16]}:{result.split.name}"
        result.gate = promotion_gate(
            table, result.split, judged_runs, answers[:, MEDIAN], labels, cfg.gate_margin, judged_on
        )
        mlflow.log_metrics({f"gate_{k}_mae": v for k, v in result.gate.references_pp.items()})
        mlflow.log_metric("gate_model_mae", result.gate.model_mae_pp)
        mlflow.set_tag("gate_judged_on", judged_on)
        result.alias = apply_alias_rules(
            client,
            name,
            version,
            key,
            result.gate.model_mae_pp,
            score_champion,
            result.gate.tags(enforced=cfg.enforce_gate),
            held_out_mae=result.metrics["mae"],
        )
        mlflow.set_tag("registered", f"{name}/{version}@{result.alias}")
