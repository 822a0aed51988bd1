"""Compact ingest on the service class (no HTTP): per target the champion's summaries instead of rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from bentoml.exceptions import UnprocessableEntity
from conftest import ingest_payload, profile_payload
from cotenant.collectors.push import CompactWindows
from cotenant.collectors.summaries import FeatureSchema, pack, unpack
from cotenant.serving.hosts import CompactSummary
from cotenant.serving.schemas import HostDegradationRequest, IngestRequest, ScorePlacementRequest
from cotenant.serving.service import Conflict


def compact_payload(service: Any, raw: dict[str, Any], schema_id: str | None = None) -> dict[str, Any]:
    """The same seconds as ``raw``, as the agent's compact pusher would send them."""
    view = service.feature_schema()
    windows = CompactWindows(FeatureSchema(view.schema_id, view.metrics, view.window_seconds))
    host_rows, targets = [], set()
    for sample in raw["samples"]:
        if sample["target"] == "host":
            host_rows.append(sample)
        else:
            windows.add(sample["target"], sample["metrics"])
            targets.add(sample["target"])
    return {
        "host": raw["host"],
        "samples": host_rows,
        "schema_id": schema_id or view.schema_id,
        "summaries": windows.summaries(targets, raw["samples"][-1]["timestamp"]),
    }


def ingest(service: Any, body: dict[str, Any]) -> Any:
    payload = IngestRequest.model_validate(body)
    return service.state.ingest(payload.host, payload.samples, service._compact_summaries(payload))


def placements(service: Any, hosts: list[str]) -> dict[str, Any]:
    request = ScorePlacementRequest.model_validate({"workload": {"profile_id": "web"}, "hosts": hosts})
    return {p.host: p for p in service.score_placement(request).placements}


def test_the_schema_names_what_a_compact_push_carries(service: Any) -> None:
    view = service.feature_schema()
    placement = service.champions.champions.placement
    assert view.metrics == placement.predictor.metadata.metrics and view.statistics == ["mean", "std", "p90"]
    assert view.values_per_target == 3 * len(view.metrics) and view.window_seconds == 120
    assert view.model_version == placement.version


def test_a_compact_push_gets_the_same_answers_as_the_same_seconds_raw(service: Any) -> None:
    service.state.register_profile("web", profile_payload("web")["telemetry"])
    raw = ingest_payload("node-raw", np.random.default_rng(3), targets=3, seconds=60, intensity=2.0)
    ingest(service, raw)
    compact = compact_payload(service, {**raw, "host": "node-compact"})
    outcome = ingest(service, compact)
    assert outcome.summaries == 3 and outcome.targets == [
        "host",
        "kubepods/pod0",
        "kubepods/pod1",
        "kubepods/pod2",
    ]
    assert all(len(s["values"]) + len(s["target"]) + 60 < 2048 for s in compact["summaries"])
    answers = placements(service, ["node-raw", "node-compact"])
    raw_answer, compact_answer = answers["node-raw"], answers["node-compact"]
    assert raw_answer.status == compact_answer.status == "scored"
    # Equal up to the packing's rounding (float16 on a log scale)
    assert compact_answer.newcomer.p == pytest.approx(raw_answer.newcomer.p, abs=2e-3)
    assert compact_answer.worst_incumbent.p == pytest.approx(raw_answer.worst_incumbent.p, abs=2e-3)


def test_a_summary_in_another_schema_is_a_409_naming_the_current_one(service: Any) -> None:
    raw = ingest_payload("node-a", np.random.default_rng(1))
    body = compact_payload(service, raw, schema_id="0123456789abcdef")
    with pytest.raises(
        Conflict, match=r"schema_id: '0123456789abcdef' is not the feature schema .*/feature_schema"
    ):
        ingest(service, body)
    assert "node-a" not in service.hosts.hosts  # nothing of the refused push was kept


def test_badly_packed_values_are_a_422_naming_the_summary(service: Any) -> None:
    body = compact_payload(service, ingest_payload("node-a", np.random.default_rng(1)))
    body["summaries"][1]["values"] = pack(np.ones(5))
    with pytest.raises(UnprocessableEntity, match=r"summaries\[1\]\.values: 5 values packed"):
        ingest(service, body)


def test_a_host_with_an_old_schema_summary_waits_instead_of_looking_empty(service: Any) -> None:
    """After a champion swap a compact incumbent cannot be encoded until its collector pushes again: the host
    is answered neutrally with that reason, never scored as if the incumbent were not there."""
    service.state.register_profile("web", profile_payload("web")["telemetry"])
    body = compact_payload(service, ingest_payload("node-a", np.random.default_rng(1)))
    old = [
        CompactSummary(s["target"], datetime.now(UTC), s["seconds"], "an-older-schema", unpack(s["values"]))
        for s in body["summaries"]
    ]
    service.state.ingest("node-a", [], old)
    answer = placements(service, ["node-a"])["node-a"]
    assert answer.status == "stale_host" and "an-older-schema" in answer.reason and answer.score == 0.5
    ingest(service, body)  # the collector's next push, in the current schema
    assert placements(service, ["node-a"])["node-a"].status == "scored"


def test_monitoring_a_compact_host_is_a_409_asking_for_raw_telemetry(service: Any) -> None:
    ingest(service, compact_payload(service, ingest_payload("node-a", np.random.default_rng(1))))
    request = HostDegradationRequest.model_validate({"host": "node-a", "target": "kubepods/pod0"})
    with pytest.raises(Conflict, match="per-second telemetry"):
        service.predict_host_degradation(request)
