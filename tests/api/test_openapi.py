"""``GET /api/v1/openapi.json``: public, 200, a valid OpenAPI 3.1 document describing every endpoint."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from starlette.responses import Response
from starlette.routing import Route

from callable_agents.api.openapi import AdminSchemaGenerator, DocstringError
from callable_agents.api.routes import endpoint_routes
from tests.api.conftest import ApiEnv


async def test_the_document_is_valid_and_describes_every_endpoint(env: ApiEnv) -> None:
    response = await env.anonymous.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)  # raises on any invalid part
    assert document["openapi"] == "3.1.0" and document["servers"] == [{"url": "/api/v1"}]
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    routed = {
        (route.path, method.lower())
        for route in endpoint_routes()
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert described == routed and len(routed) >= 30
    agent = document["paths"]["/agents/{agent}"]["patch"]
    assert [p["name"] for p in agent["parameters"]] == ["agent"]
    assert "422" in agent["responses"] and "401" in agent["responses"]
    assert document["components"]["schemas"]["AgentSpecInput"]["properties"]["kind"]["enum"] == ["chat", "voice"]
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_a_docstring_that_is_not_yaml_names_its_endpoint() -> None:
    async def broken(request: object) -> Response:
        """Broken.
        ---
        summary: Body {provider, name, public: {...}}
        responses: {200: {description: ok}}
        """
        return Response()

    async def bare(request: object) -> Response:
        """No operation here."""
        return Response()

    generator = AdminSchemaGenerator("/api/v1")
    with pytest.raises(DocstringError, match="broken: the docstring after '---' is not valid YAML"):
        generator.get_schema([Route("/x", broken)])
    with pytest.raises(DocstringError, match="bare: expected a summary and responses"):
        generator.get_schema([Route("/y", bare)])
