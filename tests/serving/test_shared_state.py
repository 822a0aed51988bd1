"""Replicas sharing host state and profiles through a real Redis (``serving/shared_state.py``).

Each replica here is the service class itself, built twice in one process on one real ``redis-server``:
what one replica is told, the other answers alike; a restarted replica recovers from the log; a Redis restart
answers neutrally with the reason and nothing crashes. The same over HTTP with two ``bentoml serve`` replicas
is in test_server.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TOKEN, ingest_payload, profile_payload
from cotenant.serving import scoring
from cotenant.serving.extender import ExtenderArgs, HostPriorityList
from cotenant.serving.local_servers import RedisServer
from cotenant.serving.schemas import IngestRequest, ScorePlacementRequest
from cotenant.serving.shared_state import StateUnavailable

pytestmark = pytest.mark.slow
HOSTS = ["node-a", "node-b", "node-x"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def make_replica(
    service_env: dict[str, str], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Any]]:
    from cotenant.serving.service import InterferencePredictionService

    monkeypatch.setenv("COTENANT_SERVE_STATE_URL", redis_server.url)
    made: list[Any] = []

    def make() -> Any:
        replica = InterferencePredictionService()
        made.append(replica)
        wait_until(lambda: replica.hosts.outage is None, what="the replica to follow the shared log")
        return replica

    yield make
    for replica in made:
        replica.state.close()
        replica.champions.stop()
        replica.metrics.stop()


def push(replica: Any, host: str, seed: int, intensity: float = 1.0) -> Any:
    rng = np.random.default_rng(seed)
    payload = IngestRequest.model_validate(ingest_payload(host, rng, intensity=intensity))
    return replica.state.ingest(payload.host, payload.samples)


def in_step(*replicas: Any) -> bool:
    """Every replica has applied the log up to the same entry: only then do they hold the same state."""
    return len({replica.state.applied_through for replica in replicas}) == 1


def placements(replica: Any) -> list[dict[str, Any]]:
    request = ScorePlacementRequest.model_validate({"workload": {"profile_id": "web"}, "hosts": HOSTS})
    return [p.model_dump() for p in replica.score_placement(request).placements]


def priorities(replica: Any) -> list[dict[str, Any]]:
    pod = {"metadata": {"name": "p", "labels": {"cotenant.io/profile": "web"}}}
    response = replica.prioritize_nodes(ExtenderArgs.model_validate({"Pod": pod, "NodeNames": HOSTS}))
    return HostPriorityList.model_validate_json(response.body).model_dump()


def windows(replica: Any) -> dict[tuple[str, str], list[Any]]:
    return {
        (host, target): list(window.rows)
        for host, state in replica.hosts.hosts.items()
        for target, window in state.targets.items()
    }


def test_replicas_answer_alike_for_nodes_pushed_to_either(make_replica: Callable[[], Any]) -> None:
    first, second = make_replica(), make_replica()
    outcome = push(first, "node-a", 1, intensity=0.3)
    assert outcome.accepted > 0 and outcome.targets == ["host", "kubepods/pod0", "kubepods/pod1"]
    push(second, "node-b", 2, intensity=3.0)
    second.state.register_profile("web", profile_payload("web")["telemetry"])
    # Each replica reads its own write at once; the other follows the log within a blocking read.
    wait_until(lambda: {"node-a", "node-b"} <= set(first.hosts.hosts) <= set(second.hosts.hosts))
    wait_until(lambda: first.profiles.get("web") is not None, what="the profile on the other replica")
    wait_until(lambda: in_step(first, second), what="both replicas at the log's end")
    answers = placements(first)
    assert answers == placements(second)
    # a collector's links of targets to profiles reach every replica with its push
    body = ingest_payload("node-a", np.random.default_rng(3), intensity=0.3)
    linked = IngestRequest.model_validate({**body, "profiles": {"kubepods/pod1": "web"}})
    second.state.ingest(linked.host, linked.samples, profiles=linked.profiles)
    wait_until(lambda: first.hosts.profile_of("node-a", "kubepods/pod1") == "web", what="the link elsewhere")
    # the link is visible while the push's encoding still runs; answers compare once both applied all of it
    wait_until(lambda: in_step(first, second), what="both replicas at the log's end")
    answers = placements(first)
    assert answers == placements(second)
    by_host = {p["host"]: p for p in answers}
    assert by_host["node-a"]["status"] == by_host["node-b"]["status"] == "scored"
    assert by_host["node-a"]["score"] != by_host["node-b"]["score"]  # real, different answers
    assert by_host["node-x"]["status"] == "unknown_host"
    assert priorities(first) == priorities(second)


def test_concurrent_pushes_to_both_replicas_leave_identical_windows(make_replica: Callable[[], Any]) -> None:
    replicas = [make_replica(), make_replica()]
    pushes_per_thread = 5

    def pusher(index: int) -> None:
        for round_ in range(pushes_per_thread):
            push(replicas[index % 2], f"node-{index % 3}", seed=100 * index + round_)

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: windows(replicas[0]) == windows(replicas[1]), what="identical windows")
    rows = windows(replicas[0])
    assert {host for host, _ in rows} == {"node-0", "node-1", "node-2"}
    # 2 threads x 5 pushes x 10 s per host, each window keeps its last 120 samples: none was lost.
    assert all(len(samples) == 100 for (_, target), samples in rows.items() if target == "host")


def test_a_restarted_replica_replays_hosts_and_profiles(make_replica: Callable[[], Any]) -> None:
    first = make_replica()
    push(first, "node-a", 1, intensity=0.3)
    push(first, "node-b", 2, intensity=3.0)
    first.state.register_profile("web", profile_payload("web")["telemetry"])
    first.state.register_profile("db", profile_payload("db")["telemetry"], {"sens_cpu_2": 0.8}, latency=True)
    later = make_replica()  # a replica (re)started after the pushes: it replays the log's retained tail
    assert windows(later) == windows(first)
    assert placements(later) == placements(first)
    # every fact a profile was registered with comes back: its probes, and that its metric is a latency
    for replica in (first, later):
        web, db = replica.profiles.get("web"), replica.profiles.get("db")
        assert (web.probes, web.latency) == ({}, None)
        assert (db.probes, db.latency) == ({"sens_cpu_2": 0.8}, True)


def test_redis_restart_answers_neutrally_with_the_reason_until_state_returns(
    make_replica: Callable[[], Any], redis_server: RedisServer
) -> None:
    replica = make_replica()
    push(replica, "node-a", 1)
    replica.state.register_profile("web", profile_payload("web")["telemetry"])
    assert {p["host"]: p["status"] for p in placements(replica)}["node-a"] == "scored"

    redis_server.stop()
    wait_until(lambda: replica.hosts.outage is not None, what="the outage to be noticed")
    for answer in placements(replica):
        assert answer["status"] == "state_unavailable" and answer["score"] == scoring.NEUTRAL_SCORE
        assert "host state unavailable" in answer["reason"]
    assert {p["Score"] for p in priorities(replica)} == {5}
    with pytest.raises(StateUnavailable, match=r"unavailable|unreachable"):
        push(replica, "node-a", 3)

    redis_server.start()  # empty: this Redis keeps no data across restarts
    wait_until(lambda: replica.hosts.outage is None, what="the replica to follow the new log")
    assert replica.hosts.hosts == {} and replica.profiles.get("web") is None  # forgotten, not stale
    replica.state.register_profile("web", profile_payload("web")["telemetry"])
    assert {p["host"]: p["status"] for p in placements(replica)}["node-a"] == "unknown_host"
    push(replica, "node-a", 4)
    assert {p["host"]: p["status"] for p in placements(replica)}["node-a"] == "scored"


def test_compact_pushes_reach_every_replica_alike(make_replica: Callable[[], Any]) -> None:
    from test_compact import compact_payload
    from test_compact import ingest as ingest_compact

    first, second = make_replica(), make_replica()
    body = compact_payload(first, ingest_payload("node-a", np.random.default_rng(1), seconds=30))
    assert ingest_compact(first, body).summaries == 2
    second.state.register_profile("web", profile_payload("web")["telemetry"])
    wait_until(lambda: "node-a" in second.hosts.hosts and first.profiles.get("web") is not None)
    wait_until(lambda: in_step(first, second), what="both replicas at the log's end")
    summaries = [
        {target: window.summary for target, window in replica.hosts.hosts["node-a"].targets.items()}
        for replica in (first, second)
    ]
    assert summaries[0].keys() == summaries[1].keys() == {"host", "kubepods/pod0", "kubepods/pod1"}
    for target, summary in summaries[0].items():
        other = summaries[1][target]
        if summary is None:
            assert other is None  # the host's own rows stay rows
        else:
            np.testing.assert_array_equal(summary.values, other.values)
    assert placements(first)[0]["status"] == "scored" and placements(first) == placements(second)


def test_a_compact_push_is_encoded_once_by_the_replica_that_received_it(
    make_replica: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiving replica ships the summaries' encodings in the log entry: no replica's log reader runs
    the model on them again, and both hold the encodings the receiver made."""
    from cotenant.serving import hosts
    from test_compact import compact_payload
    from test_compact import ingest as ingest_compact

    first, second = make_replica(), make_replica()
    encoders: list[str] = []
    original = hosts.encode_incumbents

    def counted(predictor: Any, summaries: Any) -> Any:
        encoders.append(threading.current_thread().name)
        return original(predictor, summaries)

    monkeypatch.setattr(hosts, "encode_incumbents", counted)
    body = compact_payload(first, ingest_payload("node-c", np.random.default_rng(3), seconds=30))
    assert ingest_compact(first, body).summaries == 2

    def applied() -> bool:  # the snapshot is published last, once the host is encoded
        state = second.hosts.hosts.get("node-c")
        return state is not None and state.snapshot is not None and len(state.snapshot.incumbents) == 2

    wait_until(applied, what="the other replica to apply the push")
    assert encoders == [threading.current_thread().name]  # the receiver's request, not a log reader
    held = [replica.hosts.hosts["node-c"].incumbent_encodings for replica in (first, second)]
    assert held[0].keys() == held[1].keys() == {"kubepods/pod0", "kubepods/pod1"}
    for target, (key, vector) in held[0].items():
        assert key == held[1][target][0]
        np.testing.assert_array_equal(vector, held[1][target][1])
    assert np.ptp(vector) > 0


def test_redis_keeps_one_push_of_summaries_per_host_and_replicas_apply_the_latest(
    make_replica: Callable[[], Any],
) -> None:
    """A compact push's summaries live in one key per host (the latest push's, expiring after the log's
    retention), not in every log entry: the entries stay small, every replica and a restarted one end with
    the latest summaries, and an entry written the earlier way (summaries inside it) is still applied."""
    from cotenant.serving.shared_state import COMPACT_GRACE_S, encode_summaries, unpack_compact
    from test_compact import compact_payload
    from test_compact import ingest as ingest_compact

    first, second = make_replica(), make_replica()
    client, events = first.state.client, first.state.events
    bodies = [
        compact_payload(first, ingest_payload("node-c", np.random.default_rng(seed), seconds=30, intensity=k))
        for seed, k in ((5, 0.5), (6, 2.0))
    ]
    for body in bodies:
        assert ingest_compact(first, body).summaries == 2
    key = first.state.compact_key("node-c")
    entries = [fields for _, fields in client.xrange(events) if fields[b"host"] == b"node-c"]
    assert len(entries) == 2 and all(fields[b"compact"] == key.encode() for fields in entries)
    assert all(b"summaries" not in fields and b"encodings" not in fields for fields in entries)
    assert 0 < client.ttl(key) <= first.state.retention_s + COMPACT_GRACE_S
    pushed = first._compact_summaries(IngestRequest.model_validate(bodies[1]))
    latest = {summary.target: summary.values for summary in pushed}
    stored, encoded = unpack_compact(client.get(key))  # the second push's, with the receiver's encodings
    assert len(latest) == 2 and encoded is not None and encoded.vectors.keys() == latest.keys()
    for summary in stored:
        np.testing.assert_array_equal(summary.values, latest[summary.target])
    later = make_replica()  # replays both entries: each applies the host's latest summaries
    for replica in (first, second, later):

        def has_latest(replica: Any = replica) -> bool:
            return held_of(replica, "node-c").keys() == latest.keys()

        wait_until(has_latest, what="the summaries")
        for target, summary in held_of(replica, "node-c").items():
            np.testing.assert_array_equal(summary.values, latest[target])
    # A key gone (expired with a silent host, or a Redis that lost it) costs that host's summaries only: a
    # replica replaying the log applies the entries' host rows, and the next push brings summaries back.
    client.delete(key)
    fresh = make_replica()
    assert held_of(fresh, "node-c") == {} and "host" in fresh.hosts.hosts["node-c"].targets
    assert ingest_compact(first, bodies[1]).summaries == 2
    wait_until(lambda: held_of(fresh, "node-c").keys() == latest.keys(), what="the summaries to return")
    # An entry in the earlier format: its own summaries, applied as before.
    earlier = first._compact_summaries(IngestRequest.model_validate(bodies[0]))
    fields = {"kind": "ingest", "host": "node-d", "samples": b"[]", "summaries": encode_summaries(earlier)}
    client.xadd(events, fields)
    wait_until(lambda: len(held_of(second, "node-d")) == 2, what="the earlier-format entry")


def held_of(replica: Any, host: str) -> dict[str, Any]:
    state = replica.hosts.hosts.get(host)
    return {} if state is None else {t: w.summary for t, w in state.targets.items() if w.summary is not None}


def test_a_malformed_log_entry_costs_that_entry_only(make_replica: Callable[[], Any]) -> None:
    first, second = make_replica(), make_replica()
    client, events = first.state.client, first.state.events
    client.xadd(events, {"kind": "ingest", "host": "node-z", "samples": b"[[not json"})
    client.xadd(events, {"kind": "something-new"})
    push(first, "node-a", 1)
    wait_until(lambda: "node-a" in second.hosts.hosts, what="the entry after the bad ones")
    assert "node-z" not in second.hosts.hosts and second.hosts.outage is None


def test_two_bentoml_replicas_behind_one_redis_answer_alike_over_http(
    store_uri: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The deployment itself: two ``bentoml serve`` processes, one Redis; a collector pushes to one replica
    and the scheduler asks the other; a replica restarted later answers the same from the log."""
    import httpx
    from cotenant.serving.cli import serve_command
    from cotenant.serving.config import ServiceSettings
    from cotenant.serving.local_servers import free_port, start_server, stop_server, wait_ready

    settings = ServiceSettings(
        tracking_uri=store_uri,
        token=TOKEN,
        watch_interval_s=0,
        state_url=redis_server.url,
        max_candidates=1000,
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pod = {"metadata": {"name": "p", "labels": {"cotenant.io/profile": "web"}}}
    servers: list[Any] = []

    def replica(name: str) -> str:
        port = free_port()
        command, env = serve_command("127.0.0.1", port, 1, settings.to_env(), [])
        with (tmp_path / f"{name}.log").open("ab") as log:
            servers.append(start_server(command, env, log))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, servers[-1], 120, tmp_path / f"{name}.log")
        return url

    def answers(url: str) -> tuple[Any, Any]:
        placement = httpx.post(
            f"{url}/score_placement", json={"workload": {"profile_id": "web"}, "hosts": HOSTS}, timeout=10
        )
        priority = httpx.post(f"{url}/prioritize", json={"Pod": pod, "NodeNames": HOSTS}, timeout=10)
        assert placement.status_code == priority.status_code == 200, (placement.text, priority.text)
        return placement.json(), priority.json()

    try:
        first, second = replica("first"), replica("second")
        for host, seed, intensity in (("node-a", 1, 0.3), ("node-b", 2, 3.0)):
            body = ingest_payload(host, np.random.default_rng(seed), intensity=intensity)
            reply = httpx.post(f"{first}/ingest", json=body, headers=auth, timeout=10)
            assert reply.status_code == 200 and reply.json()["accepted"] > 0, reply.text
        reply = httpx.post(
            f"{second}/register_profile", json=profile_payload("web"), headers=auth, timeout=10
        )
        assert reply.status_code == 200, reply.text

        def hosts(url: str) -> set[str]:
            return {h["host"] for h in httpx.post(f"{url}/list_hosts", timeout=10).json()["hosts"]}

        wait_until(lambda: hosts(second) == {"node-a", "node-b"}, what="the second replica to follow")
        placed, prioritised = answers(first)
        assert (placed, prioritised) == answers(second)
        statuses = {p["host"]: p["status"] for p in placed["placements"]}
        assert statuses == {"node-a": "scored", "node-b": "scored", "node-x": "unknown_host"}
        assert len({p["Score"] for p in prioritised}) > 1  # real, different answers

        stop_server(servers.pop(0))  # the first replica restarts: it replays the log on start
        again = replica("first-again")
        assert answers(again) == (placed, prioritised)
    finally:
        for server in servers:
            stop_server(server)
