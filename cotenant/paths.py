"""Where cotenant keeps its runtime state (MLflow store, lab outputs, collections)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "COTENANT_HOME"


def cotenant_home() -> Path:
    """The state directory: ``$COTENANT_HOME``, else ``./var`` under the current directory."""
    home = Path(os.environ.get(HOME_VARIABLE, "var")).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_tracking_uri() -> str:
    """The local sqlite MLflow store, the default for training and serving."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{cotenant_home() / 'mlflow.db'}"
