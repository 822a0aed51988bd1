"""End to end through the CLI: train + register in real sqlite, evaluate on synthetic, DDP on 2 CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cotenant.cli import app


@pytest.mark.slow
def test_train_registers_a_champion_and_a_challenger(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    runner = CliRunner()
    # On this split's validation programs (what promotion compares) the linear model is far better than
    # gradient boosting, whose trees cannot reach them: trained second, boosting is the challenger.
    for model in ("linear", "hist-gradient-boosting"):
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(elsewhere)  # artifacts must land beside the store, not in the current directory
            result = runner.invoke(
                app, ["train", "--model", model, "--data", "synthetic", "--tracking-uri", uri]
            )
        assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []
    assert any((tmp_path / "store" / "mlartifacts").rglob("predictor.json"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("cotenant-monitoring", "champion")
    challenger = client.get_model_version_by_alias("cotenant-monitoring", "challenger")
    assert float(champion.tags["promotion_mae_pp"]) < float(challenger.tags["promotion_mae_pp"])
    assert float(challenger.tags["champion_mae_pp_same_evaluation"]) == pytest.approx(
        float(champion.tags["promotion_mae_pp"]), abs=1e-4
    )


def test_train_takes_a_variant_as_evaluate_writes_it(tmp_path: Path) -> None:
    """The variant a report chose trains as written there: its option reaches the model's logged config,
    and the same option without it is the plain model; a name that is no model is refused naming --model."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = ["train", "--data", "synthetic", "--tracking-uri", uri, "--no-register", "--model"]
    for model in ("decision-tree[search_iterations=2]", "decision-tree"):
        result = CliRunner().invoke(app, [*command, model])
        assert result.exit_code == 0, result.output
        assert f"{model} on synthetic: test MAE" in " ".join(result.output.split())
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "cotenant"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.params["model.search_iterations"] for run in runs) == ["12", "2"]
    refused = CliRunner().invoke(app, [*command, "decision-forest[search_iterations=2]"])
    assert refused.exit_code == 2
    assert "--model" in refused.output and "'decision-forest' is not a registered model" in refused.output
    # A model the data cannot feed (the synthetic source has no solo profiles) is refused naming --data.
    unsuitable = CliRunner().invoke(app, [*command, "solo-relative"])
    assert unsuitable.exit_code == 2, unsuitable.output
    assert "--data" in unsuitable.output and "vs_solo__" in " ".join(unsuitable.output.split())


@pytest.mark.slow
def test_evaluate_writes_both_tasks(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            "synthetic",
            "--models",
            "linear,hist-gradient-boosting,system-only,placement,placement-probes,placement-probes[head=factorised]",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
            "--answers",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "evaluation.json").read_text())
    # Every choice's answers, run by run (two folds leave no validation programs: test runs only; the
    # validation rows are tested in test_variants); the test rows give each fold's reported MAE.
    answers = pl.read_parquet(out / "answers.parquet")
    assert set(answers["model"]) == {m for m, entry in report["models"].items() if "variant_of" not in entry}
    assert set(answers["role"]) == {"test"}
    for name in ("linear", "placement-probes"):
        for fold in report["models"][name]["per_fold"]:
            rows = answers.filter(
                (pl.col("model") == name) & (pl.col("fold") == fold["fold"]) & (pl.col("role") == "test")
            )
            assert set(rows["application"]) == set(fold["test_apps"])
            mae = float((rows["p50"] - rows["label"]).abs().mean()) * 100  # type: ignore[operator]
            assert mae == pytest.approx(fold["mae"])
    variants = {
        "placement-probes:incumbents-without-probes",
        "placement-probes:newcomer-without-probes",
        "placement-probes:without-probes",
    }
    factorised = {v.replace("placement-probes", "placement-probes[head=factorised]") for v in variants}
    assert set(report["models"]) == {
        "linear",
        "hist-gradient-boosting",
        "system-only",
        "placement",
        "placement-probes",
        "placement-probes[head=factorised]",
        *variants,
        *factorised,  # each choice's own ablations, none overwritten by another choice's
    }
    assert all(report["models"][v]["variant_of"] == "placement-probes[head=factorised]" for v in factorised)
    assert report["models"]["placement"]["task"] == "placement"
    # The probes model is also scored as the service answers without probes, and never chosen as that.
    assert all(report["models"][v]["variant_of"] == "placement-probes" for v in variants)
    placement_choices = {"placement", "placement-probes", "placement-probes[head=factorised]"}
    assert report["targets"]["best_placement_model"] in placement_choices
    folds = report["models"]["linear"]["per_fold"]
    assert len(folds) == 2
    # Every program is held out exactly once over the folds.
    held_out = sorted(app for fold in folds for app in fold["test_apps"])
    assert held_out == sorted(report["applications"])
    assert abs(sum(report["models"]["linear"]["error_bands"].values()) - 1) < 1e-9
    assert (out / "error_bands.png").stat().st_size > 1000
    assert "## placement" in (out / "evaluation.md").read_text()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_tracks_and_registers_once(tmp_path: Path) -> None:
    """Two DDP processes train the same weights; only rank 0 logs to the (real sqlite) MLflow store and
    registers: one run, one registered version, one report line."""
    from mlflow import MlflowClient

    env = {**os.environ, "COTENANT_HOME": str(tmp_path)}
    uri = f"sqlite:///{tmp_path / 'ddp.db'}"
    command = [
        sys.executable,
        "-m",
        "cotenant.cli",
        "train",
        "--model",
        "system-only",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--tracking-uri",
        uri,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test MAE") == 1
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "cotenant"]
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert len(client.search_model_versions("name='cotenant-monitoring'")) == 1
