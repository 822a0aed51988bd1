"""CloudFormer's self-supervised pretraining: masked reconstruction that learns and ignores labels."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.torch_data import build_monitoring, collate_monitoring
from cotenant.models import MODELS
from cotenant.models.base import DataShape
from cotenant.models.predictor import Predictor
from cotenant.training.config import OptimConfig, TrainConfig
from cotenant.training.fit import fit_model
from cotenant.training.loop import Devices, RunsDataModule, pretrain_neural

SMALL = {"blocks": 1, "width": 16, "feed_forward": 32, "system_patch": 4}


def _data():  # type: ignore[no-untyped-def]
    table = load_source("synthetic", n_apps=6, n_runs=48, min_length=6, max_length=10, profile_length=6)
    return build_monitoring(table, leave_programs_out(table, 3)[0])


def _model(name: str, shape: DataShape, **options: object) -> torch.nn.Module:
    spec = MODELS[name]
    return spec.build(spec.config_type.model_validate({**SMALL, **options}), shape)


def _loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    torch.manual_seed(123)  # the same hidden entries each time
    with torch.no_grad():
        return float(model.eval().reconstruction_loss(batch["x"], batch["mask"]))  # type: ignore[operator]


def test_pretraining_learns_to_rebuild_hidden_values_and_never_reads_labels() -> None:
    data = _data()
    shape = DataShape(len(data.stats.names), 0, 16)
    batch = collate_monitoring([data.train[i] for i in range(len(data.train))])
    weights = []
    for labels in ("real", "shuffled"):
        L.seed_everything(0, verbose=False)
        model = _model("cloudformer", shape, pretrain_epochs=1)
        before = _loss(model, batch)
        train = data.train
        if labels == "shuffled":
            train.y = np.random.default_rng(1).permutation(train.y)
        loader = RunsDataModule(train, [], collate_monitoring, 16, seed=0)
        L.seed_everything(0, verbose=False)
        where = Devices(accelerator="cpu", progress=False)
        pretrain_neural(model.train(), loader, 15, OptimConfig(lr=3e-3), where)
        after = _loss(model, batch)
        assert after < 0.8 * before, (before, after)
        weights.append({key: value.clone() for key, value in model.state_dict().items()})
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])


def test_both_branches_or_either_ablation_pretrain_with_their_own_decoder() -> None:
    shape = DataShape(12, 0, 8)
    x, mask = torch.randn(4, 8, 12), torch.ones(4, 8, dtype=torch.bool)
    for name, decoders in (
        ("cloudformer", {"step_decoder", "metric_decoder"}),
        ("temporal-only", {"step_decoder"}),
        ("system-only", {"metric_decoder"}),
    ):
        model = _model(name, shape, pretrain_epochs=1)
        present = {key.split(".")[0] for key in model.state_dict() if "decoder" in key}
        assert present == decoders, name
        loss = model.reconstruction_loss(x, mask)  # type: ignore[operator]
        loss.backward()
        assert loss.item() > 0
    plain = _model("cloudformer", shape)
    assert not any("decoder" in key for key in plain.state_dict())  # off: the artifact is as before


def test_a_pretrained_ensemble_trains_and_round_trips(tmp_path: Path) -> None:
    table = load_source("synthetic", n_apps=6, n_runs=48, min_length=5, max_length=8, profile_length=6)
    cfg = TrainConfig(
        model="cloudformer",
        epochs=1,
        batch_size=16,
        progress=False,
        model_options={**SMALL, "members": 2, "pretrain_epochs": 1},
    )
    outcome = fit_model(table, leave_programs_out(table, 3)[0], cfg)
    outcome.predictor.save(tmp_path / "p")
    loaded = Predictor.load(tmp_path / "p")
    runs = [np.random.default_rng(0).normal(size=(5, len(loaded.metadata.features))).astype(np.float32)]
    np.testing.assert_allclose(loaded.predict_normalised(runs), outcome.predictor.predict_normalised(runs))
    assert outcome.validation_mae is not None and np.isfinite(outcome.predicted).all()
