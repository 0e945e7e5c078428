"""What the loaded plugins offer, for clients that build forms: ``GET /api/v1/catalog``.

Tool types, channel types, integration providers and source kinds, each with the JSON
Schema of its settings (:meth:`~callable_agents.core.plugins.Plugins.catalog`), so a
third-party plugin's type can be configured through the API with no code of its own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of


async def get_catalog(request: Request, workspace: Workspace) -> Response:
    """The loaded plugins' types with their settings' JSON Schemas.
    ---
    summary: Tool types, channel types, integration providers and source kinds, each with the JSON Schema of its settings.
    responses:
      200: {description: "{tools, channels, providers, sources}"}
    """
    return JSONResponse(runtime_of(request).plugins.catalog())


def catalog_routes() -> list[BaseRoute]:
    return [Route("/catalog", authenticated(get_catalog), methods=["GET"])]
