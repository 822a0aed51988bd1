"""Explanations by occlusion, aggregated by metric group (cpu, memory, cache_membw, io, network, other).

Occluding a group sets its normalised inputs to 0, the training mean: "as if this resource looked average".
A group's share is |P - P_without_group| over the sum across groups, so shares are comparable between models
(neural or tabular) and need no gradients. Cost: one extra row per group, batched with the real input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cotenant.models.base import GROUPS


def group_masks(feature_groups: Sequence[str]) -> dict[str, np.ndarray]:
    """{group: bool mask over input columns} for the groups that have at least one column, in GROUPS order."""
    groups = np.asarray(feature_groups)
    return {g: groups == g for g in GROUPS if (groups == g).any()}


def occlusion_variants(
    normalised: np.ndarray, masks: dict[str, np.ndarray], per_step: bool
) -> list[np.ndarray]:
    """The input itself, then one copy per group with that group's columns zeroed (last axis = columns)."""
    variants = [normalised]
    for mask in masks.values():
        occluded = normalised.copy()
        occluded[..., mask] = 0.0
        variants.append(occluded)
    return variants if per_step else np.stack(variants)  # type: ignore[return-value]


def occlusion_shares(medians: np.ndarray) -> np.ndarray:
    """``medians [N, 1+G]`` (column 0 unoccluded) -> shares ``[N, G]`` summing to 1 (or all 0)."""
    effect = np.abs(medians[:, 1:] - medians[:, :1])
    total = effect.sum(axis=1, keepdims=True)
    return np.divide(effect, total, out=np.zeros_like(effect), where=total > 0)
