"""JSON-schema adjustments for the OpenAPI 3.0 document BentoML publishes.

OpenAPI 3.0 schemas follow JSON Schema draft 4, where ``exclusiveMinimum`` / ``exclusiveMaximum`` are booleans
beside ``minimum`` / ``maximum``. Pydantic emits the 2020-12 numeric form for ``gt`` / ``lt``, which draft-4
consumers (client generators, schemathesis) reject. Models that appear in the API publish the draft-4 form;
validation is pydantic's and does not change.
"""

from __future__ import annotations

from typing import Any

_BOUNDS = (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum"))


def draft4_exclusive_bounds(schema: dict[str, Any]) -> None:
    """Rewrite numeric exclusive bounds in ``schema`` (in place, nested subschemas included)."""
    for exclusive, inclusive in _BOUNDS:
        bound = schema.get(exclusive)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            schema[inclusive] = bound
            schema[exclusive] = True
    for value in schema.values():
        if isinstance(value, dict):
            draft4_exclusive_bounds(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    draft4_exclusive_bounds(item)
