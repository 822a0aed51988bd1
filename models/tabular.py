"""Shared machinery of the scikit-learn baselines: pickle-free storage (skops) and grouped cross-validation.

Baselines see per-run summary features (``base.summarise``: mean, std, max over time of every normalised
feature). Their intervals come from out-of-fold residual quantiles (grouped by application), stored in the
predictor metadata, because a point regressor has no quantile heads.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

# skops refuses any type not listed here: loading a predictor can never run arbitrary code.
TRUSTED_PREFIXES = (
    "sklearn.",
    "numpy.",
    "builtins.",
    "cotenant.models.gamma_glm.",
    "cotenant.models.placement_probes.",
    "cotenant.models.solo_prior.",
)


def save_estimator(estimator: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(estimator, path)


def load_estimator(path: Path) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = [name for name in untrusted if not name.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ValueError(f"{path}: refusing to load untrusted types {refused}")
    return sio.load(path, trusted=untrusted)


def grouped_folds(groups: np.ndarray, wanted: int = 3) -> int:
    """Folds for GroupKFold: at most one per application, at least 2."""
    return max(2, min(wanted, len(np.unique(groups))))


def program_params(estimator: Any, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Each run's program as the fit parameter ``groups``, for an estimator whose fit reads it (the
    solo-relative prior's gate chosen between programs); nothing for the others."""
    return {"groups": groups} if "groups" in inspect.signature(estimator.fit).parameters else {}


def fit_tabular(estimator: Any, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> Any:
    """Fit (searching hyper-parameters where the estimator is a search) and return the final estimator."""
    from sklearn.base import clone

    estimator = clone(estimator)
    searching = hasattr(estimator, "param_grid") or hasattr(estimator, "param_distributions")
    if searching and len(np.unique(groups)) < 2:
        # One training application: no held-out group to choose hyper-parameters on, so none are chosen
        # (the estimator's defaults), rather than choosing them on the application itself.
        estimator = clone(estimator.estimator).fit(features, labels)
    elif searching:
        from sklearn.model_selection import GroupKFold

        estimator.set_params(cv=GroupKFold(grouped_folds(groups)))
        estimator.fit(features, labels, groups=groups)
        estimator = estimator.best_estimator_
    else:
        estimator.fit(features, labels, **program_params(estimator, groups))
    if "n_jobs" in estimator.get_params():
        # Threaded tree sums add in a varying order: one job keeps predictions bit-identical after reload.
        estimator.set_params(n_jobs=1)
    return estimator


def out_of_fold_residuals(
    estimator: Any, features: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """label - prediction for every training run, each predicted by a model that never saw its application."""
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold, cross_val_predict

    if len(np.unique(groups)) < 2:
        return labels - clone(estimator).fit(features, labels).predict(features)
    folds = GroupKFold(grouped_folds(groups))
    params = program_params(estimator, groups)
    predicted = cross_val_predict(clone(estimator), features, labels, groups=groups, cv=folds, params=params)
    return labels - np.clip(predicted, 0.0, 1.0)
