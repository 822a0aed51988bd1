"""Property-based fuzzing of the service's own OpenAPI (schemathesis, bounded): no input gets a 5xx.

Driven with hypothesis directly rather than schemathesis' pytest plugin, which fails on pytest 9
(``'Function' object has no attribute '_nodeid'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import schemathesis
from conftest import TOKEN, ingest_payload, profile_payload
from hypothesis import HealthCheck, given, settings, strategies
from test_http import make_client

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES_PER_OPERATION = 8


def test_no_generated_request_gets_a_server_error(service_env: dict[str, str]) -> None:
    with make_client() as client:  # runs the app's lifespan: champions loaded; state seeded below
        client.post("/ingest", json=ingest_payload("node-a", np.random.default_rng(0)), headers=AUTH)
        client.post("/register_profile", json=profile_payload("web"), headers=AUTH)
        schema = schemathesis.openapi.from_asgi("/docs.json", client.app)
        # /metrics needs the multiprocess directory only `bentoml serve` sets up (tested in test_server.py)
        operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
        operations = [operation for operation in operations if operation.path != "/metrics"]
        assert len(operations) >= 8
        failures: list[tuple[str, str, int, str]] = []
        calls = 0

        @given(data=strategies.data())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(operation: Any, data: Any) -> None:
            nonlocal calls
            case = data.draw(operation.as_strategy())
            response = case.call(headers=AUTH)
            calls += 1
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:300]))

        for operation in operations:
            fuzz(operation)
    assert calls >= len(operations) * 5
    assert failures == []
