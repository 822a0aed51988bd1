"""A deep ensemble: distinct members, the mean of their answers, one loss per member, one artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.models import MODELS
from cotenant.models.base import DataShape, quantile_loss
from cotenant.models.ensemble import MemberEnsemble
from cotenant.models.predictor import Predictor
from cotenant.training.config import OptimConfig, TrainConfig
from cotenant.training.fit import fit_model
from cotenant.training.loop import RegressionModule


def _ensemble(members: int = 3) -> MemberEnsemble:
    spec = MODELS["cloudformer"]
    cfg = spec.config_type.model_validate({"members": members, "blocks": 1})
    model = spec.build(cfg, DataShape(n_features=10, n_profile_features=10, max_steps=8))
    assert isinstance(model, MemberEnsemble)
    return model


def _batch(n: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(n, 8, dtype=torch.bool)
    mask[0, 5:] = False
    x = torch.randn(n, 8, 10, generator=generator)
    return {"x": x, "mask": mask, "y": torch.rand(n, generator=generator)}


def test_members_start_apart_and_the_ensemble_answers_their_mean() -> None:
    torch.manual_seed(0)
    model = _ensemble().eval()
    first, second = (dict(member.named_parameters()) for member in model.members[:2])
    assert any(not torch.equal(first[name], second[name]) for name in first)
    batch = _batch()
    with torch.no_grad():
        answers = model.member_outputs(x=batch["x"], mask=batch["mask"])
        assert not torch.allclose(answers[0], answers[1])
        torch.testing.assert_close(model(batch["x"], batch["mask"]), torch.stack(answers).mean(0))
        torch.testing.assert_close(model(x=batch["x"], mask=batch["mask"]), torch.stack(answers).mean(0))


def test_each_member_learns_from_its_own_answer_not_the_average() -> None:
    torch.manual_seed(0)
    model = _ensemble().eval()  # no dropout: the two computations below see the same forward pass
    module = RegressionModule(model, OptimConfig(), total_steps=1)
    batch = _batch()
    module.training_step(batch, 0).backward()
    got = [p.grad.clone() for p in model.members[0].parameters() if p.grad is not None]
    model.zero_grad()
    # The member's gradient from its own loss, over M as the ensemble's loss is the members' mean.
    own = quantile_loss(model.members[0](batch["x"], batch["mask"]), batch["y"]) / len(model.members)
    own.backward()
    expected = [p.grad.clone() for p in model.members[0].parameters() if p.grad is not None]
    assert got and len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)
    model.zero_grad()
    averaged = quantile_loss(model(batch["x"], batch["mask"]), batch["y"])
    averaged.backward()
    coupled = [p.grad for p in model.members[0].parameters() if p.grad is not None]
    assert any(not torch.allclose(g, c) for g, c in zip(got, coupled, strict=True))


def test_an_ensemble_trains_and_round_trips_as_one_predictor(tmp_path: Path) -> None:
    table = load_source("synthetic", n_apps=6, n_runs=48, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    cfg = TrainConfig(
        model="cloudformer",
        epochs=2,
        batch_size=16,
        progress=False,
        model_options={"members": 2, "blocks": 1, "width": 16, "feed_forward": 32},
    )
    outcome = fit_model(table, split, cfg)
    assert isinstance(outcome.predictor.model, MemberEnsemble)
    assert outcome.predictor.metadata.config["members"] == 2
    outcome.predictor.save(tmp_path / "predictor")
    loaded = Predictor.load(tmp_path / "predictor")
    assert isinstance(loaded.model, MemberEnsemble)
    runs = [np.random.default_rng(0).normal(size=(4, len(loaded.metadata.features))).astype(np.float32)]
    np.testing.assert_allclose(loaded.predict_normalised(runs), outcome.predictor.predict_normalised(runs))
    assert outcome.predicted.shape == (len(outcome.labels), 3) and np.isfinite(outcome.predicted).all()
