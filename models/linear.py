"""Linear regression baseline (Table IV) on standardised per-run summary features.

Ridge rather than ordinary least squares: with a few hundred runs and hundreds of summary features, the
unregularised fit extrapolates wildly on programs it has not seen (on synthetic data with known ground truth
it was worse than always answering the mean). The penalty is chosen by grouped cross-validation over the
training applications (``tabular.fit_tabular``), never on held-out ones.
"""

from __future__ import annotations

from typing import Any

from cotenant.models.base import DataShape, ModelConfig, ModelSpec, register
from pydantic import Field


class LinearConfig(ModelConfig):
    alphas: list[float] = Field(default_factory=lambda: [10.0**e for e in range(-2, 5)])


def build(cfg: LinearConfig, shape: DataShape) -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # SVD rather than the default Cholesky solve: with more summary features than runs the small penalties of
    # the grid make the normal equations ill-conditioned (a LinAlgWarning per fit); SVD solves them stably.
    pipeline = make_pipeline(StandardScaler(), Ridge(solver="svd"))
    return GridSearchCV(pipeline, {"ridge__alpha": cfg.alphas}, scoring="neg_mean_absolute_error")


register(ModelSpec("linear", "monitoring", "tabular", LinearConfig, build, "Table IV baseline (ridge)"))
