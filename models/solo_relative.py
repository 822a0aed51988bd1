"""The solo-relative heuristic as a servable monitoring model: P = min(1, the target's CPU use over the run
relative to its solo profile's), nothing learned (``models/solo_prior.py``). The same answer as the reference
every evaluation reports (``training/references.py``), trained and served as any tabular model, so that the
promotion can pick it when no learned model beats it on validation programs; its interval is calibrated as
theirs (out-of-fold residuals, then conformal on validation programs)."""

from __future__ import annotations

from typing import Any

from cotenant.models.base import DataShape, ModelConfig, ModelSpec, PriorRate, SwitchGateChoice, register


class SoloRelativeConfig(ModelConfig):
    # "switches": the switch-gated prior (two numbers, its gate, fitted on the training runs; nothing else).
    prior: PriorRate = "cpu"
    # With ``prior="switches"``: how its gate is chosen (``models/base.py`` ``SwitchGateChoice``).
    switch_gate_choice: SwitchGateChoice = "runs"


def build(cfg: SoloRelativeConfig, shape: DataShape) -> Any:
    from cotenant.models.solo_prior import SoloPriorRegressor
    from sklearn.dummy import DummyRegressor

    # The departures from the prior are answered as 0: the heuristic itself.
    return SoloPriorRegressor(
        DummyRegressor(strategy="constant", constant=0.0),
        requires_prior=True,
        rate=cfg.prior,
        gate=cfg.switch_gate_choice,
    )


register(
    ModelSpec(
        "solo-relative", "monitoring", "tabular", SoloRelativeConfig, build, "no-learning reference, servable"
    )
)
