"""Placement policies behind the `POLICIES` registry (one file per family)."""

from cotenant.models.accelerators.policies import exact, knapsack, model_driven
from cotenant.models.accelerators.policies.base import POLICIES, Placement, Policy

__all__ = ["POLICIES", "Placement", "Policy", "exact", "knapsack", "model_driven"]
