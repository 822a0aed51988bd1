"""The promotion gate: beaten references refuse a champion, on the runs the model was tested on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.training.gate import promotion_gate
from cotenant.training.references import CPU_DEMAND_METRIC, utilisation_predictions
from cotenant.training.tracking import REJECTED, apply_alias_rules, version_by_alias
from mlflow import MlflowClient


@pytest.fixture(scope="module")
def table() -> RunTable:
    return load_source("synthetic", n_apps=10, n_runs=160, min_length=8, max_length=10, profile_length=10)


def held_out(table: RunTable) -> tuple[object, list[str], np.ndarray]:
    split = leave_programs_out(table, k=5)[0]
    runs = table.runs.filter(pl.col("run_id").is_in(split.test_runs))
    return split, runs["run_id"].to_list(), runs["label"].to_numpy()


def test_a_model_worse_than_the_constant_fails_and_a_good_one_passes(table: RunTable) -> None:
    split, runs, labels = held_out(table)
    train_mean = table.runs.filter(pl.col("run_id").is_in(split.train_runs))["label"].mean()
    worse = promotion_gate(table, split, runs, np.full(len(labels), train_mean + 0.15), labels, 0.1)
    assert not worse.passed and worse.references_pp["constant"] < worse.model_mae_pp
    assert worse.reason.startswith("fails the promotion gate") and "constant" in worse.reason
    close = labels + np.random.default_rng(0).normal(0, 0.01, len(labels))
    good = promotion_gate(table, split, runs, close, labels, 0.1)
    assert good.passed and good.tags()["gate"] == "passed"
    # Only just better than the constant is not enough: the margin is part of the rule.
    constant = np.full(len(labels), train_mean)
    assert not promotion_gate(table, split, runs, constant, labels, 0.1).passed


def test_a_model_no_better_than_the_utilisation_heuristic_fails(table: RunTable) -> None:
    """Where the table has CPU-demand profiles and the host's cores, the heuristic is a reference too, for
    either task: a model answering what it answers is refused even when it beats the constant."""
    cpu = next(m for m in table.profile_metrics if m.startswith("cpu"))
    with_demand = RunTable(
        table.runs,
        table.telemetry,
        table.profiles.rename({cpu: CPU_DEMAND_METRIC}),
        table.metric_groups,
        {**table.meta, "machine": {"cores": 2}},
        table.extras,
    )
    split, runs, labels = held_out(with_demand)
    heuristic = dict(utilisation_predictions(with_demand, 2.0).iter_rows())
    answers = np.array([heuristic[run] for run in runs])
    gate = promotion_gate(with_demand, split, runs, answers, labels, 0.1)
    assert set(gate.references_pp) == {"constant", "utilisation"} and not gate.passed


@pytest.fixture
def client(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    db = tmp_path / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")


def test_a_version_that_fails_the_gate_gets_no_alias_even_with_no_champion(client: MlflowClient) -> None:
    name = "cotenant-placement"
    client.create_registered_model(name)
    version = str(client.create_model_version(name, source=str(Path.cwd())).version)
    failed = {"gate": "failed", "gate_reason": "fails the promotion gate: ..."}
    assert apply_alias_rules(client, name, version, "k", 30.0, None, failed) == REJECTED
    assert version_by_alias(client, name) is None
    assert client.get_model_version(name, version).tags["gate"] == "failed"
    second = str(client.create_model_version(name, source=str(Path.cwd())).version)
    assert apply_alias_rules(client, name, second, "k", 5.0, None, {"gate": "passed"}) == "champion"


@pytest.mark.slow
def test_training_registers_a_refused_model_without_making_it_champion(tmp_path: Path) -> None:
    """The real path: `cotenant train` with a gate no model can pass registers the version, says why, and
    leaves the registry without a champion; the same training under the default gate is champion."""
    from cotenant.training.config import TrainConfig
    from cotenant.training.run import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = {"search_iterations": 2}
    base = dict(model="placement-forest", source="synthetic", tracking_uri=uri, progress=False)
    source = {"n_apps": 10, "n_runs": 160, "min_length": 8, "max_length": 10, "profile_length": 10}
    refused = train(
        TrainConfig(**base, gate_margin=0.99, enforce_gate=True, model_options=options, source_options=source)
    )
    assert refused.alias == REJECTED and refused.gate is not None and not refused.gate.passed
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert version_by_alias(client, "cotenant-placement") is None
    accepted = train(TrainConfig(**base, enforce_gate=True, model_options=options, source_options=source))
    assert accepted.alias == "champion" and accepted.gate is not None and accepted.gate.passed


def test_a_gate_not_enforced_is_still_judged_and_tagged(tmp_path: Path) -> None:
    from cotenant.training.config import TrainConfig
    from cotenant.training.run import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = {"n_apps": 10, "n_runs": 160, "min_length": 8, "max_length": 10, "profile_length": 10}
    result = train(
        TrainConfig(
            model="placement-forest",
            source="synthetic",
            tracking_uri=uri,
            progress=False,
            gate_margin=0.99,
            enforce_gate=False,
            model_options={"search_iterations": 2},
            source_options=source,
        )
    )
    assert result.alias == "champion" and result.gate is not None and not result.gate.passed
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert (
        client.get_model_version("cotenant-placement", result.registered[1]).tags["gate"]
        == "failed-not-enforced"
    )


def test_training_judges_promotion_on_validation_programs_never_the_test_ones(tmp_path: Path) -> None:
    from cotenant.training.config import TrainConfig
    from cotenant.training.run import train

    table = load_source("synthetic", n_apps=10, n_runs=120, min_length=5, max_length=8, profile_length=6)
    cfg = TrainConfig(
        model="linear",
        source="synthetic",
        folds=5,
        progress=False,
        tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
    )
    result = train(cfg, table)
    outcome, gate = result.outcome, result.gate
    assert gate is not None and gate.judged_on == "validation" and "validation programs" in gate.reason
    assert outcome.validation_runs and not set(outcome.validation_runs) & set(outcome.test_runs)
    assert gate.model_mae_pp == pytest.approx(outcome.validation_mae)
    train_mean = table.runs.filter(pl.col("run_id").is_in(result.split.train_runs))["label"].mean()
    assert outcome.validation_labels is not None
    constant = float(np.mean(np.abs(outcome.validation_labels - train_mean)) * 100)
    assert gate.references_pp["constant"] == pytest.approx(constant)
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    assert result.registered is not None
    tags = client.get_model_version(*result.registered).tags
    assert float(tags["promotion_mae_pp"]) == pytest.approx(gate.model_mae_pp, abs=1e-5)
    assert float(tags["mae_pp"]) == pytest.approx(result.metrics["mae"], abs=1e-5)  # the card: test programs
