"""Admin API keys in the admin API: list, create (the key shown once), revoke.

Keys are stored as SHA-256 (:mod:`callable_agents.core.store.workspaces`); a list shows
each key's prefix, label, dates and state, never the key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body, path_id, text_field
from callable_agents.core.errors import NotFound
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.workspaces import create_api_key, describe_api_key, list_api_keys, revoke_api_key

MAX_KEY_NAME = 100


async def list_keys_endpoint(request: Request, workspace: Workspace) -> Response:
    """The workspace's API keys, without the keys.
    ---
    summary: The workspace's API keys (prefix, name, dates, active or revoked; never the keys).
    responses:
      200: {description: "API keys"}
    """
    async with runtime_of(request).db.sessions() as session:
        rows = await list_api_keys(session, workspace.id)
    return JSONResponse({"keys": [describe_api_key(row) for row in rows]})


async def create_key_endpoint(request: Request, workspace: Workspace) -> Response:
    """Create an API key; the response is the only time the key is shown.
    ---
    summary: Create an API key (the key is in this response only; store it now).
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              name: {type: string, description: "a label to recognise the key by"}
    responses:
      201: {description: "the key's description plus key, shown once"}
      422: {description: "name is not a string"}
    """
    body = await json_body(request, allowed=("name",))
    name = text_field(body, "name", default="default", max_length=MAX_KEY_NAME).strip() or "default"
    async with runtime_of(request).db.session() as session:
        row, key = await create_api_key(session, workspace.id, name)
        view = describe_api_key(row)
    return JSONResponse({**view, "key": key}, status_code=201)


async def revoke_key_endpoint(request: Request, workspace: Workspace) -> Response:
    """Revoke an API key by id or prefix; it stops working on the next request.
    ---
    summary: Revoke an API key by id or prefix (requests with it get 401 from then on).
    responses:
      200: {description: "the revoked key's description"}
      404: {description: "not in this workspace"}
      409: {description: "already revoked"}
    """
    wanted = path_id(request, "key")
    async with runtime_of(request).db.session() as session:
        # By id or prefix only: a name may be shared, and the URL names one key.
        if not any(wanted in (row.id, row.prefix) for row in await list_api_keys(session, workspace.id)):
            raise NotFound(f"key: no API key {wanted[:24]!r} in this workspace")
        row = await revoke_api_key(session, workspace.id, wanted)
        view = describe_api_key(row)
    return JSONResponse(view)


def key_routes() -> list[BaseRoute]:
    return [
        Route("/keys", authenticated(list_keys_endpoint), methods=["GET"]),
        Route("/keys", authenticated(create_key_endpoint), methods=["POST"]),
        Route("/keys/{key}", authenticated(revoke_key_endpoint), methods=["DELETE"]),
    ]
