"""The model contract shared by every model: registry, feature schema, normalisation, losses, quantiles.

Two tasks, one batch layout each (docs/architecture.md section 3):

- monitoring: ``x [B, T, F] float32`` (normalised per-second features),
  ``mask [B, T] bool`` (True = real step)
  -> quantiles ``[B, Q]`` of P.
- placement: ``newcomer [B, F_p]``, ``neighbours [B, K, F_p]``, ``neighbour_mask [B, K]`` -> ``[B, Q]``.

Sizes (F, F_p) always come from the data through ``DataShape``; no model types them by hand.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from cotenant.datasets.probe_inputs import PROBE_INPUT
from cotenant.datasets.table import METRIC_GROUPS
from pydantic import BaseModel, ConfigDict
from torch import nn

from cotenant.registry import Registry

Task = Literal["monitoring", "placement"]
# neural: a torch module (Lightning); tabular: a scikit-learn estimator on summaries; probes: a scikit-learn
# describer and head on sensitivity/pressure probes (models/placement_probes.py).
Family = Literal["neural", "tabular", "probes"]
GROUPS: tuple[str, ...] = METRIC_GROUPS
# 0.1 / 0.5 / 0.9: the median is the point estimate, the outer two give an 80 % interval.
QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
MEDIAN = QUANTILES.index(0.5)
PREFIXES = ("self__", "neighbour_mean__", "vs_solo__", "host__", PROBE_INPUT)
# The smallest P a model may output: labels live in (0, 1] and the Gamma GLM needs strictly positive values.
P_FLOOR = 1e-3
# Which work rates a solo-relative prior reads (``models/solo_prior.py``; CloudFormer's ``solo_prior``):
# "cpu", the CPU ratio alone (the solo-relative heuristic); "switches", the CPU and context-switch ratios
# mixed by a gate on the solo profile's switches per CPU-second (``solo_prior.switch_mixture``).
PriorRate = Literal["cpu", "switches"]
# How the switch-gated prior's gate is chosen among its candidates (``solo_prior.fit_switch_gate``): "runs",
# the one closest to every training run's label; "programs", by training programs held out in turn (its
# sharpness among the candidates' and the CPU ratio alone, each judged by the runs of programs its choice did
# not read), so that a gate whose turn splits the training programs by chance is not trusted on an unseen
# one near it.
SwitchGateChoice = Literal["runs", "programs"]


class UnsuitableData(ValueError):
    """The data lacks what the model needs (solo profiles, probes): a wrong pairing of model and data, which
    the command line reports naming the data rather than as a failure of the code."""


class ModelConfig(BaseModel):
    """Base of every model's typed config (pydantic: validated, JSON round-trips into predictor.json)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class DataShape:
    """Sizes derived from the training data; the only way sizes reach a model."""

    n_features: int  # F: per-second monitoring features
    n_profile_features: int  # F_p: per-metric summaries of a solo profile
    max_steps: int  # T after truncation (positional table size)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build a model of one family for one task from its config and data shape."""

    name: str
    task: Task
    family: Family
    config_type: type[ModelConfig]
    # neural: returns an nn.Module; tabular: returns an unfitted scikit-learn estimator
    build: Callable[[Any, DataShape], Any]
    description: str = ""


MODELS: Registry[ModelSpec] = Registry("model")


def register(spec: ModelSpec) -> ModelSpec:
    return MODELS.register(spec.name)(spec)


def models_for(task: Task) -> list[str]:
    return [name for name, spec in MODELS.items() if spec.task == task]


# ---- features ----------------------------------------------------------------------------------------------
def metric_of(feature: str) -> str:
    for prefix in PREFIXES:
        if feature.startswith(prefix):
            return feature.removeprefix(prefix)
    return feature


def feature_groups(features: Sequence[str], metric_groups: dict[str, str]) -> list[str]:
    """The explanation group of every feature; unknown metrics fall into ``other``."""
    groups = []
    for feature in features:
        group = metric_groups.get(feature, metric_groups.get(metric_of(feature), "other"))
        groups.append(group if group in GROUPS else "other")
    return groups


SUMMARIES = ("mean", "std", "max")


def summarise(steps: np.ndarray) -> np.ndarray:
    """Per-run summary features of a [T, F] matrix: mean, std and max over time -> [3F] (NaN-aware)."""
    if steps.shape[0] == 0:
        return np.full(3 * steps.shape[1], np.nan)
    with np.errstate(all="ignore"), quiet_nan_warnings():
        return np.concatenate([np.nanmean(steps, 0), np.nanstd(steps, 0), np.nanmax(steps, 0)])


def summary_names(features: Sequence[str]) -> list[str]:
    return [f"{feature}:{stat}" for stat in SUMMARIES for feature in features]


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """All-NaN columns (a metric missing from a run) are expected; the NaN is filled later."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ---- losses and quantiles ----------------------------------------------------------------------------------
def log_cosh(error: torch.Tensor) -> torch.Tensor:
    """The paper's loss; written stably (log cosh x = |x| + log1p(e^-2|x|) - log 2)."""
    magnitude = error.abs()
    return (magnitude + torch.log1p(torch.exp(-2 * magnitude)) - np.log(2.0)).mean()


def pinball(
    quantiles: torch.Tensor, target: torch.Tensor, levels: Sequence[float] = QUANTILES
) -> torch.Tensor:
    """Quantile (pinball) loss of ``quantiles [B, Q]`` against ``target [B]``."""
    tau = torch.tensor(levels, dtype=quantiles.dtype, device=quantiles.device)  # [Q]
    diff = target[:, None] - quantiles  # [B, Q]
    return torch.maximum(tau * diff, (tau - 1) * diff).mean()


def quantile_loss(quantiles: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Log-cosh on the median (the point estimate, as in the paper) plus pinball on every quantile head."""
    return log_cosh(quantiles[:, MEDIAN] - target) + pinball(quantiles, target)


class QuantileHead(nn.Module):
    """Maps a representation to Q quantiles of P in (0, 1) (sigmoid); sorted at prediction time."""

    def __init__(self, width: int, n_quantiles: int = len(QUANTILES)) -> None:
        super().__init__()
        self.out = nn.Linear(width, n_quantiles)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, H] -> [B, Q]
        return torch.sigmoid(self.out(hidden))


def sort_quantiles(values: np.ndarray) -> np.ndarray:
    """Independent heads can cross; sorting restores lower <= median <= upper without changing the set.

    Quantiles already in order (an interval around a median never crosses) are returned as they are, not
    copied: checking is ~5x cheaper than sorting 17,000 rows of three on the extender's path."""
    if bool((values[..., 1:] >= values[..., :-1]).all()):
        return values
    return np.sort(values, axis=-1)


def probability_below(
    quantiles: np.ndarray, threshold: float, levels: Sequence[float] = QUANTILES
) -> np.ndarray:
    """Per row of sorted ``quantiles [N, Q]`` (at ``levels``), the chance that P falls below ``threshold``:
    the predictive CDF drawn through the quantiles, linear between two of them and past the outer ones along
    the nearest segment's slope, within [0, 1].

    Three quantiles say nothing more about the tails; a straight line is the least that assumes no shape,
    and it gives the decision that reads it (the extender's expected misses) a chance that moves smoothly
    with the prediction instead of the median's all-or-nothing. Where two quantiles coincide (an upper end
    clipped at P = 1) the segment between them is a step."""
    values = np.asarray(quantiles, dtype=np.float64)
    at = np.asarray(levels, dtype=np.float64)
    if values.shape[-1] != len(at) or len(at) < 2:
        raise ValueError(f"probability_below: {values.shape[-1]} quantiles for {len(at)} levels")
    # the segment the threshold falls on (past an outer quantile: the outer segment)
    segment = np.clip((values < threshold).sum(axis=-1) - 1, 0, len(at) - 2)
    low = np.take_along_axis(values, segment[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(values, segment[..., None] + 1, axis=-1)[..., 0]
    width = high - low
    along = np.divide(threshold - low, width, out=np.zeros_like(width), where=width > 0)
    chance = at[segment] + along * (at[segment + 1] - at[segment])
    # A step (width 0): every bit of mass at or under the threshold, or none of it.
    step = np.where(threshold > high, 1.0, np.where(threshold < low, 0.0, at[segment]))
    return np.clip(np.where(width > 0, chance, step), 0.0, 1.0)


def set_torch_threads(threads: int | None = None) -> None:
    """One intra-op thread unless asked: these models' matrices are small, and on 2 cores a second thread made
    a cloudformer training step 1.8x slower on a quiet machine (0.17 vs 0.09 s) and ~30x slower on a busy one.
    ``COTENANT_TORCH_THREADS`` or ``threads`` override it."""
    import os

    wanted = threads or int(os.environ.get("COTENANT_TORCH_THREADS", "0")) or 1
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
