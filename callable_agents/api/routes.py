"""The admin API's route table: every endpoint module's routes, the workspace endpoint and
the OpenAPI document (this module imports the endpoint modules; none imports it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.channel_setup import channel_setup_routes
from callable_agents.api.agents import agent_routes
from callable_agents.api.catalog import catalog_routes
from callable_agents.api.channels import channel_routes
from callable_agents.api.conversations import conversation_routes
from callable_agents.api.integrations import integration_routes
from callable_agents.api.keys import key_routes
from callable_agents.api.knowledge import knowledge_routes
from callable_agents.api.members import member_routes
from callable_agents.api.openapi import AdminSchemaGenerator
from callable_agents.api.requests import authenticated
from callable_agents.core.models import Workspace

PREFIX = "/api/v1"


async def get_workspace_info(request: Request, workspace: Workspace) -> Response:
    """The workspace the API key belongs to.
    ---
    summary: The workspace this API key belongs to.
    responses:
      200: {description: "id, slug and name"}
    """
    return JSONResponse({"id": workspace.id, "slug": workspace.slug, "name": workspace.name})


def endpoint_routes() -> list[BaseRoute]:
    """Every documented endpoint (what the OpenAPI document describes)."""
    return [
        Route("/workspace", authenticated(get_workspace_info), methods=["GET"]),
        *agent_routes(),
        *knowledge_routes(),
        *channel_routes(),
        *channel_setup_routes(),
        *integration_routes(),
        *member_routes(),
        *key_routes(),
        *conversation_routes(),
        *catalog_routes(),
    ]


def openapi_document() -> dict[str, object]:
    """The admin API's OpenAPI 3.1 document (public: it holds no workspace data)."""
    return AdminSchemaGenerator(PREFIX).get_schema(endpoint_routes())


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def admin_routes() -> list[BaseRoute]:
    """Every admin API route, for the server to mount at ``/api/v1``."""
    return [*endpoint_routes(), Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False)]
