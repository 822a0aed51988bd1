"""The A/B test's plan checks, the four placement policies and the report's arithmetic (nothing runs)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from cotenant.datasets.lab.abtest import (
    AbTestPlan,
    Placement,
    TenantSpec,
    highest_scoring,
    outcome,
    place_stream,
)
from pydantic import ValidationError


def tenant(name: str, workload: str, cpus: float) -> dict[str, object]:
    return {"name": name, "workload": workload, "level": 1, "requests": {"cpus": cpus, "memory_mib": 256}}


def plan(**overrides: object) -> AbTestPlan:
    tenants = [
        tenant("a", "sysbench_cpu_rate", 0.5),
        tenant("b", "xz_compress", 0.25),
        tenant("c", "stressng_stream", 0.5),
        tenant("d", "xz_compress", 0.75),
    ]
    body: dict[str, object] = {"name": "t", "hosts": {"count": 2, "cpus": 1, "memory_mib": 1024}}
    return AbTestPlan.model_validate({**body, "tenants": tenants, **overrides})


def groups(placement: Placement) -> set[tuple[str, ...]]:
    """Who shares a host with whom, whichever host the first tie sent them to."""
    return {tuple(names) for names in placement.hosts.values()}


def test_bin_packing_fills_the_fullest_node_and_spreading_the_emptiest() -> None:
    packed = place_stream(plan(), "most_allocated")
    assert groups(packed) == {("a", "b"), ("c",)} and packed.refused == ["d"]
    spread = place_stream(plan(), "least_allocated")
    assert groups(spread) == {("a",), ("b", "c")} and spread.refused == ["d"]


def test_ties_go_to_any_of_the_best_nodes_at_random_and_seeded() -> None:
    """kube-scheduler's selectHost: among equally scored nodes, a uniform choice; never always the first."""
    rng = random.Random(3)
    picks = Counter(
        highest_scoring(["n1", "n2", "n3"], {"n1": 9.0, "n2": 9.0, "n3": 4.0}, rng) for _ in range(400)
    )
    assert set(picks) == {"n1", "n2"} and min(picks.values()) > 150
    assert highest_scoring(["n1", "n2"], {"n1": 0.5, "n2": 0.7}, rng) == "n2"
    first_arrivals = {
        place_stream(plan(seed=seed), "least_allocated").host_of("a") for seed in range(12)
    }  # both hosts empty: a tie
    assert first_arrivals == {"host-1", "host-2"}

    def level(tenant: TenantSpec, hosts: list[str]) -> dict[str, float]:
        return dict.fromkeys(hosts, 8.0)  # every host scored alike: each decision is a tie

    assert (
        place_stream(plan(seed=5), "cotenant", level).hosts
        == place_stream(plan(seed=5), "cotenant", level).hosts
    )


def test_capacity_is_respected_by_every_policy_and_random_is_seeded() -> None:
    for policy in ("most_allocated", "least_allocated", "random"):
        placement = place_stream(plan(), policy)  # type: ignore[arg-type]
        for names in placement.hosts.values():
            cpus = sum({"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.75}[n] for n in names)
            assert cpus <= 1.0
    assert place_stream(plan(), "random").hosts == place_stream(plan(), "random").hosts


def test_cotenant_takes_the_extender_best_score_and_refuses_when_it_filters_every_node() -> None:
    asked: list[tuple[str, list[str]]] = []

    def extender(tenant: TenantSpec, hosts: list[str]) -> dict[str, float]:
        asked.append((tenant.name, hosts))
        if tenant.name == "c":
            return {}  # every node would push someone under the SLO
        return {host: (1.0 if host == "host-2" else 0.5) for host in hosts}

    placement = place_stream(plan(), "cotenant", extender)
    assert placement.hosts["host-2"][:2] == ["a", "b"] and "c" in placement.refused
    assert asked[0] == ("a", ["host-1", "host-2"])  # only the nodes the requests fit are asked about
    # c fits only host-1 by requests, and the extender filters that out too: refused
    assert placement.decisions[2] == {"tenant": "c", "fitting": ["host-1"], "chosen": None, "scores": {}}


def test_bad_plans_are_refused_before_anything_starts() -> None:
    with pytest.raises(
        ValidationError, match=r"tenants\[0\] \(a\): requests 2 CPUs / 256 MiB fit on no host"
    ):
        plan(
            tenants=[
                {
                    "name": "a",
                    "workload": "xz_compress",
                    "level": 1,
                    "requests": {"cpus": 2, "memory_mib": 256},
                }
            ]
        )
    with pytest.raises(ValidationError, match="unknown workload 'nope'"):
        plan(
            tenants=[
                {"name": "a", "workload": "nope", "level": 1, "requests": {"cpus": 1, "memory_mib": 256}}
            ]
        )
    with pytest.raises(ValueError, match="2 hosts x 1 CPUs need 2 CPUs; this machine has 1"):
        plan().check_machine(cpu_count=1)
    with pytest.raises(
        ValidationError, match="extender_rule: unknown rule 'fewest'; known: medians, expected_misses"
    ):
        plan(extender_rule="fewest")
    assert plan(extender_rule="expected_misses").extender_rule == "expected_misses"


def test_refused_tenants_count_as_slo_misses_and_predictions_are_scored() -> None:
    placement = place_stream(plan(), "most_allocated")  # d refused
    measured = {"a": [0.9, 0.7, 0.8], "b": [0.6, 0.6], "c": [1.0]}
    result = outcome(placement, measured, 0.8, predicted={"a": 0.7, "b": 0.7, "c": 0.9})
    assert result.placed == 3 and result.refused == 1
    assert result.slo_misses == 2  # b (0.6) and the refused d
    assert result.worst_p == pytest.approx(0.6) and result.mean_p == pytest.approx((0.8 + 0.6 + 1.0) / 3)
    assert result.prediction_mae_pp == pytest.approx((10 + 10 + 10) / 3)


def test_the_command_refuses_a_plan_the_machine_cannot_hold_before_anything_starts(tmp_path: Path) -> None:
    import yaml
    from cotenant.datasets.lab.cli import app
    from typer.testing import CliRunner

    body = plan().model_dump()
    body["hosts"]["count"] = 64
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(
        app, ["abtest", str(path), "--out", str(tmp_path / "out"), "--probes-from", ""]
    )
    assert result.exit_code == 2, result.output
    assert "64 hosts x 1 CPUs need 64 CPUs; this machine has" in result.output
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_the_shipped_plan_is_valid_and_sized_for_this_machine_kind() -> None:
    """Twelve tenants on two one-CPU hosts, within the 30 minutes the experiment may take on 2 cores."""
    import yaml
    from cotenant.datasets import lab

    shipped = Path(lab.__file__).parent / "plans" / "abtest.yaml"
    parsed = AbTestPlan.model_validate(yaml.safe_load(shipped.read_text()))
    parsed.check_machine(cpu_count=2)
    assert len(parsed.tenants) >= 12 and set(parsed.policies) == {
        "cotenant",
        "most_allocated",
        "least_allocated",
        "random",
    }
    run_s = parsed.duration_s + parsed.warmup_s + 3  # set-up and parsing
    solos = len(parsed.tenants) * parsed.solo_repeats * run_s
    live = len(parsed.tenants) * parsed.settle_s + 120  # the service's start
    placements = len(parsed.policies) * parsed.repeats * run_s
    assert solos + live + placements < 30 * 60


def test_the_report_names_the_champion_and_the_tenants_it_never_trained_on(tmp_path: Path) -> None:
    """Read from a real MLflow store: the champion's run records its held-out programs and its data."""
    from cotenant.datasets.lab.abtest_run import champion_card
    from cotenant.training.tracking import REGISTERED
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    for key, value in {"model": "placement-probes", "source": "bundled", "test_apps": "xz_compress"}.items():
        client.log_param(run.info.run_id, key, value)
    name = REGISTERED["placement"]
    assert champion_card(plan(), uri) is None  # no champion yet
    client.create_registered_model(name)
    version = client.create_model_version(name, str(tmp_path / "artifacts"), run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    card = champion_card(plan(), uri)
    assert (
        card is not None and card["model"] == "placement-probes" and card["version"] == str(version.version)
    )
    assert card["held_out_programs"] == ["xz_compress"]
    # xz is held out; sysbench_cpu_rate is in no bundled run; stressng_stream was trained on
    assert card["unseen_tenants"] == ["a", "b", "d"]


def test_the_report_lists_each_placed_tenants_prediction_beside_its_measurement(tmp_path: Path) -> None:
    from cotenant.datasets.lab.abtest_run import write_report

    report = {
        "plan": plan().model_dump(),
        "champion": {
            "model": "placement-probes",
            "version": "3",
            "source": "bundled",
            "held_out_programs": ["xz_compress"],
            "unseen_tenants": ["a", "b"],
        },
        "placements": {"cotenant": {"hosts": {"host-1": ["a", "b"], "host-2": []}, "refused": ["c", "d"]}},
        "measured": {"cotenant": {"a": [0.9, 0.8, 0.85], "b": [0.5, 0.6, 0.7]}},
        "predicted": {"a": (0.95, 0.9, 1.0), "b": (0.7, 0.55, 0.8)},
        "outcomes": {
            "cotenant": {
                "placed": 2,
                "refused": 2,
                "mean_p": 0.725,
                "worst_p": 0.6,
                "slo_misses": 3,
                "prediction_mae_pp": 10.0,
            }
        },
    }
    # The champion's answers on another policy's final placement too: per placement and pooled.
    report["placements"]["least_allocated"] = {"hosts": {"host-1": ["a"], "host-2": ["c"]}, "refused": []}
    report["measured"]["least_allocated"] = {"a": [0.6, 0.6, 0.6], "c": [0.9, 1.0, 0.95]}
    report["predicted_by_policy"] = {
        "cotenant": report["predicted"],
        "least_allocated": {"a": (0.9, 0.8, 1.0), "c": (0.8, 0.6, 0.95)},
    }
    text = write_report(report, tmp_path).read_text()
    assert "| cotenant | 2 | 10.0 | +10.0 | 0.50 |" in text  # a: 0.95 vs 0.85 inside; b: 0.7 vs 0.6 outside
    assert "| least_allocated | 2 | 22.5 | +7.5 | 0.50 |" in text  # a: +30, outside; c: -15, inside
    assert "| all | 4 | 16.2 | +8.8 | 0.50 |" in text
    assert "| a | 0.950 | 0.900-1.000 | 0.850 | +10.0 |" in text
    assert "| b | 0.700 | 0.550-0.800 | 0.600 | +10.0 |" in text
    assert "`placement-probes` v3" in text and "never trained on: a, b" in text
    assert (tmp_path / "predicted_vs_measured.png").stat().st_size > 0


def test_prediction_errors_read_medians_of_the_executions_and_the_interval() -> None:
    from cotenant.datasets.lab.abtest import prediction_errors

    predicted = {"a": (0.8, 0.7, 0.9), "b": (0.5, 0.4, 0.6), "gone": (0.9, 0.8, 1.0)}
    measured = {"a": [0.9, 0.85, 0.1], "b": [0.7, 0.7], "never": [0.5]}  # a: median 0.85
    found = prediction_errors(predicted, measured)
    assert found is not None and found.tenants == 2
    assert found.mae_pp == pytest.approx((5 + 20) / 2) and found.bias_pp == pytest.approx((-5 - 20) / 2)
    assert found.coverage == pytest.approx(0.5)  # a inside, b above its interval
    assert prediction_errors(predicted, {"never": [0.5]}) is None
