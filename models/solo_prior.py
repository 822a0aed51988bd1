"""The solo-relative prior for the scikit-learn monitoring models (CloudFormer's ``solo_prior`` for trees).

A program slowed to P by its neighbours does its work at about P times its solo rate: its CPU use over the run
relative to its own solo profile's (``vs_solo__`` CPU, ``collectors.ratios``) is the solo-relative heuristic
(``training/references.py``). ``SoloPriorRegressor`` answers that heuristic plus what its inner estimator
learns of the departures from it (``label - prior``): a tree fitted on the labels themselves has to learn the
identity P ~ ratio piecewise, level by level, and answers an unseen program with the levels of the programs it
saw; fitted on the departures it keeps the identity and learns only where it fails. With a constant-zero inner
estimator it is the heuristic itself, servable (``solo-relative``), so that a no-learning answer can be
champion when nothing learned beats it. ``rate="switches"`` starts instead from the switch-gated prior
(``switch_mixture``: the CPU ratio for a compute program, the context-switch ratio for one that blocks per
request or I/O, by its solo profile's switch density), whose gate is the one thing fitted before the
departures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from cotenant.models.base import P_FLOOR, PriorRate, SwitchGateChoice, UnsuitableData
from cotenant.models.tabular import grouped_folds
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import GroupKFold

# The gate's candidates (``fit_switch_gate``): how sharply it turns (per decade of switch density) and at
# which density, log10 switches per CPU-second (a compute kernel 0-2.5, a storage program or server 4-4.6).
SWITCH_GATE_SLOPES = (2.0, 5.0, 20.0)
SWITCH_GATE_THRESHOLDS = tuple(1.0 + 0.25 * step for step in range(17))  # 1.0 .. 5.0
# The gate that never turns: every program read by its CPU ratio (``switch_mixture`` gives the CPU ratio
# exactly, on arrays and tensors alike).
CPU_ONLY_GATE = (1.0, math.inf)


def switch_mixture(cpu_ratio: Any, switch_ratio: Any, density: Any, slope: float, threshold: float) -> Any:
    """``(1 - g) x cpu_ratio + g x switch_ratio`` with ``g = sigmoid(slope x (density - threshold))``: the
    switch-gated prior before its clipping, on numpy arrays or torch tensors alike (the tabular models and
    CloudFormer read the same rule)."""
    exponent = -slope * (density - threshold)
    gate = 1.0 / (1.0 + (exponent.exp() if hasattr(exponent, "exp") else np.exp(exponent)))
    return (1.0 - gate) * cpu_ratio + gate * switch_ratio


def fit_switch_gate(
    cpu_ratio: np.ndarray,
    switch_ratio: np.ndarray,
    density: np.ndarray,
    labels: np.ndarray,
    programs: np.ndarray | None = None,
) -> tuple[float, float]:
    """The gate (slope, threshold) among the candidates whose mixture, at most 1, is closest to these
    training runs' labels (least MAE; two numbers fitted on every training run, so a gate that routes one
    training program alone cannot pay).

    With ``programs`` (one per run; ``SwitchGateChoice`` "programs"): first its sharpness, each candidate
    slope judged as the evaluation judges a model, its threshold chosen on some training programs and its
    error read on the others (grouped folds), beside the CPU ratio alone (`CPU_ONLY_GATE`); then the chosen
    slope's threshold on every run."""
    cpu, switches, dens, target = (
        np.asarray(a, dtype=np.float64) for a in (cpu_ratio, switch_ratio, density, labels)
    )

    def error(gate: tuple[float, float], rows: np.ndarray) -> float:
        mixture = switch_mixture(cpu[rows], switches[rows], dens[rows], *gate)
        return float(np.abs(np.clip(mixture, P_FLOOR, 1.0) - target[rows]).mean())

    def closest(slopes: tuple[float, ...], rows: np.ndarray) -> tuple[float, float]:
        return min(((a, b) for a in slopes for b in SWITCH_GATE_THRESHOLDS), key=lambda g: error(g, rows))

    every_run = np.arange(len(target))
    with np.errstate(over="ignore"):
        if programs is None or len(np.unique(programs)) < 2:
            return closest(SWITCH_GATE_SLOPES, every_run)
        held_out: dict[float | None, float] = dict.fromkeys((*SWITCH_GATE_SLOPES, None), 0.0)
        for fitted, judged in GroupKFold(grouped_folds(programs)).split(target, groups=programs):
            # summed over the judged runs, so that every run weighs alike across folds
            held_out[None] += error(CPU_ONLY_GATE, judged) * len(judged)
            for slope in SWITCH_GATE_SLOPES:
                held_out[slope] += error(closest((slope,), fitted), judged) * len(judged)
        chosen = min(held_out, key=lambda candidate: held_out[candidate])
        return CPU_ONLY_GATE if chosen is None else closest((chosen,), every_run)


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
        rate: PriorRate = "cpu",
        gate: SwitchGateChoice = "runs",
        switch_columns: tuple[int, int] = (-1, -1),
        switch_means: tuple[float, float] = (0.0, 0.0),
        switch_stds: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        self.estimator = estimator
        self.prior_column = prior_column
        self.prior_mean = prior_mean
        self.prior_std = prior_std
        self.requires_prior = requires_prior
        self.rate = rate
        self.gate = gate
        self.switch_columns = switch_columns
        self.switch_means = switch_means
        self.switch_stds = switch_stds

    def set_prior(self, column: int, mean: float, std: float) -> None:
        """The input column of the solo-relative CPU rate and its normalisation (``FeatureStats``)."""
        self.set_params(prior_column=column, prior_mean=mean, prior_std=std)

    def set_switch_prior(
        self, columns: tuple[int, int], means: tuple[float, float], stds: tuple[float, float]
    ) -> None:
        """The input columns of the context-switch ratio and of the profile's switch density (-1: the inputs
        lack it) and their normalisation, for ``rate="switches"``."""
        self.set_params(switch_columns=tuple(columns), switch_means=tuple(means), switch_stds=tuple(stds))

    def _rates(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each run's CPU ratio, switch ratio and switch density, de-normalised from their means over time."""
        columns = (self.prior_column, *self.switch_columns)
        means, stds = (self.prior_mean, *self.switch_means), (self.prior_std, *self.switch_stds)
        cpu, switches, density = (
            features[:, c] * s + m for c, m, s in zip(columns, means, stds, strict=True)
        )
        return cpu, switches, density

    @property
    def reads_switches(self) -> bool:
        return self.rate == "switches" and self.prior_column >= 0 and min(self.switch_columns) >= 0

    def prior(self, features: np.ndarray) -> np.ndarray:
        """The solo-relative heuristic of each run, ``min(1, mean CPU ratio)`` (or, with ``rate="switches"``
        and a fitted gate, ``switch_mixture`` at most 1); 0 without the column. A missing ratio (0 after
        normalisation and NaN filling) reads as the training runs' mean ratio."""
        if self.prior_column < 0:
            return np.zeros(len(features))
        gate = getattr(self, "switch_gate_", None)
        if gate is None:
            ratio = features[:, self.prior_column] * self.prior_std + self.prior_mean
            return np.clip(ratio, P_FLOOR, 1.0)
        with np.errstate(over="ignore"):
            return np.clip(switch_mixture(*self._rates(features), *gate), P_FLOOR, 1.0)

    def fit(
        self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> SoloPriorRegressor:
        """``groups``: each run's program, read by a gate chosen between programs (``gate="programs"``)."""
        if self.prior_column < 0 and self.requires_prior:
            raise UnsuitableData(
                "the solo-relative prior needs the target's rates over its solo profile (vs_solo__ inputs): "
                "data with solo profiles"
            )
        programs = groups if self.gate == "programs" else None
        self.switch_gate_ = (
            fit_switch_gate(*self._rates(features), labels, programs) if self.reads_switches else None
        )
        self.estimator_ = clone(self.estimator).fit(features, labels - self.prior(features))
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self.prior(features) + self.estimator_.predict(features), P_FLOOR, 1.0)
