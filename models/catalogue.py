"""Every model module, imported explicitly so that a missing file is an ImportError, never a missing key."""

from cotenant.models import (  # noqa: F401  (imported for their @register side effect)
    cloudformer,
    decision_tree,
    gamma_glm,
    hist_gradient_boosting,
    linear,
    lstm,
    placement,
    placement_forest,
    placement_probes,
    random_forest,
    solo_relative,
)
from cotenant.models.base import MODELS, ModelSpec, models_for

__all__ = ["MODELS", "ModelSpec", "models_for"]
