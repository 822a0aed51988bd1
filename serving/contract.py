"""The API contract beyond what BentoML generates: one error shape for the whole service, every status code
each operation can answer, and schemas in OpenAPI 3.0's own dialect, in the document generated clients are
built from.

``ROUTE_ERRORS`` is the one table of which operation answers which error (next to what every operation may
answer: 413 for a body over the limit, 415 for a body that is not JSON, 422 for invalid input, 500).
``RequestLimitsMiddleware`` uses ``canonical_error`` on every error reply and ``patch_openapi`` on
``/docs.json``.

BentoML replaces the message of every 5xx reply with "An unexpected error has occurred" (its server app),
which would hide why the service cannot answer (no champion for the task, the shared state down). The
service raises its 503s through ``unavailable``, which also leaves the reason in the request's
``reason_box``; the middleware puts it back into the reply.

BentoML publishes pydantic's JSON Schema (2020-12) under ``openapi: 3.0.2`` and inlines each operation's
body with its optional fields' ``null`` dropped, so a client generated from it, or a contract tester, would
call ``"NodeNames": null`` (what kube-scheduler sends) invalid. ``openapi30`` rewrites the 2020-12 forms into
3.0's (JSON Schema draft 4 plus ``nullable``), and each operation refers to its component instead of the
lossy inline copy. Validation stays pydantic's.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import ServiceUnavailable

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

EVERY_OPERATION = (413, 415, 422, 500)
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    # 409: summaries in a feature schema other than the champion's; 503: shared host state unreachable
    "/ingest": (401, 409, 503),
    "/register_profile": (401, 503),
    "/feature_schema": (409, 503),
    # 404: a profile_id naming no registered profile
    "/predict_degradation": (404, 503),
    # 409: the host pushes compact summaries, monitoring needs series
    "/predict_host_degradation": (404, 409, 503),
    "/score_placement": (404, 503),
    "/place_on_accelerators": (404, 409, 503),
    "/predict_accelerator_latency": (404, 503),
}


def errors_of(route: str) -> tuple[int, ...]:
    return tuple(sorted({*EVERY_OPERATION, *ROUTE_ERRORS.get(route, ())}))


# The reason of the 503 a request is answered with, set by ``unavailable`` (a box per request, made by the
# middleware: the API runs in a worker thread with a copy of the request's context, which shares the box).
_UNAVAILABLE_REASON: ContextVar[dict[str, str] | None] = ContextVar("unavailable_reason", default=None)


def reason_box() -> dict[str, str]:
    """A fresh box for this request's 503 reason (the middleware calls it before the app answers)."""
    box: dict[str, str] = {}
    _UNAVAILABLE_REASON.set(box)
    return box


def unavailable(reason: str) -> ServiceUnavailable:
    """The 503 to raise, with ``reason`` kept for the reply (BentoML's own reply would not say it)."""
    box = _UNAVAILABLE_REASON.get()
    if box is not None:
        box["error"] = reason
    return ServiceUnavailable(reason)


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


_BOUNDS = (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum"))
_NULL = {"type": "null"}


def openapi30(schema: Any) -> Any:
    """``schema`` (and every subschema) in OpenAPI 3.0's dialect: ``anyOf``/``oneOf`` with ``null`` becomes
    ``nullable``, numeric exclusive bounds become draft 4's booleans, and ``propertyNames``, which 3.0 lacks,
    becomes the map's properties when it enumerates them and is dropped otherwise (free metric names)."""
    if isinstance(schema, list):
        return [openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: openapi30(value) for key, value in schema.items() if key != "propertyNames"}
    keys = schema.get("propertyNames", {}).get("enum")
    if keys and isinstance(converted.get("additionalProperties"), dict):
        # a map keyed by an enumeration (a device kind -> its profile): the keys it may have, as properties
        value = converted.pop("additionalProperties")
        converted["properties"] = dict.fromkeys(keys, value)
        converted["additionalProperties"] = False
    for exclusive, inclusive in _BOUNDS:
        bound = converted.get(exclusive)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            converted[inclusive], converted[exclusive] = bound, True
    for combiner in ("anyOf", "oneOf"):
        options = converted.get(combiner)
        if not isinstance(options, list) or _NULL not in options:
            continue
        rest = [option for option in options if option != _NULL]
        del converted[combiner]
        if len(rest) == 1 and "$ref" not in rest[0]:
            converted = {**rest[0], **converted}
            if "enum" in converted:  # 3.0: null is valid against an enumeration only when listed in it
                converted["enum"] = [*converted["enum"], None]
        elif len(rest) == 1:
            converted["allOf"] = rest  # siblings of a $ref are ignored in 3.0
        else:
            converted[combiner] = rest
        converted["nullable"] = True
    return converted


def _component_ref(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """An operation's inline schema as a reference to the component BentoML generated it from (the inline copy
    lost its optional fields' ``null``), or converted in place when it has none."""
    title = schema.get("title")
    if isinstance(title, str) and title in components:
        return {"$ref": f"#/components/schemas/{title}"}
    return openapi30(schema)


SERVICE_DESCRIPTION = (
    "Predicts how much co-located workloads slow each other down: placement scoring for schedulers "
    "(`/score_placement`, and the Kubernetes extender's `/filter` and `/prioritize`), monitoring of running "
    "tenants, telemetry ingest from `cotenant collect --push`, and analytic models of shared accelerators. "
    'P is performance relative to running alone (1 = no slowdown). Every error reply is `{"error": ..., '
    '"detail"?: [...]}`; writes need a bearer token.'
)


def service_info() -> dict[str, Any]:
    """The document's ``info``: this service's own (BentoML's default carries its README, with badges that
    make a browser fetch third-party images, and its team as the contact)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("cotenant")
    except PackageNotFoundError:  # run from a source tree that was never installed
        release = "0+unknown"
    return {"title": "cotenant", "version": release, "description": SERVICE_DESCRIPTION}


def patch_openapi(document: dict[str, Any], routes: frozenset[str]) -> dict[str, Any]:
    """The document in OpenAPI 3.0's dialect, with this service's own ``info``, the error schema and, for
    every API operation, its body marked required where it has required fields and every status it can
    answer."""
    document["info"] = service_info()
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in list(components.items()):
        components[name] = openapi30(schema)
    components[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for route, operations in document.get("paths", {}).items():
        if route not in routes:
            continue
        for operation in operations.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                operation["requestBody"]["required"] = bool(content["schema"].get("required"))
                content["schema"] = _component_ref(content["schema"], components)
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if code.startswith(("4", "5")):
                    del responses[code]  # BentoML's defaults (400, 404 everywhere); ours are listed below
                for content in response.get("content", {}).values():
                    content["schema"] = _component_ref(content["schema"], components)
            for status in errors_of(route):
                responses[str(status)] = {
                    "description": HTTPStatus(status).phrase,
                    "content": {"application/json": {"schema": reference}},
                }
    return document
