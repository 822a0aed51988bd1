"""MLflow models-from-code entry: the predictor artifact as a pickle-free pyfunc model.

MLflow copies this file into the logged model and runs it at load time; the predictor directory travels as an
artifact. Input: a DataFrame with one JSON column ``request``; monitoring requests are ``{"target": {metric:
[values]}, "neighbours": [{...}], "host": {...} | null, "solo": {...} | null, "probes": {...} | null,
"neighbour_probes": [{...} | null, ...] | null}`` (``solo``: the target's solo profile, for models reading
rates relative to it; ``probes``, ``neighbour_probes``: the target's and each neighbour's probe results, P by
probe name, for models reading them), placement requests are
``{"profile": {...}, "hosts": [[incumbent profile, ...], ...]}`` (newcomer P per host).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


def _series(raw: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(values, dtype=np.float64) for name, values in raw.items()}


class PredictorModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from cotenant.models.predictor import Predictor

        self.predictor = Predictor.load(Path(context.artifacts["predictor"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        rows = []
        for text in model_input["request"]:
            request = json.loads(text)
            if self.predictor.metadata.task == "monitoring":
                estimate = self.predictor.predict_degradation(
                    _series(request["target"]),
                    [_series(n) for n in request.get("neighbours", [])],
                    _series(request["host"]) if request.get("host") else None,
                    _series(request["solo"]) if request.get("solo") else None,
                    request.get("probes"),
                    request.get("neighbour_probes"),
                )
                rows.append(
                    {
                        "p": estimate.p,
                        "lower": estimate.lower,
                        "upper": estimate.upper,
                        "drivers": json.dumps(estimate.drivers),
                    }
                )
            else:
                newcomer = self.predictor.encode_profile(_series(request["profile"]))
                hosts = [
                    self.predictor.encode_host([self.predictor.encode_profile(_series(p)) for p in host])
                    for host in request["hosts"]
                ]
                for scored in self.predictor.score_placement(newcomer, hosts):
                    e = scored.newcomer
                    rows.append(
                        {"p": e.p, "lower": e.lower, "upper": e.upper, "drivers": json.dumps(e.drivers)}
                    )
        return pd.DataFrame(rows, columns=["p", "lower", "upper", "drivers"])


mlflow.models.set_model(PredictorModel())
