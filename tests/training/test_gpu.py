"""The one training loop on a CUDA device: same artifact, same answers on the CPU after reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.torch_data import build_placement
from cotenant.models.predictor import Predictor
from cotenant.training.config import TrainConfig
from cotenant.training.fit import _runs_of, fit_model, monitoring_data

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("model", ["cloudformer", "placement"])
def test_trained_on_the_gpu_predicts_the_same_on_the_cpu(model: str, tmp_path: Path) -> None:
    table = load_source("synthetic", n_apps=6, n_runs=60, min_length=6, max_length=10, profile_length=8)
    split = leave_programs_out(table, k=3)[0]
    cfg = TrainConfig(model=model, epochs=2, batch_size=16, progress=False, accelerator="gpu", devices=1)
    outcome = fit_model(table, split, cfg)
    assert outcome.predicted.shape == (len(outcome.labels), 3)
    assert np.isfinite(outcome.predicted).all()
    # The weights left the GPU with training: the artifact is the CPU's, whichever device trained it.
    weights = outcome.predictor.model.state_dict().values()
    assert all(tensor.device.type == "cpu" for tensor in weights)
    outcome.predictor.save(tmp_path / "artifact")
    reloaded = Predictor.load(tmp_path / "artifact")  # weights stored as numpy: loads on the CPU
    assert reloaded.metadata == outcome.predictor.metadata
    if model == "cloudformer":
        again = reloaded.predict_normalised(_runs_of(monitoring_data(table, split, cfg).test))
    else:
        test = build_placement(table, split, clip=cfg.input_clip).test
        again = reloaded.predict_placement(test.newcomer, test.neighbours, test.mask, test.cores)
    # The answers the fit reported for its test runs, made again by the CPU reload: the same to float noise.
    np.testing.assert_allclose(again, outcome.predicted, rtol=0, atol=1e-4)
