"""Real tiny predictors (the models package's own classes) registered in a real sqlite MLflow store.

The weights are seeded, not trained: serving's contract is the Predictor API and the registry aliases, and two
seeds give two champions whose answers differ, which is what the swap tests need.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import torch
from cotenant.datasets.splits import FeatureStats
from cotenant.datasets.tensors import profile_summaries
from cotenant.models.lstm import LstmConfig, LstmRegressor
from cotenant.models.placement import PlacementConfig, PlacementModel
from cotenant.models.predictor import Predictor, PredictorMetadata

METRICS = [
    "cpu_usage_seconds_per_second",
    "memory_rss_bytes",
    "llc_misses_per_second",
    "io_read_bytes_per_second",
]
HOST_METRICS = ["host_cpu_busy_ratio"]
GROUPS = {
    "cpu_usage_seconds_per_second": "cpu",
    "memory_rss_bytes": "memory",
    "llc_misses_per_second": "cache_membw",
    "io_read_bytes_per_second": "io",
    "host_cpu_busy_ratio": "cpu",
}
SCALES = np.array([0.8, 2e9, 5e7, 1e8])


def solo_telemetry(
    rng: np.random.Generator, seconds: int = 30, intensity: float = 1.0
) -> dict[str, list[float]]:
    """A plausible per-second solo profile: metric -> values."""
    values = rng.gamma(4.0, 0.25, size=(seconds, len(METRICS))) * SCALES * intensity
    return {metric: values[:, i].tolist() for i, metric in enumerate(METRICS)}


def placement_predictor(seed: int) -> Predictor:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = PlacementConfig(encoder_width=16, embedding=8, head_width=16, dropout=0.0)
    profiles = pl.concat(
        pl.DataFrame({"profile_id": f"w{i}", **solo_telemetry(rng, 20, float(scale))})
        for i, scale in enumerate(rng.uniform(0.2, 3, 64))
    )
    names, summary = profile_summaries(profiles, METRICS)
    metadata = PredictorMetadata(
        model_name="placement",
        task="placement",
        family="neural",
        config=cfg.model_dump(),
        features=names,
        metrics=METRICS,
        host_metrics=[],
        metric_groups=GROUPS,
        feature_groups=[GROUPS[name.rpartition("__")[0]] for name in names],
        normaliser=FeatureStats.fit(summary, names).to_dict(),
        max_steps=120,
        n_inputs=len(names),
    )
    return Predictor(metadata, PlacementModel(len(names), cfg).eval())


def monitoring_predictor(seed: int) -> Predictor:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = [f"self__{m}" for m in METRICS] + [f"neighbour_mean__{m}" for m in METRICS]
    features += [f"host__{h}" for h in HOST_METRICS]
    cfg = LstmConfig(hidden=8, layers=1, dropout=0.0)
    rows = rng.gamma(4.0, 0.25, size=(256, len(features)))
    metadata = PredictorMetadata(
        model_name="lstm",
        task="monitoring",
        family="neural",
        config=cfg.model_dump(),
        features=features,
        metrics=METRICS,
        host_metrics=HOST_METRICS,
        metric_groups=GROUPS,
        feature_groups=[GROUPS[f.partition("__")[2]] for f in features],
        normaliser=FeatureStats.fit(pl.DataFrame(rows, schema=features), features).to_dict(),
        max_steps=60,
        n_inputs=len(features),
    )
    return Predictor(metadata, LstmRegressor(len(features), cfg).eval())


def register_champion(
    tracking_uri: str, artifact_root: Path, name: str, predictor: Predictor, alias: str = "champion"
) -> str:
    """Log the artifact directory in a run, register it as a new version of ``name``, move ``alias`` to it."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name("serving-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("serving-tests", artifact_location=str(artifact_root))
    )
    run = client.create_run(experiment_id)
    with tempfile.TemporaryDirectory() as tmp:
        predictor.save(Path(tmp) / "predictor")
        client.log_artifacts(run.info.run_id, str(Path(tmp) / "predictor"), artifact_path="predictor")
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/predictor", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)
