"""The API contract beyond what BentoML generates: one error shape for the whole service, and every status
code each operation can answer, in the OpenAPI document generated clients are built from.

``ROUTE_ERRORS`` is the one table of which operation answers which error (next to what every operation may
answer: 413 for a body over the limit, 422 for invalid input, 500). ``RequestLimitsMiddleware`` uses
``canonical_error`` on every error reply and ``patch_openapi`` on ``/docs.json``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error reply: what went wrong, naming the field, host, target or profile.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "description": "for invalid input: one entry per problem, with the field's path in `loc`",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

EVERY_OPERATION = (413, 422, 500)
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "/ingest": (401,),
    "/register_profile": (401,),
    "/predict_degradation": (503,),
    "/predict_host_degradation": (404, 503),
    "/score_placement": (404, 503),
}


def errors_of(route: str) -> tuple[int, ...]:
    return tuple(sorted({*EVERY_OPERATION, *ROUTE_ERRORS.get(route, ())}))


def canonical_error(body: bytes) -> bytes:
    """Any error body as ``{"error": ..., "detail"?: [...]}`` (BentoML wraps some in a one-element list)."""
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return json.dumps({"error": body.decode(errors="replace")[:2000] or "error"}).encode()
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), str):
        parsed = {"error": json.dumps(parsed)[:2000]}
    return json.dumps(parsed).encode()


def patch_openapi(document: dict[str, Any], routes: frozenset[str]) -> dict[str, Any]:
    """The document with the error schema and, for every API operation, every status it can answer."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for route, operations in document.get("paths", {}).items():
        if route not in routes:
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for stale in ("400",):  # BentoML's default for invalid input; this service answers 422
                responses.pop(stale, None)
            for code in errors_of(route):
                responses[str(code)] = {
                    "description": HTTPStatus(code).phrase,
                    "content": {"application/json": {"schema": reference}},
                }
    return document
