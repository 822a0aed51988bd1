"""cotenant.models: every model behind one registry (``MODELS``) and the predictor artifact serving loads.

Importing this package stays cheap (the CLI root imports a sibling subpackage): the registry, which pulls in
torch and every model module, loads on first access to ``cotenant.models.MODELS`` (``models/catalogue.py``).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("MODELS", "ModelSpec", "models_for"):
        from cotenant.models import catalogue

        return getattr(catalogue, name)
    raise AttributeError(f"module 'cotenant.models' has no attribute {name!r}")
