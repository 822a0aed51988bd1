"""Fixtures: a real sqlite MLflow store with real (tiny, seeded) champions, and the service built on it."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_champions import (
    HOST_METRICS,
    METRICS,
    fitted_catalogue,
    monitoring_predictor,
    placement_predictor,
    register_catalogue,
    register_champion,
    solo_telemetry,
)

TOKEN = "test-token"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def champion_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated store with version 1 of both models as champion (migrating sqlite costs seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    # A pre-migrated empty store: migrating a new sqlite DB costs seconds (MLflow upgrades an older one).
    # Made with: MlflowClient(tracking_uri="sqlite:///mlflow.db").search_experiments(); gzip -9 mlflow.db
    with gzip.open(FIXTURES / "mlflow-empty.db.gz") as packed, (root / "mlflow.db").open("wb") as db:
        shutil.copyfileobj(packed, db)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    register_champion(uri, root / "artifacts", "cotenant-monitoring", monitoring_predictor(1))
    register_champion(uri, root / "artifacts", "cotenant-placement", placement_predictor(1))
    register_catalogue(uri, root / "artifacts", fitted_catalogue())
    return root


@pytest.fixture
def store_uri(champion_store: Path, tmp_path: Path) -> str:
    """A private copy of the store (tests may move aliases); artifacts are shared, their run ids unique."""
    shutil.copy(champion_store / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def service_env(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "COTENANT_SERVE_TRACKING_URI": store_uri,
        "COTENANT_SERVE_TOKEN": TOKEN,
        "COTENANT_SERVE_WATCH_INTERVAL_S": "0",
        "COTENANT_SERVE_MAX_CANDIDATES": "1000",
        "COTENANT_SERVE_MAX_BODY_BYTES": str(4 * 1024 * 1024),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def service(service_env: dict[str, str]) -> Iterator[Any]:
    from cotenant.serving.service import InterferencePredictionService

    instance = InterferencePredictionService()
    yield instance
    instance.champions.stop()
    instance.metrics.stop()


def ingest_payload(
    host: str, rng: np.random.Generator, targets: int = 2, seconds: int = 10, intensity: float = 1.0
) -> dict[str, Any]:
    """What the collector pushes: per second, one sample per target plus the host row."""
    start = datetime.now(UTC) - timedelta(seconds=seconds)
    samples: list[dict[str, Any]] = []
    for second in range(seconds):
        timestamp = (start + timedelta(seconds=second)).isoformat()
        for t in range(targets):
            values = solo_telemetry(rng, 1, intensity * (1 + t))
            metrics = {m: v[0] for m, v in values.items()}
            samples.append({"timestamp": timestamp, "target": f"kubepods/pod{t}", "metrics": metrics})
        samples.append({"timestamp": timestamp, "target": "host", "metrics": {HOST_METRICS[0]: 0.5}})
    return {"host": host, "samples": samples}


def profile_payload(profile_id: str, seed: int = 0) -> dict[str, Any]:
    return {"profile_id": profile_id, "telemetry": solo_telemetry(np.random.default_rng(seed), 30)}


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


__all__ = ["METRICS", "TOKEN", "fixture_json", "ingest_payload", "profile_payload"]
