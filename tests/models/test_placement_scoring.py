"""Cached host encodings give the same P as the full model run on the same neighbours."""

from __future__ import annotations

import numpy as np
import torch
from cotenant.models.base import GROUPS
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
