"""Real tiny predictors (the models package's own classes) registered in a real sqlite MLflow store.

The placement champion is trained (a few hundred steps on co-runs whose P falls as the newcomer's and its
neighbours' intensities grow), so the service's answers can be checked against the truth they learnt: a
constant model would rank a lightly and a heavily loaded host the same. The monitoring champion's weights are
seeded. Two seeds give two champions whose answers differ, which is what the swap tests need.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import torch
from cotenant.datasets.splits import FeatureStats
from cotenant.datasets.tensors import profile_summaries
from cotenant.models.accelerators.profiles import ProfileCatalogue
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
    stats = FeatureStats.fit(summary, names)
    model = PlacementModel(len(names), cfg)
    train_placement(model, stats, summary, names, rng)
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
        normaliser=stats.to_dict(),
        max_steps=120,
        n_inputs=len(names),
    )
    return Predictor(metadata, model.eval())


def placement_truth(newcomer: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """P of a newcomer of mean CPU use ``newcomer`` beside neighbours whose CPU use sums to ``neighbours``."""
    return 1.0 / (1.0 + 1.5 * newcomer * neighbours)


def train_placement(
    model: PlacementModel,
    stats: FeatureStats,
    summary: pl.DataFrame,
    names: list[str],
    rng: np.random.Generator,
) -> None:
    """Fit on sampled co-runs of the 64 profiled workloads (0-3 neighbours each), labelled by the truth."""
    from cotenant.models.base import quantile_loss

    inputs = torch.from_numpy(stats.transform(summary.sort("profile_id").select(names).to_numpy()))
    order = summary.sort("profile_id")["profile_id"].to_list()
    cpu = summary.sort("profile_id")[f"{METRICS[0]}__mean"].to_numpy() / SCALES[0]
    assert order == sorted(order) and len(cpu) == len(order)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        newcomer = rng.integers(0, len(order), 128)
        neighbours = rng.integers(0, len(order), (128, 3))
        mask = rng.random((128, 3)) < 0.6
        truth = placement_truth(cpu[newcomer], (cpu[neighbours] * mask).sum(1))
        quantiles = model(inputs[newcomer], inputs[neighbours], torch.from_numpy(mask))
        loss = quantile_loss(quantiles, torch.from_numpy(truth.astype(np.float32)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def monitoring_predictor(seed: int) -> Predictor:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = [f"self__{m}" for m in METRICS] + [f"neighbour_mean__{m}" for m in METRICS]
    features += [f"host__{h}" for h in HOST_METRICS]
    # the target's CPU rate relative to its solo profile, read from the profile a request names
    features += [f"vs_solo__{METRICS[0]}"]
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


def register_folder(
    tracking_uri: str,
    artifact_root: Path,
    name: str,
    folder: Path,
    artifact_path: str,
    alias: str = "champion",
) -> str:
    """Log ``folder`` in a run, register it as a new version of ``name``, move ``alias`` to it."""
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
    client.log_artifacts(run.info.run_id, str(folder), artifact_path=artifact_path)
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/{artifact_path}", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def register_champion(
    tracking_uri: str, artifact_root: Path, name: str, predictor: Predictor, alias: str = "champion"
) -> str:
    """Register ``predictor``'s artifact as a new version of ``name`` and move ``alias`` to it."""
    with tempfile.TemporaryDirectory() as tmp:
        predictor.save(Path(tmp) / "predictor")
        return register_folder(tracking_uri, artifact_root, name, Path(tmp) / "predictor", "predictor", alias)


def fitted_catalogue() -> ProfileCatalogue:
    """The catalogue ``cotenant accelerators fit`` makes from the shipped traces (no hand-written numbers)."""
    from cotenant.models.accelerators.fitting import catalogue_of, fit_traces, read_trace
    from cotenant.models.accelerators.profiles import ibis_data_dir, load_catalogue

    paths = [*sorted(ibis_data_dir().glob("queuing_tpu_*.csv")), ibis_data_dir() / "trt_ps_validation.csv"]
    return catalogue_of(fit_traces([read_trace(path) for path in paths]), load_catalogue(), "shipped traces")


def register_catalogue(tracking_uri: str, artifact_root: Path, catalogue: ProfileCatalogue) -> str:
    """Register ``catalogue`` as a new version of the accelerator model and make it champion."""
    from cotenant.models.accelerators.profiles import CATALOGUE_FILE
    from cotenant.training.tracking import REGISTERED

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / CATALOGUE_FILE).write_text(catalogue.to_yaml())
        return register_folder(
            tracking_uri, artifact_root, REGISTERED["accelerators"], Path(tmp), "catalogue"
        )
