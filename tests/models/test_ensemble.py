"""A deep ensemble: distinct members, the mean of their answers, one loss per member, one artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


def _first_member_gradients(model: MemberEnsemble) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.members[0].parameters() if p.grad is not None]


def _assert_same_gradients(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert got and len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


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
    got = _first_member_gradients(model)
    model.zero_grad()
    # The member's gradient from its own loss, over M as the ensemble's loss is the members' mean.
    own = quantile_loss(model.members[0](batch["x"], batch["mask"]), batch["y"]) / len(model.members)
    own.backward()
    expected = _first_member_gradients(model)
    _assert_same_gradients(got, expected)
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


def test_a_member_never_learns_from_the_runs_held_out_from_it() -> None:
    from cotenant.datasets.torch_data import HELD_OUT_BY

    torch.manual_seed(0)
    model = _ensemble(members=2).eval()
    module = RegressionModule(model, OptimConfig(), total_steps=1)
    batch = _batch() | {HELD_OUT_BY: torch.tensor([0, 0, 0, 1, 1, 1])}
    module.training_step(batch, 0).backward()
    got = _first_member_gradients(model)
    model.zero_grad()
    # Member 0's gradient is that of its loss on runs 3-5 only (those of member 1's held-out programs).
    kept = slice(3, 6)
    own = quantile_loss(model.members[0](batch["x"][kept], batch["mask"][kept]), batch["y"][kept]) / 2
    own.backward()
    expected = _first_member_gradients(model)
    _assert_same_gradients(got, expected)
    # A batch holding only runs held out from member 0 leaves it untouched; member 1 still learns.
    model.zero_grad()
    module.training_step(batch | {HELD_OUT_BY: torch.zeros(6, dtype=torch.long)}, 0).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.members[0].parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.members[1].parameters())


def test_members_holding_out_programs_calibrate_on_the_training_programs_out_of_fold() -> None:
    from cotenant.datasets.splits import program_of
    from cotenant.training.fit import program_shares

    table = load_source("synthetic", n_apps=6, n_runs=60, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    options = {"members": 2, "blocks": 1, "width": 16, "feed_forward": 32}
    cfg = TrainConfig(model="cloudformer", epochs=2, batch_size=16, progress=False, model_options=options)
    plain = fit_model(table, split, cfg).predictor.metadata
    held = fit_model(
        table, split, cfg.model_copy(update={"model_options": options | {"members_hold_out_programs": True}})
    ).predictor.metadata
    # Without it a neural model calibrates on the validation programs alone; with it every training run
    # adds the score of the member that never trained on its program.
    assert plain.calibration_training_runs == 0 and held.calibration_runs == plain.calibration_runs > 0
    assert held.calibration_training_runs == len(split.train_runs)
    applications = table.runs.filter(table.runs["run_id"].is_in(split.train_runs))["application"].to_numpy()
    shares = program_shares(applications, 2)
    # Each program's runs are all held out from one member; both members hold some out.
    by_program: dict[str, set[int]] = {}
    for application, share in zip(applications, shares, strict=True):
        by_program.setdefault(program_of(str(application)), set()).add(int(share))
    assert all(len(found) == 1 for found in by_program.values()) and set(shares.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="members_hold_out_programs"):
        program_shares(applications, 1)
