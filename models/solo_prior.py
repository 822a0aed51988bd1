"""The solo-relative prior for the scikit-learn monitoring models (CloudFormer's ``solo_prior`` for trees).

A program slowed to P by its neighbours does its work at about P times its solo rate: its CPU use over the run
relative to its own solo profile's (``vs_solo__`` CPU, ``collectors.ratios``) is the solo-relative heuristic
(``training/references.py``). ``SoloPriorRegressor`` answers that heuristic plus what its inner estimator
learns of the departures from it (``label - prior``): a tree fitted on the labels themselves has to learn the
identity P ~ ratio piecewise, level by level, and answers an unseen program with the levels of the programs it
saw; fitted on the departures it keeps the identity and learns only where it fails. With a constant-zero inner
estimator it is the heuristic itself, servable (``solo-relative``), so that a no-learning answer can be
champion when nothing learned beats it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cotenant.models.base import P_FLOOR, UnsuitableData
from sklearn.base import BaseEstimator, RegressorMixin, clone


class SoloPriorRegressor(RegressorMixin, BaseEstimator):
    """``estimator`` fitted on ``label - prior``; answers ``prior + estimator``, kept in (0, 1].

    The prior is read from the per-run summary features (``base.summarise``: the mean over time of every
    normalised input comes first, so the mean of input ``prior_column`` is feature ``prior_column``),
    de-normalised with that input's training mean and std. Column -1 (the inputs lack the ratio): no prior,
    the estimator on the labels, unless ``requires_prior``, which refuses to fit.
    """

    def __init__(
        self,
        estimator: Any,
        prior_column: int = -1,
        prior_mean: float = 0.0,
        prior_std: float = 1.0,
        requires_prior: bool = False,
    ) -> None:
        self.estimator = estimator
        self.prior_column = prior_column
        self.prior_mean = prior_mean
        self.prior_std = prior_std
        self.requires_prior = requires_prior

    def set_prior(self, column: int, mean: float, std: float) -> None:
        """The input column of the solo-relative CPU rate and its normalisation (``FeatureStats``)."""
        self.set_params(prior_column=column, prior_mean=mean, prior_std=std)

    def prior(self, features: np.ndarray) -> np.ndarray:
        """The solo-relative heuristic of each run, ``min(1, mean CPU ratio)``; 0 without the column. A
        missing ratio (0 after normalisation and NaN filling) reads as the training runs' mean ratio."""
        if self.prior_column < 0:
            return np.zeros(len(features))
        ratio = features[:, self.prior_column] * self.prior_std + self.prior_mean
        return np.clip(ratio, P_FLOOR, 1.0)

    def fit(self, features: np.ndarray, labels: np.ndarray) -> SoloPriorRegressor:
        if self.prior_column < 0 and self.requires_prior:
            raise UnsuitableData(
                "the solo-relative prior needs the target's rates over its solo profile (vs_solo__ inputs): "
                "data with solo profiles"
            )
        self.estimator_ = clone(self.estimator).fit(features, labels - self.prior(features))
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self.prior(features) + self.estimator_.predict(features), P_FLOOR, 1.0)
