"""serving/scoring.py: the extender's per-workload medians, kept between requests and scored again only
where a host changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from cotenant.serving import scoring
from cotenant.serving.hosts import HostStore
from cotenant.serving.models import LoadedModel
from cotenant.serving.schemas import IngestSample
from serving_champions import METRICS, placement_predictor


@pytest.fixture(scope="module")
def placement() -> LoadedModel:
    return LoadedModel("cotenant-placement", "1", placement_predictor(1))


def samples(target: str, seconds: int, start: int = 0, value: float = 1.0) -> list[IngestSample]:
    base = datetime.now(UTC) - timedelta(seconds=20)
    return [
        IngestSample(
            timestamp=base + timedelta(seconds=start + s),
            target=target,
            metrics={m: value * (1 + (s + i) % 3) for i, m in enumerate(METRICS)},
        )
        for s in range(seconds)
    ]


def newcomer_of(placement: LoadedModel, value: float) -> np.ndarray:
    series = {m: np.full(12, value * (1 + i % 4)) for i, m in enumerate(METRICS)}
    return placement.predictor.encode_profile(series)


def assert_same(kept: scoring.CandidateScores, fresh: scoring.CandidateScores) -> None:
    np.testing.assert_array_equal(kept.scored, fresh.scored)
    np.testing.assert_array_equal(kept.newcomer_p, fresh.newcomer_p)
    np.testing.assert_array_equal(kept.worst_incumbent_p, fresh.worst_incumbent_p)
    np.testing.assert_array_equal(kept.score, fresh.score)


def test_kept_medians_are_the_fresh_ones_and_only_changed_hosts_are_scored_again(
    placement: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HostStore(window_samples=10, stale_after_s=60, max_hosts=50)
    for h in range(10):
        for t in range(h % 3):  # every third host empty
            store.ingest(f"node-{h}", samples(f"pod-{t}", 3, value=1.0 + h + t), placement)
        if h % 3 == 0:
            store.ingest(f"node-{h}", samples("host", 3, value=1.0), placement)  # heartbeat only
    newcomer = newcomer_of(placement, 2.0)
    cache = scoring.MedianCache(max_workloads=4)
    kept = cache.workload("web", placement, newcomer)
    assert kept is not None
    scored: list[int] = []
    real = scoring.host_medians

    def counting(newcomer: np.ndarray, batch: Any, placement: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
        scored.append(len(batch.counts))
        return real(newcomer, batch, placement)

    monkeypatch.setattr(scoring, "host_medians", counting)

    def both(hosts: list[str]) -> scoring.CandidateScores:
        answer = scoring.score_candidates(newcomer, hosts, store, placement, kept)
        before = len(scored)
        assert_same(answer, scoring.score_candidates(newcomer, hosts, store, placement))
        del scored[before:]  # the uncached reference's own call
        return answer

    hosts = [f"node-{h}" for h in range(6)] + ["node-x"]  # an unknown node stays neutral
    first = both(hosts)
    assert scored == [6] and first.scored.tolist() == [True] * 6 + [False]
    both(hosts)
    assert scored == [6]  # nothing changed: nothing scored again
    both([f"node-{h}" for h in range(10)])
    assert scored == [6, 4]  # only the four hosts never asked about
    store.ingest("node-4", samples("pod-0", 2, start=3, value=9.0), placement)  # same incumbents, new load
    changed = both(hosts)
    assert scored == [6, 4, 1] and changed.newcomer_p[4] != first.newcomer_p[4]
    store.ingest("node-3", samples("pod-5", 3, value=4.0), placement)  # a new incumbent: new layout
    both(hosts)
    assert scored == [6, 4, 1, 6]
    # A profile registered again (a new encoding) starts afresh; the least recently asked workload goes.
    assert cache.workload("web", placement, newcomer) is kept
    assert cache.workload("web", placement, newcomer_of(placement, 2.0)) is not kept
    for name in ("a", "b", "c", "d"):
        cache.workload(name, placement, newcomer)
    assert len(cache._workloads) == 4 and ("web", placement.key) not in cache._workloads
    assert scoring.MedianCache(max_workloads=0).workload("web", placement, newcomer) is None
