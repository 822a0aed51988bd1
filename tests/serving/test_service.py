"""The service class called directly (no HTTP) on real champions from a real MLflow store."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bentoml.exceptions import NotFound, ServiceUnavailable
from conftest import fixture_json, ingest_payload, profile_payload
from cotenant.datasets.table import VS_SOLO
from cotenant.serving import scoring
from cotenant.serving.extender import ExtenderArgs, HostPriority, HostPriorityList
from cotenant.serving.schemas import (
    DegradationRequest,
    HostDegradationRequest,
    IngestRequest,
    ScorePlacementRequest,
)
from serving_champions import placement_truth, solo_telemetry


def feed(service: Any, host: str, seed: int, intensity: float = 1.0) -> None:
    payload = IngestRequest.model_validate(
        ingest_payload(host, np.random.default_rng(seed), intensity=intensity)
    )
    service.hosts.ingest(payload.host, payload.samples, service.champions.champions.placement)


def prioritized(service: Any, args: ExtenderArgs) -> list[HostPriority]:
    """The prioritize verb's reply (encoded JSON, as kube-scheduler reads it), parsed back."""
    response = service.prioritize_nodes(args)
    assert response.media_type == "application/json"
    return HostPriorityList.model_validate_json(response.body).root


def register(service: Any, profile_id: str) -> None:
    payload = profile_payload(profile_id)
    service.profiles.register(profile_id, payload["telemetry"], service.champions.champions.placement)


def test_champions_load_at_start(service: Any) -> None:
    assert service.__is_ready__()
    assert service.champions.champions.versions() == {
        "monitoring": "1",
        "placement": "1",
        "accelerators": "1",
    }


def test_placement_scores_every_candidate_sorted_with_reasons(service: Any) -> None:
    feed(service, "node-a", 1, intensity=0.3)
    feed(service, "node-b", 2, intensity=3.0)
    register(service, "web")
    request = ScorePlacementRequest.model_validate(
        {"workload": {"profile_id": "web"}, "hosts": ["node-a", "node-b", "node-x"], "min_performance": 0.0}
    )
    result = service.score_placement(request)
    by_host = {p.host: p for p in result.placements}
    assert set(by_host) == {"node-a", "node-b", "node-x"} and result.model_version == "1"
    assert by_host["node-x"].status == "unknown_host" and by_host["node-x"].reason
    for host in ("node-a", "node-b"):
        placement = by_host[host]
        assert placement.status == "scored" and placement.feasible is True
        assert placement.newcomer is not None and 0 < placement.newcomer.p <= 1
        assert placement.newcomer.lower <= placement.newcomer.p <= placement.newcomer.upper
        assert placement.worst_incumbent_target in {"kubepods/pod0", "kubepods/pod1"}
        assert placement.driving_resource in {"cpu", "memory", "cache_membw", "io"}
        assert placement.score == pytest.approx(min(placement.newcomer.p, placement.worst_incumbent.p))
    scores = [p.score for p in result.placements if p.status == "scored"]
    assert scores == sorted(scores, reverse=True)
    # The trained champion's answers follow the truth it learnt (serving_champions.placement_truth): beside
    # light pods (CPU 0.3 + 0.6) the newcomer keeps about 0.43, beside heavy ones (3 + 6) about 0.07. A
    # constant model would answer both hosts alike.
    assert by_host["node-a"].newcomer.p == pytest.approx(placement_truth(1.0, 0.9), abs=0.15)
    assert by_host["node-b"].newcomer.p == pytest.approx(placement_truth(1.0, 9.0), abs=0.15)
    assert by_host["node-a"].score > by_host["node-b"].score + 0.2
    # the same workload inline gives the same answer as by id
    inline = ScorePlacementRequest.model_validate(
        {"workload": {"telemetry": profile_payload("web")["telemetry"]}, "hosts": ["node-a"]}
    )
    assert service.score_placement(inline).placements[0].score == pytest.approx(by_host["node-a"].score)


def test_minimum_performance_makes_hosts_infeasible(service: Any) -> None:
    feed(service, "node-a", 1)
    register(service, "web")
    request = ScorePlacementRequest.model_validate(
        {"workload": {"profile_id": "web"}, "hosts": ["node-a"], "min_performance": 1.0}
    )
    (placement,) = service.score_placement(request).placements
    assert placement.feasible is False


def test_degradation_inline_and_for_a_known_target(service: Any) -> None:
    rng = np.random.default_rng(3)
    inline = service.predict_degradation(
        DegradationRequest.model_validate(
            {"target": solo_telemetry(rng, 20), "neighbours": [solo_telemetry(rng, 20, 2.0)]}
        )
    )
    assert 0 < inline.estimate.p <= 1 and inline.neighbours == 1
    assert sum(inline.estimate.drivers.values()) == pytest.approx(1.0, abs=1e-3)
    feed(service, "node-a", 1)
    known = service.predict_host_degradation(HostDegradationRequest(host="node-a", target="kubepods/pod1"))
    assert known.neighbours == 1 and 0 < known.estimate.p <= 1
    with pytest.raises(NotFound):
        service.predict_host_degradation(HostDegradationRequest(host="node-a", target="kubepods/nope"))


def test_degradation_reads_the_targets_registered_profile_and_names_an_unknown_one(service: Any) -> None:
    rng = np.random.default_rng(4)
    register(service, "web")
    body = {"target": solo_telemetry(rng, 20), "neighbours": [solo_telemetry(rng, 20, 2.0)]}
    named = service.predict_degradation(DegradationRequest.model_validate({**body, "profile_id": "web"}))
    assert 0 < named.estimate.p <= 1 and named.neighbours == 1
    plain = service.predict_degradation(DegradationRequest.model_validate(body))
    monitoring = service.champions.champions.monitoring.predictor
    solo_inputs = [f for f in monitoring.metadata.features if f.startswith(VS_SOLO)]
    assert solo_inputs and set(solo_inputs) <= set(plain.missing)  # without the profile: said missing
    assert not set(solo_inputs) & set(named.missing)
    with pytest.raises(NotFound, match="profile_id"):
        service.predict_degradation(DegradationRequest.model_validate({**body, "profile_id": "nope"}))
    feed(service, "node-a", 1)
    with pytest.raises(NotFound, match="profile_id"):
        service.predict_host_degradation(
            HostDegradationRequest(host="node-a", target="kubepods/pod1", profile_id="nope")
        )
    known = service.predict_host_degradation(
        HostDegradationRequest(host="node-a", target="kubepods/pod1", profile_id="web")
    )
    assert 0 < known.estimate.p <= 1


def test_degradation_names_the_neighbour_profiles_it_cannot_read(service: Any) -> None:
    """The neighbours' registered profiles (for a champion reading their probes), one per neighbour workload
    whatever the number of series sent: an unknown profile is a 404 naming the field, and known ones give
    the same answer as none for a champion that reads no probe."""
    rng = np.random.default_rng(6)
    register(service, "web")
    body = {"target": solo_telemetry(rng, 20), "neighbours": [solo_telemetry(rng, 20, 2.0)]}
    with pytest.raises(NotFound, match="neighbour_profile_ids"):
        service.predict_degradation(
            DegradationRequest.model_validate({**body, "neighbour_profile_ids": ["web", "nope"]})
        )
    plain = service.predict_degradation(DegradationRequest.model_validate(body))
    for named in (["web"], ["web", "web"]):  # two workloads' telemetry sent as one mean series
        answer = service.predict_degradation(
            DegradationRequest.model_validate({**body, "neighbour_profile_ids": named})
        )
        assert answer.estimate.p == pytest.approx(plain.estimate.p)


def test_host_monitoring_reads_the_profile_the_collector_linked(service: Any) -> None:
    """A collector that knows each target's registered profile pushes the links with its samples: host
    monitoring then reads the target against its profile without the caller naming it (the same answer as
    naming it), says which profile it read, answers a link to a profile never registered without one, and
    keeps the links until a push carries new ones."""
    register(service, "web")
    monitoring = service.champions.champions.monitoring.predictor
    solo_inputs = {f for f in monitoring.metadata.features if f.startswith(VS_SOLO)}
    body = ingest_payload("node-a", np.random.default_rng(5))
    links = {"kubepods/pod1": "web", "kubepods/pod0": "gone"}
    linked = IngestRequest.model_validate({**body, "profiles": links})
    service.state.ingest(linked.host, linked.samples, profiles=linked.profiles)

    def ask(target: str, profile_id: str | None = None) -> Any:
        request = HostDegradationRequest(host="node-a", target=target, profile_id=profile_id)
        return service.predict_host_degradation(request)

    (view,) = [v for v in service.list_hosts().hosts if v.host == "node-a"]
    assert view.profiles == links  # operators see each target's link
    found, named, plain = ask("kubepods/pod1"), ask("kubepods/pod1", "web"), ask("kubepods/pod0")
    assert found.profile_id == named.profile_id == "web" and not solo_inputs & set(found.missing)
    assert found.estimate == named.estimate
    assert plain.profile_id is None and solo_inputs <= set(plain.missing)  # "gone" was never registered
    assert ask("kubepods/pod0", "web").profile_id == "web"  # the caller's profile comes first
    unlinked = IngestRequest.model_validate(ingest_payload("node-a", np.random.default_rng(6)))
    service.state.ingest(unlinked.host, unlinked.samples)  # a push without links keeps them
    assert ask("kubepods/pod1").profile_id == "web"
    service.state.ingest(unlinked.host, unlinked.samples, profiles={})  # one with links replaces them
    dropped = ask("kubepods/pod1")
    assert dropped.profile_id is None and solo_inputs <= set(dropped.missing)


def test_extender_verbs_on_a_recorded_request(service: Any) -> None:
    for host, seed in (("node-a", 1), ("node-b", 2)):
        feed(service, host, seed)
    register(service, "web")
    args = ExtenderArgs.model_validate(
        {"Pod": fixture_json("pod.json"), "Nodes": fixture_json("nodelist.json")}
    )
    scores = prioritized(service, args)
    assert [s.Host for s in scores] == ["node-a", "node-b", "node-c"]
    assert all(0 <= s.Score <= 10 for s in scores) and scores[2].Score == 5  # node-c: no telemetry
    result = service.filter_nodes(args)
    assert result.FailedNodes == {} and len(result.Nodes.items) == 3  # min P 0.05 is met everywhere


def test_extender_scores_match_the_explained_placement_answer(service: Any) -> None:
    """The extender's vectorised medians-only path gives the scores /score_placement gives."""
    for host, seed, intensity in (("node-a", 1, 0.3), ("node-b", 2, 3.0), ("node-c", 3, 1.0)):
        feed(service, host, seed, intensity)
    register(service, "web")
    hosts = ["node-a", "node-x", "node-b", "node-c"]
    placement = service.champions.champions.placement
    newcomer = service.profiles.encoding(service.profiles.get("web"), placement)
    fast = scoring.score_candidates(newcomer, hosts, service.hosts, placement)
    full = {p.host: p for p in scoring.score_hosts(newcomer, hosts, service.hosts, placement, 0.0)}
    assert fast.scored.tolist() == [True, False, True, True]
    assert fast.neutral_reasons() == {"node-x": full["node-x"].reason}
    for position, host in enumerate(hosts):
        expected = full[host]
        assert fast.score[position] == pytest.approx(expected.score, abs=1e-6)
        if expected.newcomer is not None:
            assert fast.newcomer_p[position] == pytest.approx(expected.newcomer.p, abs=1e-6)
            assert expected.worst_incumbent is not None
            assert fast.worst_incumbent_p[position] == pytest.approx(expected.worst_incumbent.p, abs=1e-6)


def test_an_empty_host_is_scored_first_and_an_unknown_one_stays_neutral(service: Any) -> None:
    """A host whose collector sends only its heartbeat (the host row, no workload) is known and empty: the
    newcomer runs there as alone (P = 1) and harms nobody, so it ranks above every occupied host; a host never
    heard of keeps the neutral score with its reason, in both the explained and the extender path."""
    feed(service, "node-a", 1, intensity=0.3)
    feed(service, "node-b", 2, intensity=3.0)
    heartbeat = ingest_payload("node-e", np.random.default_rng(4), targets=0)
    payload = IngestRequest.model_validate(heartbeat)
    service.hosts.ingest(payload.host, payload.samples, service.champions.champions.placement)
    register(service, "web")
    hosts = ["node-a", "node-x", "node-e", "node-b"]
    request = ScorePlacementRequest.model_validate({"workload": {"profile_id": "web"}, "hosts": hosts})
    placements = service.score_placement(request).placements
    assert placements[0].host == "node-e" and placements[0].status == "empty_host"
    assert placements[0].newcomer is not None and placements[0].newcomer.p == 1.0
    assert placements[0].worst_incumbent is None and placements[0].score == 1.0 and placements[0].reason
    occupied = [p for p in placements if p.status == "scored"]
    assert {p.host for p in occupied} == {"node-a", "node-b"} and all(p.score < 1.0 for p in occupied)
    (unknown,) = [p for p in placements if p.host == "node-x"]
    assert unknown.status == "unknown_host" and unknown.score == scoring.NEUTRAL_SCORE
    placement = service.champions.champions.placement
    newcomer = service.profiles.encoding(service.profiles.get("web"), placement)
    fast = scoring.score_candidates(newcomer, hosts, service.hosts, placement)
    assert fast.score.tolist()[2] == 1.0 and fast.score[1] == scoring.NEUTRAL_SCORE
    assert fast.score[2] > max(fast.score[0], fast.score[3])


def test_bad_telemetry_never_poisons_host_state(service: Any) -> None:
    """A sample from the year 3026 is skipped and counted, and the request's good sample is kept; NaN,
    infinite and absurd values count as missing, and a sample with nothing else leaves the host's answers and
    its last-seen time as they were."""
    from datetime import UTC, datetime, timedelta

    feed(service, "node-a", 1, intensity=0.3)
    register(service, "web")
    request = ScorePlacementRequest.model_validate({"workload": {"profile_id": "web"}, "hosts": ["node-a"]})
    before = service.score_placement(request).placements[0]
    seen = service.hosts.hosts["node-a"].last_seen_wall
    now = datetime.now(UTC)
    future = {"timestamp": "3026-01-01T00:00:00+00:00", "target": "kubepods/pod0", "metrics": {"x": 1.0}}
    good = {"timestamp": now.isoformat(), "target": "kubepods/new", "metrics": {"x": 1.0}}
    payload = IngestRequest.model_validate({"host": "node-a", "samples": [future, good]})
    outcome = service.hosts.ingest(payload.host, payload.samples, service.champions.champions.placement)
    assert outcome.accepted == 1 and outcome.skipped == {"ahead_of_clock": 1}
    assert outcome.targets == ["kubepods/new"]
    assert service.hosts.hosts["node-a"].last_seen_wall == datetime.fromisoformat(good["timestamp"])
    seen = service.hosts.hosts["node-a"].last_seen_wall
    del service.hosts.hosts["node-a"].targets["kubepods/new"]
    faults = [
        {"timestamp": (now - timedelta(seconds=1)).isoformat(), "target": "kubepods/pod0", "metrics": metrics}
        for metrics in (
            dict.fromkeys(solo_telemetry(np.random.default_rng(0), 1), float("nan")),
            dict.fromkeys(solo_telemetry(np.random.default_rng(0), 1), 1e308),
            dict.fromkeys(solo_telemetry(np.random.default_rng(0), 1), float("inf")),
        )
    ]
    payload = IngestRequest.model_validate({"host": "node-a", "samples": faults})
    assert all(value is None for sample in payload.samples for value in sample.metrics.values())
    outcome = service.hosts.ingest(payload.host, payload.samples, service.champions.champions.placement)
    assert outcome.accepted == 0 and outcome.skipped == {"no_values": 3}
    after = service.score_placement(request).placements[0]
    assert after.score == before.score and after.newcomer == before.newcomer
    assert service.hosts.hosts["node-a"].last_seen_wall == seen


def test_prioritize_ranks_by_headroom_above_the_pods_minimum(service: Any) -> None:
    """The pod's own minimum (its annotation) sets the scale of the prioritize scores: the headroom of each
    node's score above it over the eleven levels, round(10 x score) without one."""
    for host, seed, intensity in (("node-a", 1, 0.3), ("node-b", 2, 3.0), ("node-c", 3, 1.0)):
        feed(service, host, seed, intensity)
    register(service, "web")
    hosts = ["node-a", "node-b", "node-c"]
    placement = service.champions.champions.placement
    newcomer = service.profiles.encoding(service.profiles.get("web"), placement)
    score = scoring.score_candidates(newcomer, hosts, service.hosts, placement).score
    minimum = round(0.8 * float(score.max()), 3)  # some nodes under it, the best one above
    pod = fixture_json("pod.json")
    answers = []
    for annotated, expected in (
        (minimum, np.rint(10 * (score - minimum) / (1 - minimum))),
        (0.0, np.rint(10 * score)),
    ):
        pod["metadata"]["annotations"]["cotenant.io/min-performance"] = str(annotated)
        args = ExtenderArgs.model_validate({"Pod": pod, "NodeNames": hosts})
        answers.append([s.Score for s in prioritized(service, args)])
        assert answers[-1] == np.clip(expected, 0, 10).astype(int).tolist()
    assert answers[0] != answers[1], f"scores {score} do not tell the two scales apart"


def test_filter_explains_the_nodes_it_fails(service: Any) -> None:
    feed(service, "node-a", 1)
    register(service, "web")
    pod = fixture_json("pod.json")
    pod["metadata"]["annotations"]["cotenant.io/min-performance"] = "1.0"  # nothing can meet it
    args = ExtenderArgs.model_validate({"Pod": pod, "NodeNames": ["node-a", "node-b"]})
    result = service.filter_nodes(args)
    assert result.NodeNames == ["node-b"]  # node-b has no telemetry: it passes
    reason = result.FailedNodes["node-a"]
    assert "newcomer P" in reason and "worst incumbent kubepods/pod" in reason and "driven by" in reason


def test_unknown_profile_is_neutral_never_an_error(service: Any) -> None:
    feed(service, "node-a", 1)
    pod = fixture_json("pod.json")
    pod["metadata"]["labels"]["cotenant.io/profile"] = "never-registered"
    args = ExtenderArgs.model_validate({"Pod": pod, "NodeNames": ["node-a", "node-b"]})
    assert [s.Score for s in prioritized(service, args)] == [5, 5]
    assert service.filter_nodes(args).NodeNames == ["node-a", "node-b"]


def test_not_ready_without_champions(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cotenant.serving.service import InterferencePredictionService

    monkeypatch.setenv("COTENANT_SERVE_ALIAS", "no-such-alias")
    instance = InterferencePredictionService()
    try:
        assert not instance.__is_ready__()
        with pytest.raises(ServiceUnavailable):
            instance.score_placement(
                ScorePlacementRequest.model_validate({"workload": {"profile_id": "w"}, "hosts": ["h"]})
            )
        args = ExtenderArgs.model_validate({"Pod": fixture_json("pod.json"), "NodeNames": ["node-a"]})
        assert prioritized(instance, args)[0].Score == 5  # the extender stays neutral, never fails
    finally:
        instance.champions.stop()
        instance.metrics.stop()


def test_ready_when_one_task_has_no_champion_and_says_so(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task none of whose versions passed the promotion gate does not hold back the other: the service is
    ready and answers monitoring; placement requests get 503 naming the gate, the extender stays neutral."""
    from cotenant.serving.service import InterferencePredictionService

    monkeypatch.setenv("COTENANT_SERVE_PLACEMENT_MODEL", "cotenant-placement-never-promoted")
    instance = InterferencePredictionService()
    try:
        assert instance.champions.champions.monitoring is not None
        assert instance.champions.champions.placement is None
        assert instance.__is_ready__()
        with pytest.raises(
            ServiceUnavailable, match="no version of cotenant-placement-never-promoted is aliased 'champion'"
        ):
            instance.score_placement(
                ScorePlacementRequest.model_validate({"workload": {"profile_id": "w"}, "hosts": ["h"]})
            )
        args = ExtenderArgs.model_validate({"Pod": fixture_json("pod.json"), "NodeNames": ["node-a"]})
        assert prioritized(instance, args)[0].Score == 5
    finally:
        instance.champions.stop()
        instance.metrics.stop()


def test_a_new_accelerator_catalogue_champion_is_swapped_in(
    service: Any, store_uri: str, champion_store: Any
) -> None:
    """Moving the catalogue's champion alias changes the by-name answers on the next refresh, as for the
    learnt models; requests carrying their own profiles are unaffected."""
    from cotenant.serving.schemas import AcceleratorLatencyRequest
    from serving_champions import fitted_catalogue, register_catalogue

    request = AcceleratorLatencyRequest.model_validate(
        {
            "device": {"name": "coral", "kind": "tpu", "memory_mb": 8000.0},
            "apps": [{"name": "cam", "model": "ssd_mobilenet_v2", "input_rate": 10.0, "slo_ms": 100.0}],
        }
    )
    before = service.predict_accelerator_latency(request).latencies[0].total_ms
    catalogue = fitted_catalogue()
    slower = catalogue.models["ssd_mobilenet_v2"]["tpu"].model_copy(update={"service_ms": 40.0})
    catalogue.models["ssd_mobilenet_v2"]["tpu"] = slower
    version = register_catalogue(store_uri, champion_store / "artifacts", catalogue)
    assert service.champions.refresh()
    assert service.champions.champions.accelerators.version == version == "2"
    after = service.predict_accelerator_latency(request).latencies[0].total_ms
    assert after > before + 20.0  # 40 ms of service instead of about 18, and a longer wait


def test_a_challenger_is_shadowed_on_live_requests_logged_and_never_served(
    service: Any, store_uri: str, champion_store: Any
) -> None:
    """With a placement version under the challenger alias, every explained placement request is scored by it
    in the background and compared with the champion's reply; the figures reach MLflow. The reply is the
    champion's alone: the same as without a challenger."""
    from mlflow import MlflowClient
    from serving_champions import placement_predictor, register_champion

    feed(service, "node-a", 1, intensity=0.3)
    feed(service, "node-b", 2, intensity=3.0)
    register(service, "web")
    request = ScorePlacementRequest.model_validate(
        {"workload": {"profile_id": "web"}, "hosts": ["node-a", "node-b", "node-x"]}
    )
    served_before = service.score_placement(request)
    register_champion(
        store_uri,
        champion_store / "artifacts",
        "cotenant-placement",
        placement_predictor(2),
        alias="challenger",
    )
    assert service.champions.refresh()
    shadow = service.champions.champions.placement_shadow
    assert shadow is not None and shadow.version == "2"
    assert service.champions.champions.placement.version == "1"  # the champion is still the one served
    for _ in range(3):
        assert service.score_placement(request) == served_before
    service.shadow.flush()
    figures = service.shadow.figures()
    assert figures.requests == 3 and figures.hosts == 6 and figures.dropped == 0  # node-x is unknown: skipped
    pod = fixture_json("pod.json")
    pod["metadata"]["labels"]["cotenant.io/profile"] = "web"
    args = ExtenderArgs.model_validate({"Pod": pod, "NodeNames": ["node-a", "node-b"]})
    prioritized(service, args)  # the extender's calls are shadowed too
    service.shadow.flush()
    assert service.shadow.figures().requests == 4
    # two differently seeded models: their answers differ, and the figures say by how much
    assert figures.newcomer_p_difference > 0
    client = MlflowClient(tracking_uri=store_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cotenant-shadow").experiment_id])
    assert run.data.tags["champion_version"] == "1" and run.data.tags["challenger_version"] == "2"
    assert run.data.metrics["shadow_requests"] == 4
    assert run.data.metrics["shadow_hosts"] == 8
    assert 0 <= run.data.metrics["shadow_same_best_host_share"] <= 1


def test_by_expected_misses_the_filter_keeps_a_node_under_the_minimum_that_costs_less_than_a_miss(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``COTENANT_SERVE_EXTENDER_RULE=expected_misses``: a node where the pod's own median falls short of its
    minimum passes when placing it there is expected to cost under one miss, and the filter's reason for a
    node it fails gives the expected cost."""
    from cotenant.serving.service import InterferencePredictionService

    monkeypatch.setenv("COTENANT_SERVE_EXTENDER_RULE", "expected_misses")
    service = InterferencePredictionService()
    try:
        for host, seed, intensity in (("node-a", 1, 0.3), ("node-b", 2, 3.0)):
            feed(service, host, seed, intensity)
        register(service, "web")
        hosts = ["node-a", "node-b"]
        placement = service.champions.champions.placement
        newcomer = service.profiles.encoding(service.profiles.get("web"), placement)
        medians = scoring.score_candidates(newcomer, hosts, service.hosts, placement)
        minimum = round(float(medians.raw[0]) + 0.01, 3)  # node-a's lower median just under it
        misses = scoring.score_candidates(newcomer, hosts, service.hosts, placement, misses_below=minimum)
        assert misses.expected_misses is not None
        assert 0.0 < misses.expected_misses[0] < 1.0, misses.expected_misses
        pod = fixture_json("pod.json")
        pod["metadata"]["annotations"]["cotenant.io/min-performance"] = str(minimum)
        result = service.filter_nodes(ExtenderArgs.model_validate({"Pod": pod, "NodeNames": hosts}))
        assert "node-a" in (result.NodeNames or [])  # the medians rule fails it: its score is under it
        failing = [hosts[i] for i in np.flatnonzero(misses.expected_misses >= 1.0)]
        assert sorted((result.FailedNodes or {}).keys()) == failing
        args = ExtenderArgs.model_validate({"Pod": pod, "NodeNames": hosts})
        scores = [s.Score for s in prioritized(service, args)]
        assert scores == np.clip(np.rint(10 * (1 - misses.expected_misses)), 0, 10).astype(int).tolist()
        pod["metadata"]["annotations"]["cotenant.io/min-performance"] = "1.0"  # nothing can meet it
        result = service.filter_nodes(ExtenderArgs.model_validate({"Pod": pod, "NodeNames": hosts}))
        assert result.NodeNames == [] and "expected to cost" in result.FailedNodes["node-a"]
    finally:
        service.champions.stop()
        service.metrics.stop()
