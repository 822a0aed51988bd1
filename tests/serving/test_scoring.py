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


def test_expected_misses_add_the_newcomers_chance_to_the_rise_of_each_incumbents(
    placement: LoadedModel,
) -> None:
    """Per host: the newcomer's chance under the minimum plus each incumbent's rise in its own, against the
    host as it runs now, the baseline being each incumbent scored as a newcomer beside the others alone."""
    from cotenant.models.base import probability_below

    store = HostStore(window_samples=10, stale_after_s=60, max_hosts=50)
    for h, load in enumerate((0.3, 1.5, 3.0)):
        for t in range(1 + h):
            store.ingest(f"node-{h}", samples(f"pod-{t}", 3, value=load + t), placement)
    store.ingest("node-3", samples("host", 3, value=1.0), placement)  # no incumbents
    hosts = [f"node-{h}" for h in range(4)]
    predictor = placement.predictor
    heavy = newcomer_of(placement, 3.0)
    minimum = 0.6
    answer = scoring.score_candidates(heavy, hosts, store, placement, misses_below=minimum)
    medians_only = scoring.score_candidates(heavy, hosts, store, placement)
    assert answer.expected_misses is not None and medians_only.expected_misses is None
    np.testing.assert_allclose(answer.newcomer_p, medians_only.newcomer_p, rtol=1e-6)
    np.testing.assert_allclose(answer.worst_incumbent_p, medians_only.worst_incumbent_p, rtol=1e-6)
    index = store.index(placement)
    rises = []
    for position, host in enumerate(hosts):
        encoding = index.snapshots[index.lookup([host])[0]].encoding
        with_newcomer = predictor.score_placement(heavy, [encoding], explain=False)[0]
        own = [with_newcomer.newcomer.lower, with_newcomer.newcomer.p, with_newcomer.newcomer.upper]
        expected = float(probability_below(np.array([own]), minimum)[0])
        embeddings = encoding.embeddings
        for i, incumbent in enumerate(with_newcomer.incumbents):
            others = predictor.encode_host(list(np.delete(embeddings, i, axis=0)))
            now = predictor.score_placement(embeddings[i], [others], explain=False)[0].newcomer
            chance_now = probability_below(np.array([[now.lower, now.p, now.upper]]), minimum)[0]
            beside = probability_below(np.array([[incumbent.lower, incumbent.p, incumbent.upper]]), minimum)
            rises.append(float(beside[0] - chance_now))
            expected += max(0.0, rises[-1])
        assert answer.expected_misses[position] == pytest.approx(expected, abs=1e-5), host
    assert answer.expected_misses[3] == 0.0  # alone, the newcomer runs as in its solo profile
    assert max(rises) > 0.05, f"a heavy newcomer raises no incumbent's chance of a miss: {rises}"
    light_newcomer = newcomer_of(placement, 0.1)
    light = scoring.score_candidates(light_newcomer, hosts, store, placement, misses_below=minimum)
    assert light.expected_misses is not None
    assert (light.expected_misses <= answer.expected_misses + 1e-9).all()
    assert (light.expected_misses < answer.expected_misses - 0.5).any(), (light.expected_misses, answer)
