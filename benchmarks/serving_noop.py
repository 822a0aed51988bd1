"""The framework floor for benchmarks/serving_extender.py: a BentoML endpoint that parses the same JSON body
and does nothing."""

from __future__ import annotations

from typing import Any

import bentoml


@bentoml.service(name="noop", workers=1)
class NoopService:
    @bentoml.api(route="/prioritize")
    def prioritize(self, args: dict[str, Any], /) -> list[dict[str, Any]]:
        return []
