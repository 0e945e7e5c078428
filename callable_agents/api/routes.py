"""The admin API's workspace and integration endpoints, and :func:`admin_routes`, which
assembles every endpoint module's routes (this module imports them; none imports it).

Secrets are write-only here as everywhere: integration responses carry ``has_<field>`` and
at most the last four characters.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from callable_agents.api.conversations import conversation_routes
from callable_agents.api.requests import authenticated, json_body
from callable_agents.core.errors import InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of


async def get_workspace_info(request: Request, workspace: Workspace) -> Response:
    """
    summary: The workspace this API key belongs to.
    responses:
      200: {description: "id, slug and name"}
    """
    return JSONResponse({"id": workspace.id, "slug": workspace.slug, "name": workspace.name})


async def list_integrations_endpoint(request: Request, workspace: Workspace) -> Response:
    """
    summary: List connected integrations (secrets shown as has_<field> and last 4 characters).
    responses:
      200: {description: "a list of integrations"}
    """
    from callable_agents.core.store.integrations import describe_integration, list_integrations

    runtime = runtime_of(request)
    async with runtime.db.session() as session:
        rows = await list_integrations(session, workspace.id)
    providers = runtime.plugins.providers.types
    return JSONResponse({"integrations": [describe_integration(row, providers) for row in rows]})


async def connect_integration_endpoint(request: Request, workspace: Workspace) -> Response:
    """
    summary: Connect (or update) an integration. Body {provider, name, public: {...}, secrets: {...}, verify}.
    responses:
      201: {description: "the integration, without its secrets"}
      422: {description: "a field is missing or malformed, or the provider refused the credentials"}
    """
    from callable_agents.core.store.integrations import connect_checked

    body = await json_body(request)
    for field in ("provider", "name"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            raise InvalidInput(f"{field}: expected a non-empty string")
    for field in ("public", "secrets"):
        if not isinstance(body.get(field, {}), dict):
            raise InvalidInput(f"{field}: expected a JSON object")
    verify = body.get("verify", True)
    if not isinstance(verify, bool):
        raise InvalidInput("verify: expected true (check the credentials with the provider, the default) or false")
    # The provider checks the credentials before they are stored ("verify": false skips it,
    # for offline set-ups), exactly as `callable integrations connect` does.
    connected = await connect_checked(
        runtime_of(request),
        workspace,
        provider=body["provider"],
        name=body["name"],
        public=body.get("public", {}),
        secrets=body.get("secrets", {}),
        verify=verify,
    )
    return JSONResponse(connected.view, status_code=201)


async def remove_integration_endpoint(request: Request, workspace: Workspace) -> Response:
    """
    summary: Remove an integration by name or id.
    responses:
      204: {description: "removed"}
      404: {description: "no such integration"}
    """
    from callable_agents.core.store.integrations import remove_integration

    async with runtime_of(request).db.session() as session:
        await remove_integration(session, workspace.id, request.path_params["name"])
    return Response(status_code=204)


schemas = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "Callable Agents admin API", "version": "1"}})


def openapi(request: Request) -> Response:
    return JSONResponse(schemas.get_schema(routes=request.app.router.routes))


def admin_routes() -> list[BaseRoute]:
    """Every admin API route, for the server to mount at ``/api/v1``."""
    return [
        *conversation_routes(),
        Route("/workspace", authenticated(get_workspace_info), methods=["GET"]),
        Route("/integrations", authenticated(list_integrations_endpoint), methods=["GET"]),
        Route("/integrations", authenticated(connect_integration_endpoint), methods=["POST"]),
        Route("/integrations/{name}", authenticated(remove_integration_endpoint), methods=["DELETE"]),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    ]
