"""The admin API's OpenAPI 3.1 document, built from the endpoints' docstrings.

Each endpoint's docstring is prose, then ``---``, then the operation in YAML (summary,
requestBody, responses). This generator adds what every operation shares, so docstrings
don't repeat it: the path parameters (from the route's template), the bearer API key, an
``operationId`` (the function's name) and the shared error responses. Request bodies may
refer to the spec models (``#/components/schemas/AgentSpecInput``), whose JSON Schemas come
from the pydantic models themselves. A docstring that is not valid YAML fails the
document's test (``tests/api/test_openapi.py``), not a caller.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import BaseModel
from starlette.routing import BaseRoute
from starlette.schemas import BaseSchemaGenerator

from callable_agents.core.store.agent_spec import AgentSpecInput
from callable_agents.core.store.channels import ChannelSpecInput

PATH_PARAMETER = re.compile(r"{(\w+)}")
SCHEMA_MODELS: tuple[type[BaseModel], ...] = (AgentSpecInput, ChannelSpecInput)
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string", "description": "one line naming the field and what was expected"},
                "type": {"type": "string"},
                "field": {"type": "string", "description": "the field at fault, when one is"},
                "problems": {
                    "type": "array",
                    "description": "every field at fault, when there are several",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}
SHARED_RESPONSES = {"401": "the API key is missing, unknown or revoked"}


class DocstringError(ValueError):
    """An endpoint's docstring does not hold a valid operation."""


def _model_schemas() -> dict[str, Any]:
    """The spec models' JSON Schemas as components (their nested models lifted alongside)."""
    components: dict[str, Any] = {}
    for model in SCHEMA_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


class AdminSchemaGenerator(BaseSchemaGenerator):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def operation(self, path: str, method: str, function: Any) -> dict[str, Any]:
        try:
            parsed = self.parse_docstring(function)
        except yaml.YAMLError as exc:
            raise DocstringError(f"{function.__name__}: the docstring after '---' is not valid YAML: {exc}") from None
        if not parsed.get("summary") or not isinstance(parsed.get("responses"), dict):
            raise DocstringError(f"{function.__name__}: expected a summary and responses after '---'")
        operation = {"operationId": function.__name__, **parsed}
        parameters = list(operation.get("parameters", []))
        for name in PATH_PARAMETER.findall(path):
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": "id or name"}
            )
        if parameters:
            operation["parameters"] = parameters
        responses = {str(code): answer for code, answer in operation["responses"].items()}
        for code, description in SHARED_RESPONSES.items():
            responses.setdefault(code, {"description": description})
        for code, answer in responses.items():
            if code.startswith(("4", "5")):
                answer.setdefault("content", {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
        operation["responses"] = responses
        return operation

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.get_endpoints(routes):
            paths.setdefault(endpoint.path, {})[endpoint.http_method] = self.operation(
                endpoint.path, endpoint.http_method, endpoint.func
            )
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Callable Agents admin API",
                "version": "1",
                "description": "Bearer API keys scoped to one workspace (`callable apikey create`); JSON in and out.",
            },
            "servers": [{"url": self.prefix}],
            "security": [{"apiKey": []}],
            "paths": dict(sorted(paths.items())),
            "components": {
                "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
                "schemas": {"Error": ERROR_SCHEMA, **_model_schemas()},
            },
        }
