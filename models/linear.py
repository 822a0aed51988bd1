"""Linear regression baseline (Table IV) on standardised per-run summary features."""

from __future__ import annotations

from typing import Any

from cotenant.models.base import DataShape, ModelConfig, ModelSpec, register


class LinearConfig(ModelConfig):
    pass


def build(cfg: LinearConfig, shape: DataShape) -> Any:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LinearRegression())


register(ModelSpec("linear", "monitoring", "tabular", LinearConfig, build, "Table IV baseline"))
