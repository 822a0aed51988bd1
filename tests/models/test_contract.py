"""Contract over the whole registry: tiny fit -> save -> load -> identical predictions, intervals, drivers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import RunTable
from cotenant.datasets.splits import leave_applications_out
from cotenant.models import MODELS
from cotenant.models.base import GROUPS
from cotenant.models.predictor import Predictor
from cotenant.training.config import TrainConfig
from cotenant.training.fit import fit_model
from solo_tables import NEEDS_SOLO_PROFILES, with_cpu_rate

FAST = {"random-forest": {"search_iterations": 2}, "decision-tree": {"search_iterations": 2}}


def _series(frame: pl.DataFrame, prefix: str) -> dict[str, np.ndarray]:
    return {c.removeprefix(prefix): frame[c].to_numpy() for c in frame.columns if c.startswith(prefix)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_save_load_predicts_identically(name: str, tiny_table: RunTable, tmp_path: Path) -> None:
    tiny_table = with_cpu_rate(tiny_table) if name in NEEDS_SOLO_PROFILES else tiny_table
    cfg = TrainConfig(model=name, epochs=1, batch_size=8, progress=False, model_options=FAST.get(name, {}))
    outcome = fit_model(tiny_table, leave_applications_out(tiny_table, 0), cfg)
    assert outcome.predicted.shape == (len(outcome.labels), 3)
    assert np.all((outcome.predicted > 0) & (outcome.predicted <= 1))
    # ordered by construction (sort_quantiles); what can fail is an interval that says nothing
    widths = outcome.predicted[:, 2] - outcome.predicted[:, 0]
    assert np.all(widths >= 0) and (widths > 1e-6).any(), "intervals collapsed to the median"
    outcome.predictor.save(tmp_path / "artifact")
    assert not list((tmp_path / "artifact").glob("*.pkl"))
    loaded = Predictor.load(tmp_path / "artifact")
    assert loaded.metadata == outcome.predictor.metadata
    run_id = outcome.test_runs[0]
    if MODELS[name].task == "monitoring":
        frame = tiny_table.telemetry.filter(pl.col("run_id") == run_id).sort("second")
        target, neighbour, host = (
            _series(frame, "self__"),
            _series(frame, "neighbour_mean__"),
            _series(frame, "host__"),
        )
        # The target's solo profile, as a request names it (only models reading vs_solo__ inputs use it).
        profile_id = tiny_table.runs.filter(pl.col("run_id") == run_id)["target_profile"][0]
        profile = tiny_table.profiles.filter(pl.col("profile_id") == profile_id)
        solo = {m: profile[m].to_numpy() for m in tiny_table.profile_metrics}
        before = outcome.predictor.predict_degradation(target, [neighbour], host, solo)
        after = loaded.predict_degradation(target, [neighbour], host, solo)
        assert not before.missing
        assert before == after
        assert before.lower <= before.p <= before.upper
        assert set(before.drivers) <= set(GROUPS)
        assert sum(before.drivers.values()) == pytest.approx(1.0, abs=1e-6) or not any(
            before.drivers.values()
        )
        dropped = next(iter(target))
        missing = loaded.predict_degradation(
            {k: v for k, v in target.items() if k != dropped}, [neighbour], host, solo
        )
        # Every input read from the dropped series is missing: its own rate, and its rate over the profile.
        wanted = tuple(
            f for f in loaded.metadata.features if f in (f"self__{dropped}", f"vs_solo__{dropped}")
        )
        assert missing.missing == wanted and wanted[0] == f"self__{dropped}"
    else:
        profiles = tiny_table.profiles.sort("profile_id", "second")
        first, second, third = profiles["profile_id"].unique(maintain_order=True)[:3]
        series = [
            _series(profiles.filter(pl.col("profile_id") == p).drop("profile_id", "second"), "")
            for p in (first, second, third)
        ]
        for predictor in (outcome.predictor, loaded):
            new = predictor.encode_profile(series[0])
            host = predictor.encode_host([predictor.encode_profile(s) for s in series[1:]])
            scored = predictor.score_placement(new, [host, predictor.encode_host([])])
            assert len(scored[0].incumbents) == 2 and scored[1].incumbents == []
            alone = scored[1].newcomer  # nobody beside it: P = 1, as in its solo profile
            assert (alone.p, alone.lower, alone.upper) == (1.0, 1.0, 1.0)
        a = outcome.predictor.score_placement(outcome.predictor.encode_profile(series[0]), [host])
        b = loaded.score_placement(
            loaded.encode_profile(series[0]),
            [loaded.encode_host([loaded.encode_profile(s) for s in series[1:]])],
        )
        assert a == b
