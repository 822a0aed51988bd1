"""Decision tree baseline (Table IV), tuned by randomised search with application-grouped cross-validation.

The paper used Bayesian search; a randomised search over the same kind of space needs no extra dependency.
"""

from __future__ import annotations

from typing import Any

from cotenant.models.base import DataShape, ModelConfig, ModelSpec, register


class DecisionTreeConfig(ModelConfig):
    search_iterations: int = 12
    seed: int = 0


def build(cfg: DecisionTreeConfig, shape: DataShape) -> Any:
    from sklearn.model_selection import RandomizedSearchCV
    from sklearn.tree import DecisionTreeRegressor

    space = {
        "max_depth": [3, 4, 6, 8, 12, None],
        "min_samples_leaf": [1, 2, 4, 8, 16],
        "max_features": [None, "sqrt", 0.3],
    }
    return RandomizedSearchCV(
        DecisionTreeRegressor(random_state=cfg.seed),
        space,
        n_iter=cfg.search_iterations,
        scoring="neg_mean_absolute_error",
        random_state=cfg.seed,
    )


register(ModelSpec("decision-tree", "monitoring", "tabular", DecisionTreeConfig, build, "Table IV baseline"))
