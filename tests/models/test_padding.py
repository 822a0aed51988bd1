"""Padding never changes a prediction: masks hide padded steps from every sequence model."""

from __future__ import annotations

import pytest
import torch
from cotenant.models import MODELS
from cotenant.models.base import DataShape

SEQUENCE_MODELS = [n for n, s in MODELS.items() if s.task == "monitoring" and s.family == "neural"]
# Options that change how a model reads a run's steps (CloudFormer's temporal segments of the system branch).
VARIANTS = [(name, {}) for name in SEQUENCE_MODELS] + [("cloudformer", {"system_segments": 3})]


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_padding_does_not_change_outputs(name: str, options: dict[str, int]) -> None:
    torch.manual_seed(0)
    spec = MODELS[name]
    model = spec.build(
        spec.config_type.model_validate(options), DataShape(n_features=10, n_profile_features=0, max_steps=32)
    ).eval()
    short = torch.randn(1, 7, 10)
    alone = model(short, torch.ones(1, 7, dtype=torch.bool))
    padded = torch.cat([short, torch.randn(1, 13, 10) * 50], dim=1)  # garbage in the padded tail
    mask = torch.zeros(1, 20, dtype=torch.bool)
    mask[:, :7] = True
    other = torch.randn(1, 20, 10)
    batch = model(torch.cat([padded, other]), torch.cat([mask, torch.ones(1, 20, dtype=torch.bool)]))
    torch.testing.assert_close(batch[:1], alone, rtol=1e-5, atol=1e-5)
    assert alone.shape == (1, 3) and bool(((alone > 0) & (alone < 1)).all())


def test_cloudformer_widths_follow_the_paper() -> None:
    spec = MODELS["cloudformer"]
    model = spec.build(spec.config_type(), DataShape(206, 0, 128))
    temporal = sum(p.numel() for p in model.temporal.parameters())
    system = sum(p.numel() for p in model.system.parameters())
    assert 200_000 < temporal < 240_000  # the paper's ~222k
    assert system < 20_000  # the narrow system branch (see module docstring)
