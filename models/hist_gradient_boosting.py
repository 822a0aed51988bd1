"""Histogram gradient boosting baseline: the usual strongest tabular model, beyond the paper's table."""

from __future__ import annotations

from typing import Any, Literal

from cotenant.models.base import DataShape, ModelConfig, ModelSpec, PriorRate, SwitchGateChoice, register


class HistGradientBoostingConfig(ModelConfig):
    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    seed: int = 0
    # absolute_error fits the median, what an MAE rewards, and heeds a noisy label's size less.
    loss: Literal["squared_error", "absolute_error"] = "squared_error"
    # Learn the departures from the solo-relative heuristic rather than P itself (models/solo_prior.py).
    solo_prior: bool = False
    # With ``solo_prior``: which rates the prior reads (``models/solo_prior.py`` ``PriorRate``).
    prior: PriorRate = "cpu"
    # With ``prior="switches"``: how its gate is chosen (``models/base.py`` ``SwitchGateChoice``).
    switch_gate_choice: SwitchGateChoice = "runs"


def build(cfg: HistGradientBoostingConfig, shape: DataShape) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    estimator = HistGradientBoostingRegressor(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        loss=cfg.loss,
        random_state=cfg.seed,
    )
    if not cfg.solo_prior:
        return estimator
    from cotenant.models.solo_prior import SoloPriorRegressor

    return SoloPriorRegressor(estimator, rate=cfg.prior, gate=cfg.switch_gate_choice)


register(
    ModelSpec(
        "hist-gradient-boosting", "monitoring", "tabular", HistGradientBoostingConfig, build, "extra baseline"
    )
)
