"""Profiles registered with probe results, served by a placement-probes champion (service class, no HTTP)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import ingest_payload, profile_payload
from cotenant.serving.schemas import IngestRequest, RegisterProfileRequest, ScorePlacementRequest

pytestmark = pytest.mark.slow


@pytest.fixture
def probes_champion(service: Any, store_uri: str, champion_store: Any) -> Any:
    """A placement-probes model fitted on the synthetic source (which has probes), made champion."""
    from cotenant.datasets import load_source
    from cotenant.datasets.splits import leave_programs_out
    from cotenant.training.config import TrainConfig
    from cotenant.training.fit import fit_model
    from serving_champions import register_champion

    table = load_source("synthetic", n_apps=12, n_runs=200, min_length=8, max_length=12, profile_length=12)
    predictor = fit_model(
        table, leave_programs_out(table, k=4)[0], TrainConfig(model="placement-probes", progress=False)
    ).predictor
    register_champion(store_uri, champion_store / "artifacts", "cotenant-placement", predictor)
    assert service.champions.refresh()
    assert service.champions.champions.placement.predictor.metadata.model_name == "placement-probes"
    return predictor


def register(service: Any, profile_id: str, probes: dict[str, float] | None) -> Any:
    body = {**profile_payload(profile_id), **({"probes": probes} if probes is not None else {})}
    payload = RegisterProfileRequest.model_validate(body)
    profile = service.state.register_profile(payload.profile_id, payload.telemetry, payload.probes)
    return profile


def probe_results(predictor: Any, p: float) -> dict[str, float]:
    """Every probe the model reads at one P: 1.0 harmless and insensitive, low P very sensitive."""
    return dict.fromkeys(predictor.probe_names(), p)


def test_measured_sensitivity_changes_the_answer_and_the_reply_says_so(
    service: Any, probes_champion: Any
) -> None:
    for seed, host in enumerate(["node-a", "node-b"]):
        payload = IngestRequest.model_validate(ingest_payload(host, np.random.default_rng(seed), targets=3))
        service.state.ingest(payload.host, payload.samples)
    register(service, "fragile", probe_results(probes_champion, 0.3))
    register(service, "sturdy", probe_results(probes_champion, 1.0))
    register(service, "unprobed", None)
    answers = {}
    for name in ("fragile", "sturdy", "unprobed"):
        request = ScorePlacementRequest.model_validate(
            {"workload": {"profile_id": name}, "hosts": ["node-a"]}
        )
        result = service.score_placement(request)
        answers[name] = result
    assert answers["fragile"].newcomer_inputs == answers["sturdy"].newcomer_inputs == "probes"
    assert answers["unprobed"].newcomer_inputs == "telemetry"
    fragile, sturdy = (answers[n].placements[0].newcomer.p for n in ("fragile", "sturdy"))
    assert fragile < sturdy - 0.05, (fragile, sturdy)


def test_the_registration_reply_names_the_probes_used_and_ignored(service: Any, probes_champion: Any) -> None:
    probes = {**probe_results(probes_champion, 0.8), "sens_gpu_1": 0.5}
    payload = RegisterProfileRequest.model_validate({**profile_payload("web"), "probes": probes})
    ctx = type("Ctx", (), {"request": type("R", (), {"headers": {"authorization": "Bearer test-token"}})()})()
    reply = service.register_profile(payload, ctx)
    assert reply.inputs == "probes" and reply.probes_ignored == ["sens_gpu_1"]
    assert reply.probes_used == sorted(probes_champion.probe_names())


def test_a_telemetry_only_champion_reports_probes_as_ignored(service: Any) -> None:
    profile = register(service, "web", {"sens_cpu_2": 0.5})
    assert profile.inputs(service.champions.champions.placement) == ([], ["sens_cpu_2"])
