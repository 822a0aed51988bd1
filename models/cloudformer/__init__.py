"""CloudFormer (dual-branch Transformer) and its two ablations, registered as monitoring models.

Parts: ``config`` (typed config), ``module`` (the nn.Module: branches + fusion head). Training uses the one
Lightning loop in ``cotenant.training.loop``; the artifact is the common ``cotenant.models.predictor``.
"""

from __future__ import annotations

from cotenant.models.base import DataShape, ModelSpec, register
from cotenant.models.cloudformer.config import CloudFormerConfig
from cotenant.models.cloudformer.module import CloudFormer
from cotenant.models.ensemble import maybe_ensemble
from torch import nn

__all__ = ["CloudFormer", "CloudFormerConfig"]


def _builder(temporal: bool, system: bool):
    def build(cfg: CloudFormerConfig, shape: DataShape) -> nn.Module:
        return maybe_ensemble(
            lambda: CloudFormer(shape.n_features, shape.max_steps, temporal=temporal, system=system, cfg=cfg),
            cfg.members,
        )

    return build


register(
    ModelSpec("cloudformer", "monitoring", "neural", CloudFormerConfig, _builder(True, True), "both branches")
)
register(
    ModelSpec(
        "temporal-only", "monitoring", "neural", CloudFormerConfig, _builder(True, False), "Table V ablation"
    )
)
register(
    ModelSpec(
        "system-only", "monitoring", "neural", CloudFormerConfig, _builder(False, True), "Table V ablation"
    )
)
