"""The system branch's temporal segments: per-stretch means per metric, blind to padding, seeing trends."""

from __future__ import annotations

import torch
from cotenant.models import MODELS
from cotenant.models.base import DataShape
from cotenant.models.cloudformer.module import pooled_metrics, segment_means


def test_segment_means_split_each_runs_real_steps_into_equal_stretches() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2).repeat(2, 1, 1)  # steps 0..5, 2 metrics
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False  # the second run has 4 real steps
    means = segment_means(x, mask, 2)
    assert means.shape == (2, 2, 2)
    # run 0: steps 0-2 and 3-5 -> metric 0 values (0, 2, 4) and (6, 8, 10)
    torch.testing.assert_close(means[0, :, 0], torch.tensor([2.0, 8.0]))
    # run 1: steps 0-1 and 2-3 -> (0, 2) and (4, 6); its padded steps count nowhere
    torch.testing.assert_close(means[1, :, 0], torch.tensor([1.0, 5.0]))
    torch.testing.assert_close(pooled_metrics(x, mask)[1], torch.tensor([3.0, 4.0]))
    short = segment_means(x[:1, :2], mask[:1, :2], 3)  # 2 steps, 3 stretches: one stays empty (0)
    assert int((short[0, :, 0] == 0).sum()) >= 1


def _system_only(segments: int) -> torch.nn.Module:
    spec = MODELS["system-only"]
    cfg = spec.config_type.model_validate({"system_segments": segments, "system_patch": 2, "dropout": 0.0})
    torch.manual_seed(0)
    return spec.build(cfg, DataShape(n_features=4, n_profile_features=0, max_steps=16)).eval()


def test_segments_let_the_system_branch_tell_a_rising_metric_from_a_falling_one() -> None:
    rising = torch.linspace(-1, 1, 8)[None, :, None].repeat(1, 1, 4)  # [1, 8, 4], every metric rising
    falling = rising.flip(1)  # the same values, so the same mean, in the other order
    mask = torch.ones(1, 8, dtype=torch.bool)
    flat = _system_only(1)
    torch.testing.assert_close(flat(rising, mask), flat(falling, mask))  # the paper's mean cannot tell
    segmented = _system_only(4)
    assert not torch.allclose(segmented(rising, mask), segmented(falling, mask), atol=1e-4)


def test_one_segment_keeps_the_papers_token_embedding() -> None:
    spec = MODELS["cloudformer"]
    plain = spec.build(spec.config_type(), DataShape(40, 0, 16))
    assert plain.system.embed.weight.shape == (16, 1, 8)  # width 16, one channel, patch of 8 metrics
    model = spec.build(spec.config_type.model_validate({"system_segments": 3}), DataShape(40, 0, 16))
    assert model.system.embed.weight.shape == (16, 3, 8)
