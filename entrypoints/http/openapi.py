"""The served OpenAPI document, with body schemas taken from msgspec so they match the decoder."""

from __future__ import annotations

import copy
import inspect
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin

from entrypoints.http import schemas

_REF_TEMPLATE = "#/components/schemas/{name}"

#: Headers that go with a problem status wherever a route documents it.
_PROBLEM_HEADERS: dict[str, dict[str, Any]] = {
    "401": {
        "WWW-Authenticate": {
            "description": "`Bearer` when the API key is missing, unknown or revoked",
            "required": False,
            "schema": {"type": "string"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before the next attempt",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


@cache
def struct_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the bodies in `schemas.py`, as msgspec itself validates them.

    Litestar's own generator drops `additionalProperties: false` (`forbid_unknown_fields`),
    `minimum: 0` (a falsy bound) and the constraints on dict keys and values.
    """
    structs = [
        value
        for value in vars(schemas).values()
        if inspect.isclass(value)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == schemas.__name__
    ]
    _, components = msgspec.json.schema_components(structs, ref_template=_REF_TEMPLATE)
    return components


def _references(value: Any) -> set[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        found = {ref.rsplit("/", 1)[-1]} if isinstance(ref, str) else set()
        return found.union(*(_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def refine(openapi_schema: dict[str, Any]) -> dict[str, Any]:
    """Put msgspec's schemas in place of the generated ones and document problem headers.

    Changes `openapi_schema` in place (Litestar caches it) and is idempotent.
    """
    components = openapi_schema.setdefault("components", {}).setdefault("schemas", {})
    exact = struct_schemas()
    for name in list(components):
        if name in exact:
            components[name] = copy.deepcopy(exact[name])
    # msgspec may refer to a Struct that Litestar inlined instead of making it a component.
    while missing := (_references(components) - components.keys()) & exact.keys():
        components.update({name: copy.deepcopy(exact[name]) for name in missing})
    for path_item in openapi_schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if status in _PROBLEM_HEADERS:
                    response.setdefault("headers", {}).update(_PROBLEM_HEADERS[status])
    return openapi_schema


class JsonSchemaPlugin(JsonRenderPlugin):
    """The JSON document at /schema and /schema/openapi.json."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, refine(openapi_schema))


class YamlSchemaPlugin(YamlRenderPlugin):
    """The YAML document at /schema/openapi.yaml."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, refine(openapi_schema))
