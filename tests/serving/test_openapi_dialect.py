"""The JSON-schema rewrite into OpenAPI 3.0's dialect, on the forms pydantic emits."""

from __future__ import annotations

from cotenant.serving.contract import openapi30, patch_openapi


def test_optional_fields_become_nullable_and_keep_their_constraints() -> None:
    optional = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}], "default": None, "title": "X"}
    assert openapi30(optional) == {
        "type": "number",
        "minimum": 0,
        "default": None,
        "title": "X",
        "nullable": True,
    }
    reference = {"anyOf": [{"$ref": "#/components/schemas/NodeList"}, {"type": "null"}]}
    assert openapi30(reference) == {"allOf": [{"$ref": "#/components/schemas/NodeList"}], "nullable": True}
    choice = {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]}
    assert openapi30(choice)["enum"] == ["a", "b", None]  # 3.0: null must be listed to be valid
    several = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    assert openapi30(several) == {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}


def test_bounds_and_map_keys_in_draft_4_form() -> None:
    assert openapi30({"type": "number", "exclusiveMinimum": 0}) == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    kinds = {
        "type": "object",
        "propertyNames": {"enum": ["gpu", "tpu"]},
        "additionalProperties": {"$ref": "#/P"},
    }
    assert openapi30(kinds) == {
        "type": "object",
        "properties": {"gpu": {"$ref": "#/P"}, "tpu": {"$ref": "#/P"}},
        "additionalProperties": False,
    }
    free = {"type": "object", "propertyNames": {"minLength": 1}, "additionalProperties": {"type": "number"}}
    assert openapi30(free) == {"type": "object", "additionalProperties": {"type": "number"}}
    nested = {"properties": {"a": {"items": [{"anyOf": [{"type": "number"}, {"type": "null"}]}]}}}
    assert openapi30(nested)["properties"]["a"]["items"][0] == {"type": "number", "nullable": True}


def test_the_document_describes_this_service_and_links_nothing_elsewhere() -> None:
    bentoml_default = {
        "info": {"title": "x", "version": "None", "description": "![b](https://img.shields.io/x)"}
    }
    info = patch_openapi(bentoml_default, frozenset())["info"]
    assert info["title"] == "cotenant" and info["version"] != "None"
    assert "http" not in info["description"] and "contact" not in info
