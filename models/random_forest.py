"""Random forest baseline (Table IV; the paper's strongest), tuned by randomised search with grouped CV."""

from __future__ import annotations

from typing import Any

from cotenant.models.base import DataShape, ModelConfig, ModelSpec, register


class RandomForestConfig(ModelConfig):
    search_iterations: int = 8
    seed: int = 0
    jobs: int = 2


def build(cfg: RandomForestConfig, shape: DataShape) -> Any:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import RandomizedSearchCV

    space = {
        "n_estimators": [50, 100, 200],
        "max_depth": [6, 10, 16, None],
        "min_samples_leaf": [1, 2, 4, 8],
        "max_features": ["sqrt", 0.3, 1.0],
    }
    return RandomizedSearchCV(
        RandomForestRegressor(random_state=cfg.seed, n_jobs=cfg.jobs),
        space,
        n_iter=cfg.search_iterations,
        scoring="neg_mean_absolute_error",
        random_state=cfg.seed,
    )


register(ModelSpec("random-forest", "monitoring", "tabular", RandomForestConfig, build, "Table IV baseline"))
