"""Cached host encodings give the same P as the full model run on the same neighbours."""

from __future__ import annotations

import numpy as np
import torch
from cotenant.models.base import GROUPS
from cotenant.models.host_batch import HostEncoding
from cotenant.models.placement import PlacementConfig, PlacementModel
from cotenant.models.predictor import Predictor, PredictorMetadata


def test_host_sum_view_matches_full_forward() -> None:
    torch.manual_seed(0)
    features = 12
    model = PlacementModel(features, PlacementConfig()).eval()
    groups = [GROUPS[i % 5] for i in range(features)]
    meta = PredictorMetadata(
        model_name="placement",
        task="placement",
        family="neural",
        config={},
        features=[f"f{i}" for i in range(features)],
        metrics=[],
        host_metrics=[],
        metric_groups={},
        feature_groups=groups,
        normaliser={"names": [], "mean": [], "std": []},
        max_steps=1,
        n_inputs=features,
    )
    predictor = Predictor(meta, model)
    summaries = np.random.default_rng(0).normal(size=(4, features)).astype(np.float32)
    encoded = predictor.encode_summaries(summaries)  # [4, V, E]
    host = predictor.encode_host([encoded[1], encoded[2], encoded[3]])
    [scored] = predictor.score_placement(encoded[0], [host])
    with torch.inference_mode():
        x = torch.from_numpy(summaries)
        newcomer = (
            model(x[:1], x[None, 1:], torch.ones(1, 3, dtype=torch.bool))[0].sort().values[1]
        )  # sorted, as the predictor reports
        # incumbent 0 (profile 1) sees the newcomer and the two other incumbents
        incumbent = model(x[1:2], x[None, [0, 2, 3]], torch.ones(1, 3, dtype=torch.bool))[0].sort().values[1]
    assert abs(scored.newcomer.p - newcomer.item()) < 1e-5
    assert abs(scored.incumbents[0].p - incumbent.item()) < 1e-5
    assert set(scored.newcomer.drivers) == set(GROUPS[:5])


def _metadata(family: str, features: int, **extra: object) -> PredictorMetadata:
    return PredictorMetadata(
        model_name="placement" if family == "neural" else "placement-forest",
        task="placement",
        family=family,  # type: ignore[arg-type]
        config={},
        features=[f"f{i}" for i in range(features)],
        metrics=[],
        host_metrics=[],
        metric_groups={},
        feature_groups=[GROUPS[i % 5] for i in range(features)],
        normaliser={"names": [], "mean": [], "std": []},
        max_steps=1,
        n_inputs=features,
        **extra,  # type: ignore[arg-type]
    )


def _direct(predictor: Predictor, summaries: np.ndarray, own: int, others: list[int]) -> float:
    """P of profile `own` beside `others`, through the task's batch layout (no host cache)."""
    neighbours = np.zeros((1, 4, summaries.shape[1]), np.float32)
    mask = np.zeros((1, 4), bool)
    neighbours[0, : len(others)] = summaries[others]
    mask[0, : len(others)] = True
    return float(predictor.predict_placement(summaries[own : own + 1], neighbours, mask)[0, 1])


HOSTS = [[], [1], [2, 3, 4]]  # incumbents (profile rows) per candidate host; the newcomer is row 0


def _check_every_row(predictor: Predictor, summaries: np.ndarray) -> None:
    encoded = predictor.encode_summaries(summaries)
    batch = predictor.stack_hosts([predictor.encode_host([encoded[i] for i in host]) for host in HOSTS])
    quantiles, _, offsets = predictor.score_placement_arrays(encoded[0], batch, explain=False)
    assert offsets.tolist() == [0, 1, 3, 7]
    for h, host in enumerate(HOSTS):
        rows = quantiles[offsets[h] : offsets[h + 1], 1]
        assert abs(rows[0] - _direct(predictor, summaries, 0, host)) < 1e-5
        for j, incumbent in enumerate(host):
            others = [0, *[i for i in host if i != incumbent]]
            assert abs(rows[1 + j] - _direct(predictor, summaries, incumbent, others)) < 1e-5


def test_stacked_hosts_match_the_batch_layout_for_every_row() -> None:
    """Hosts of 0, 1 and 3 incumbents: the precomputed neural head gives the full model's P on every row."""
    torch.manual_seed(1)
    features = 10
    model = PlacementModel(features, PlacementConfig()).eval()
    summaries = np.random.default_rng(1).normal(size=(5, features)).astype(np.float32)
    _check_every_row(Predictor(_metadata("neural", features), model), summaries)


def test_tabular_placement_baseline_scores_through_the_same_calls() -> None:
    """placement-forest: the summary is its own embedding, so host caching works for it unchanged."""
    from cotenant.models.placement import placement_features
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(2)
    features = 6
    summaries = rng.normal(size=(5, features)).astype(np.float32)
    x = placement_features(
        rng.normal(size=(64, features)), rng.normal(size=(64, features)), rng.integers(0, 4, 64)
    )
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, rng.uniform(0.3, 1.0, 64))
    predictor = Predictor(_metadata("tabular", features, residual_quantiles=[-0.1, 0.1]), forest)
    _check_every_row(predictor, summaries)


FLEET = [[1, 2], [], [3], [4, 5, 6], [7, 8]]  # incumbents per host, by workload


def _neural_fleet(seed: int) -> tuple[Predictor, np.ndarray, list[HostEncoding]]:
    """A seeded neural placement predictor, nine encoded workloads and ``FLEET``'s hosts."""
    torch.manual_seed(seed)
    features = 8
    predictor = Predictor(_metadata("neural", features), PlacementModel(features, PlacementConfig()).eval())
    encoded = predictor.encode_summaries(
        np.random.default_rng(seed).normal(size=(9, features)).astype(np.float32)
    )
    return predictor, encoded, [predictor.encode_host([encoded[i] for i in host]) for host in FLEET]


def test_selecting_hosts_from_a_stacked_batch_scores_like_stacking_them_alone() -> None:
    """A service stacks its whole fleet once and selects each query's candidates (any order, repeats)."""
    predictor, encoded, hosts = _neural_fleet(3)
    rows = np.array([3, 1, 4, 3, 0])
    selected = predictor.stack_hosts(hosts).select(rows)
    alone = predictor.stack_hosts([hosts[r] for r in rows])
    got = predictor.score_placement_arrays(encoded[0], selected)
    want = predictor.score_placement_arrays(encoded[0], alone)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_medians_only_selection_keeps_one_variant_and_scores_the_same() -> None:
    """The extender's path gathers only the unoccluded variant; the whole fleet in order is taken as views."""
    predictor, encoded, hosts = _neural_fleet(4)
    stacked = predictor.stack_hosts(hosts)
    assert stacked.totals.shape[1] > 1  # occlusion variants exist, so keeping one is a real saving
    for rows in (np.array([3, 1, 4, 3, 0]), np.arange(len(FLEET))):
        narrow = stacked.select(rows, variants=1)
        assert narrow.totals.shape[1] == 1 and narrow.incumbents.shape[1] == 1
        got = predictor.score_placement_arrays(encoded[0], narrow, explain=False)
        want = predictor.score_placement_arrays(encoded[0], stacked.select(rows), explain=False)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    whole = stacked.select(np.arange(len(FLEET)), variants=1)
    assert np.shares_memory(whole.totals, stacked.totals)  # no copy of the fleet per query


def test_a_fleet_stacked_with_one_variant_scores_medians_as_the_full_stack_does() -> None:
    """The service's fleet index stacks the unoccluded variant only (V times less to stack and gather)."""
    predictor, encoded, hosts = _neural_fleet(5)
    narrow = predictor.stack_hosts(hosts, variants=1)
    full = predictor.stack_hosts(hosts)
    assert narrow.totals.shape[1] == 1 < full.totals.shape[1]
    assert narrow.host_part is not None and narrow.host_part.shape[1] == 1
    got = predictor.score_placement_arrays(encoded[0], narrow, explain=False)
    want = predictor.score_placement_arrays(encoded[0], full, explain=False)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert np.ptp(got[0][:, 1]) > 0
