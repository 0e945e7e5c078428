"""Integrations in the admin API: list, read, connect, rotate secrets, remove.

Connecting takes the one "check, then store" path the CLI and the dashboard take
(:func:`~callable_agents.core.store.integrations.connect_checked`): the provider checks the
credentials live (Twilio fetches the account, OpenAI lists models) before anything is
stored, so a refused token is a 422 with the reason and stores nothing; a provider that
cannot be reached is a 422 that says so (and that ``"verify": false`` stores without the check). Secrets are write-only: responses carry
``has_<field>`` and at most the last four characters.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body, object_field, path_id, text_field
from callable_agents.core.errors import InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.integrations import (
    ConnectedIntegration,
    ProviderUnreachable,
    connect_checked,
    describe_integration,
    get_integration,
    list_integrations,
    remove_integration,
)

CONNECT_FIELDS = ("provider", "name", "public", "secrets", "verify")
UPDATE_FIELDS = ("public", "secrets", "verify")


async def list_integrations_endpoint(request: Request, workspace: Workspace) -> Response:
    """The workspace's integrations, secrets masked.
    ---
    summary: The workspace's integrations (secrets as has_<field> and <field>_last4, never the values).
    responses:
      200: {description: "integrations"}
    """
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        rows = await list_integrations(session, workspace.id)
    providers = runtime.plugins.providers.types
    return JSONResponse({"integrations": [describe_integration(row, providers) for row in rows]})


async def get_integration_endpoint(request: Request, workspace: Workspace) -> Response:
    """One integration, by name or id, secrets masked.
    ---
    summary: One integration, by name or id (secrets masked).
    responses:
      200: {description: "the integration"}
      404: {description: "not in this workspace"}
    """
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        row = await get_integration(session, workspace.id, path_id(request, "integration"))
    return JSONResponse(describe_integration(row, runtime.plugins.providers.types))


def _verify_flag(body: dict[str, Any]) -> bool:
    verify = body.get("verify", True)
    if not isinstance(verify, bool):
        raise InvalidInput(
            "verify: expected true (check the credentials with the provider, the default) or false", field="verify"
        )
    return verify


async def _connect(request: Request, workspace: Workspace, provider: str, name: str, body: dict[str, Any]) -> ConnectedIntegration:
    """connect_checked, with the API's way out when the provider cannot be reached."""
    public, secrets = object_field(body, "public"), object_field(body, "secrets")
    try:
        return await connect_checked(
            runtime_of(request), workspace, provider=provider, name=name, public=public, secrets=secrets,
            verify=_verify_flag(body),
        )
    except ProviderUnreachable as exc:
        raise ProviderUnreachable(
            f'{exc}. To store the credentials without checking them (offline set-ups), send "verify": false'
        ) from None


async def connect_integration_endpoint(request: Request, workspace: Workspace) -> Response:
    """Connect an integration, or update the one of that name.
    ---
    summary: Connect (or update) an integration; the provider checks the credentials before anything is stored.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [provider, name]
            properties:
              provider: {type: string, description: "twilio, openai, http or a plugin's provider"}
              name: {type: string, description: "the name agents and channels refer to it by"}
              public: {type: object, description: "the provider's public fields (twilio account_sid, api_key_sid)"}
              secrets: {type: object, description: "the provider's secret fields (twilio auth_token); write-only"}
              verify: {type: boolean, default: true, description: "false stores without checking (offline set-ups)"}
    responses:
      201: {description: "the integration, secrets masked"}
      409: {description: "the name is taken by another provider's integration"}
      422: {description: "a field is missing or malformed, or the provider refused the credentials or could not be reached (the message says which); nothing was stored"}
    """
    body = await json_body(request, allowed=CONNECT_FIELDS)
    provider, name = text_field(body, "provider", max_length=100), text_field(body, "name", max_length=100)
    connected = await _connect(request, workspace, provider, name, body)
    return JSONResponse(connected.view, status_code=201)


async def update_integration_endpoint(request: Request, workspace: Workspace) -> Response:
    """Rotate secrets or change public fields; left-out fields keep their stored values.
    ---
    summary: Change an integration (rotate a secret; the fields left out are kept), checked with the provider first.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            properties:
              public: {type: object}
              secrets: {type: object}
              verify: {type: boolean, default: true}
    responses:
      200: {description: "the integration, secrets masked"}
      404: {description: "not in this workspace"}
      422: {description: "a field is malformed, or the provider refused the credentials or could not be reached; nothing was changed"}
    """
    body = await json_body(request, allowed=UPDATE_FIELDS)
    async with runtime_of(request).db.sessions() as session:
        row = await get_integration(session, workspace.id, path_id(request, "integration"))
    connected = await _connect(request, workspace, row.provider, row.name, body)
    return JSONResponse(connected.view)


async def remove_integration_endpoint(request: Request, workspace: Workspace) -> Response:
    """Remove an integration and its secrets, unless channels or agents use it.
    ---
    summary: Remove an integration by name or id (refused while channels or agents use it, naming them).
    responses:
      204: {description: "removed"}
      404: {description: "not in this workspace"}
      409: {description: "in use"}
    """
    async with runtime_of(request).db.session() as session:
        await remove_integration(session, workspace.id, path_id(request, "integration"))
    return Response(status_code=204)


def integration_routes() -> list[BaseRoute]:
    return [
        Route("/integrations", authenticated(list_integrations_endpoint), methods=["GET"]),
        Route("/integrations", authenticated(connect_integration_endpoint), methods=["POST"]),
        Route("/integrations/{integration}", authenticated(get_integration_endpoint), methods=["GET"]),
        Route("/integrations/{integration}", authenticated(update_integration_endpoint), methods=["PATCH"]),
        Route("/integrations/{integration}", authenticated(remove_integration_endpoint), methods=["DELETE"]),
    ]
