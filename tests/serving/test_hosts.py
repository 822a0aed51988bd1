"""Host state store: bounded windows, encodings at ingest, staleness, re-encoding after a champion swap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cotenant.serving.hosts import HostStore, window_to_series
from cotenant.serving.models import LoadedModel
from cotenant.serving.schemas import IngestSample
from serving_champions import METRICS, placement_predictor


class FakeClock:
    """Only time is faked: staleness is measured on a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def placement() -> LoadedModel:
    return LoadedModel("cotenant-placement", "1", placement_predictor(1))


def samples(target: str, seconds: int, start: int = 0, value: float = 1.0) -> list[IngestSample]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        IngestSample(
            timestamp=base + timedelta(seconds=start + s),
            target=target,
            metrics={m: value * (s + 1) for m in METRICS},
        )
        for s in range(seconds)
    ]


def test_window_to_series_orders_by_time_and_fills_gaps_with_the_window_mean() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (t0 + timedelta(seconds=2), {"a": 3.0, "b": None}),
        (t0, {"a": 1.0, "b": None}),
        (t0 + timedelta(seconds=1), {"a": None, "b": None}),
    ]
    series = window_to_series(rows)
    assert list(series) == ["a"]  # b is unavailable in the whole window: absent, never zeros
    assert series["a"].tolist() == [1.0, 2.0, 3.0]


def test_ingest_bounds_the_window_and_encodes_the_host_ahead_of_queries(placement: LoadedModel) -> None:
    store = HostStore(window_samples=5, stale_after_s=30, max_hosts=10)
    touched = store.ingest("node-1", samples("pod-a", 8) + samples("pod-b", 3), placement).targets
    assert touched == ["pod-a", "pod-b"]
    state = store.hosts["node-1"]
    assert len(state.targets["pod-a"].rows) == 5  # bounded: the oldest 3 seconds dropped
    assert state.targets["pod-a"].series()[METRICS[0]].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]
    snapshot = state.snapshot
    assert snapshot is not None and snapshot.model_key == placement.key
    assert snapshot.incumbents == ("pod-a", "pod-b")
    assert snapshot.encoding.count == 2
    assert store.snapshot("node-1", placement) is snapshot  # a query reuses it: nothing recomputed


def test_host_telemetry_is_not_an_incumbent(placement: LoadedModel) -> None:
    store = HostStore(window_samples=5, stale_after_s=30, max_hosts=10)
    store.ingest("node-1", samples("host", 3) + samples("pod-a", 3), placement)
    snapshot = store.snapshot("node-1", placement)
    assert snapshot is not None and snapshot.incumbents == ("pod-a",)
    found = store.series("node-1", "pod-a")
    assert found is not None
    own, neighbours, host, links = found
    assert neighbours == [] and links == [] and host is not None and len(own[METRICS[0]]) == 3


def test_a_targets_neighbours_come_with_the_profiles_their_collector_linked(placement: LoadedModel) -> None:
    store = HostStore(window_samples=5, stale_after_s=30, max_hosts=10)
    pushed = samples("pod-a", 3) + samples("pod-b", 3) + samples("pod-c", 3)
    store.ingest("node-1", pushed, placement, profiles={"pod-a": "web", "pod-b": "db"})
    found = store.series("node-1", "pod-a")
    assert found is not None
    _, neighbours, _, links = found
    assert len(neighbours) == 2 and links == ["db", None]  # pod-b linked, pod-c not: in the neighbours' order


def test_silent_targets_leave_and_silent_hosts_go_stale(placement: LoadedModel) -> None:
    clock = FakeClock()
    store = HostStore(window_samples=10, stale_after_s=30, max_hosts=10, clock=clock)
    store.ingest("node-1", samples("pod-a", 3) + samples("pod-b", 3), placement)
    clock.now += 31
    store.ingest("node-1", samples("pod-a", 1, start=3), placement)
    snapshot = store.snapshot("node-1", placement)
    assert snapshot is not None and snapshot.incumbents == ("pod-a",)  # pod-b ended
    assert not store.is_stale(snapshot.last_seen)
    clock.now += 31
    assert store.is_stale(snapshot.last_seen)
    assert store.snapshot("node-1", placement).incumbents == ("pod-a",)


def test_a_new_champion_re_encodes_the_host_once(placement: LoadedModel) -> None:
    store = HostStore(window_samples=10, stale_after_s=30, max_hosts=10)
    store.ingest("node-1", samples("pod-a", 4), placement)
    before = store.snapshot("node-1", placement)
    challenger = LoadedModel("cotenant-placement", "2", placement_predictor(2))
    after = store.snapshot("node-1", challenger)
    assert before is not None and after is not None
    assert after.model_key == challenger.key and after is not before
    assert not np.allclose(before.encoding.total, after.encoding.total)
    assert store.snapshot("node-1", challenger) is after


def test_the_oldest_host_is_evicted_at_the_bound(placement: LoadedModel) -> None:
    clock = FakeClock()
    store = HostStore(window_samples=4, stale_after_s=30, max_hosts=2, clock=clock)
    for i, host in enumerate(["n1", "n2", "n3"]):
        clock.now += i
        store.ingest(host, samples("pod", 1), placement)
    assert sorted(store.hosts) == ["n2", "n3"]
    assert store.snapshot("n1", placement) is None


def test_the_index_is_reused_until_a_host_changes(placement: LoadedModel) -> None:
    store = HostStore(window_samples=10, stale_after_s=30, max_hosts=10)
    store.ingest("node-1", samples("pod-a", 3), placement)
    store.ingest("node-2", samples("pod-b", 3), placement)
    index = store.index(placement)
    assert index.lookup(["node-2", "node-x", "node-1"]).tolist() == [1, -1, 0]
    assert index.snapshots[1] is store.snapshot("node-2", placement)
    assert store.index(placement) is index  # nothing changed: no rebuild
    store.ingest("node-1", samples("pod-a", 1, start=3), placement)
    rebuilt = store.index(placement)
    assert rebuilt is not index and rebuilt.snapshots[0] is store.snapshot("node-1", placement)
    challenger = LoadedModel("cotenant-placement", "2", placement_predictor(2))
    swapped = store.index(challenger)
    assert swapped.model_key == challenger.key
    assert all(snapshot.model_key == challenger.key for snapshot in swapped.snapshots)


def test_summaries_encoded_by_another_replica_are_stored_as_given_only_for_the_same_champion(
    placement: LoadedModel,
) -> None:
    from cotenant.collectors.summaries import summarise
    from cotenant.serving.hosts import CompactSummary

    store = HostStore(window_samples=30, stale_after_s=30, max_hosts=10)
    schema = store.feature_schema(placement)
    window = np.random.default_rng(4).gamma(4.0, 0.25, size=(30, len(schema.metrics)))
    summary = CompactSummary("pod-a", datetime.now(UTC), 30, schema.schema_id, summarise(window))
    shipped = store.encode_summaries(placement, [summary])
    assert shipped is not None and set(shipped.vectors) == {"pod-a"}
    store.apply("node-1", [], placement, summaries=[summary])
    own = store.hosts["node-1"].incumbent_encodings["pod-a"][1]
    np.testing.assert_array_equal(own, shipped.vectors["pod-a"])  # what this store would have made
    marked = type(shipped)(placement.key, {"pod-a": shipped.vectors["pod-a"] + 1.0})
    store.apply("node-2", [], placement, summaries=[summary], encoded=marked)
    np.testing.assert_array_equal(store.hosts["node-2"].incumbent_encodings["pod-a"][1], own + 1.0)
    other = type(shipped)("another-champion/7", marked.vectors)
    store.apply("node-3", [], placement, summaries=[summary], encoded=other)
    np.testing.assert_array_equal(store.hosts["node-3"].incumbent_encodings["pod-a"][1], own)


def test_an_index_patched_with_the_changed_hosts_equals_one_stacked_anew(placement: LoadedModel) -> None:
    """Between two queries a fleet changes a few hosts: their rows are replaced in copies of the index's
    arrays (the same numbers as stacking every host anew); a host added, or one whose incumbent count
    changed, stacks the index anew."""
    store = HostStore(window_samples=10, stale_after_s=30, max_hosts=50)
    for h in range(12):
        for t in range(1 + h % 3):
            store.ingest(f"node-{h}", samples(f"pod-{t}", 3, value=1.0 + h + t), placement)
    first = store.index(placement)
    store.ingest("node-4", samples("pod-0", 2, start=3, value=7.0), placement)
    store.ingest("node-9", samples("pod-0", 2, start=3, value=0.2), placement)
    patched = store.index(placement)
    assert patched.rows is first.rows and patched is not first  # patched: the layout was kept
    anew = store._stacked(placement)
    assert [s.host for s in patched.snapshots] == [s.host for s in anew.snapshots]
    assert all(a is b for a, b in zip(patched.snapshots, anew.snapshots, strict=True))
    np.testing.assert_array_equal(patched.last_seen, anew.last_seen)
    np.testing.assert_array_equal(patched.pending, anew.pending)
    arrays = ("counts", "totals", "incumbents", "owner", "order", "offsets", "host_part", "incumbent_part")
    for name in arrays:
        np.testing.assert_array_equal(getattr(patched.batch, name), getattr(anew.batch, name), err_msg=name)
    assert not np.array_equal(first.batch.totals[4], patched.batch.totals[4])  # node-4 changed...
    np.testing.assert_array_equal(first.batch.totals[5], patched.batch.totals[5])  # ...node-5 did not
    # The patched index says which rows changed since the one it was patched from, over several patches.
    rows = sorted(first.rows[h] for h in ("node-4", "node-9"))
    assert patched.changed_since(first.generation).tolist() == rows
    assert patched.changed_since(patched.generation).tolist() == []
    store.ingest("node-6", samples("pod-0", 2, start=3, value=3.0), placement)
    again = store.index(placement)
    assert again.changed_since(patched.generation).tolist() == [first.rows["node-6"]]
    assert again.changed_since(first.generation).tolist() == sorted([*rows, first.rows["node-6"]])
    assert again.changed_since(first.generation - 1) is None  # older than anything it remembers
    store.ingest("node-2", samples("pod-7", 2, start=3), placement)  # a third incumbent on node-2
    regrown = store.index(placement)
    assert regrown.rows is not first.rows and regrown.batch.counts[2] == 4
    assert regrown.changes == () and regrown.changed_since(again.generation) is None  # stacked anew
    store.ingest("node-new", samples("pod-0", 2), placement)
    assert store.index(placement).lookup(["node-new"])[0] >= 0


def test_a_query_answers_from_the_last_index_while_a_push_holds_the_store(placement: LoadedModel) -> None:
    """A push encodes its targets under the store's lock; a query finding the index one push old answers from
    it instead of waiting, and the next query after the push gets the new one. Without any index of this
    champion a query waits (there is nothing to answer from)."""
    import threading

    store = HostStore(window_samples=10, stale_after_s=30, max_hosts=50)
    store.ingest("node-a", samples("pod-0", 3), placement)
    first = store.index(placement)
    store.ingest("node-b", samples("pod-0", 3), placement)  # the index is now one push old
    with store._lock:  # as a push encoding right now
        found: list[object] = []
        query = threading.Thread(target=lambda: found.append(store.index(placement)))
        query.start()
        query.join(timeout=5)
        assert not query.is_alive() and found == [first]  # answered at once, from the last index
    fresh = store.index(placement)
    assert fresh is not first and fresh.lookup(["node-b"])[0] >= 0
    empty = HostStore(window_samples=10, stale_after_s=30, max_hosts=50)
    empty.ingest("node-a", samples("pod-0", 3), placement)
    with empty._lock:
        waiting = threading.Thread(target=lambda: empty.index(placement))
        waiting.start()
        waiting.join(timeout=0.3)
        assert waiting.is_alive()  # no index yet: it waits for the push
    waiting.join(timeout=5)
    assert not waiting.is_alive() and empty._index is not None
