"""Channels in the admin API: list, read, create, change, delete, and a channel's templates.

Bodies are channel specs (:class:`~callable_agents.core.store.channels.ChannelSpecInput`:
the agent and integration by name, the kind's config checked by its channel type), stored
by :mod:`callable_agents.core.store.channels` as ``callable apply`` and the dashboard do.
Only a chat agent can answer on a channel: a voice agent is refused with the reason. Views
carry the addresses to paste into Twilio or share (webhook URLs, widget script, page link).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body, path_id
from callable_agents.core.contracts.channels import ChannelTemplatesError
from callable_agents.core.conversation.templates import available_templates, template_view
from callable_agents.core.errors import InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.channels import (
    channel_views,
    create_channel,
    delete_channel,
    get_channel,
    list_channels,
    update_channel,
)


async def list_channels_endpoint(request: Request, workspace: Workspace) -> Response:
    """The workspace's channels, optionally of one kind.
    ---
    summary: The workspace's channels (?kind=whatsapp filters), with their public addresses.
    parameters:
      - {name: kind, in: query, required: false, schema: {type: string}}
    responses:
      200: {description: "channels"}
    """
    kind = request.query_params.get("kind")
    runtime = runtime_of(request)
    if kind is not None and kind not in runtime.plugins.channels:
        known = ", ".join(sorted(runtime.plugins.channels.types))
        raise InvalidInput(f"kind: expected one of {known}, got {kind[:40]!r}", field="kind")
    async with runtime.db.sessions() as session:
        rows = await list_channels(session, workspace.id, kind=kind)
        views = await channel_views(session, runtime, workspace.id, rows)
    return JSONResponse({"channels": views})


async def create_channel_endpoint(request: Request, workspace: Workspace) -> Response:
    """Create a channel from a spec.
    ---
    summary: Create a channel answered by a chat agent.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/ChannelSpecInput"}
    responses:
      201: {description: "the channel with its public addresses"}
      409: {description: "the name or slug is taken"}
      422: {description: "a field is missing or malformed, or the agent is a voice agent (error.field names it)"}
    """
    runtime = runtime_of(request)
    body = await json_body(request)
    async with runtime.db.session() as session:
        channel = await create_channel(session, runtime, workspace.id, body)
        [view] = await channel_views(session, runtime, workspace.id, [channel])
    return JSONResponse(view, status_code=201)


async def get_channel_endpoint(request: Request, workspace: Workspace) -> Response:
    """One channel, by id or name.
    ---
    summary: One channel, by id or name, with its public addresses.
    responses:
      200: {description: "the channel"}
      404: {description: "not in this workspace"}
    """
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        channel = await get_channel(session, workspace.id, path_id(request, "channel"))
        [view] = await channel_views(session, runtime, workspace.id, [channel])
    return JSONResponse(view)


async def update_channel_endpoint(request: Request, workspace: Workspace) -> Response:
    """Change some of a channel's fields; each given field replaces the stored one whole.
    ---
    summary: Change a channel (agent, integration, slug, config, enabled, name; not its kind).
    requestBody:
      required: true
      content:
        application/json:
          schema: {type: object, description: "any fields of ChannelSpecInput"}
    responses:
      200: {description: "the channel"}
      404: {description: "not in this workspace"}
      409: {description: "the new name or slug is taken, or the kind would change"}
      422: {description: "a field is malformed, or the agent is a voice agent"}
    """
    runtime = runtime_of(request)
    body = await json_body(request)
    async with runtime.db.session() as session:
        channel, _changed = await update_channel(session, runtime, workspace.id, path_id(request, "channel"), body)
        [view] = await channel_views(session, runtime, workspace.id, [channel])
    return JSONResponse(view)


async def delete_channel_endpoint(request: Request, workspace: Workspace) -> Response:
    """Delete a channel and its conversations.
    ---
    summary: Delete a channel and its conversations (its addresses stop answering).
    responses:
      204: {description: "deleted"}
      404: {description: "not in this workspace"}
    """
    async with runtime_of(request).db.session() as session:
        await delete_channel(session, workspace.id, path_id(request, "channel"))
    return Response(status_code=204)


async def channel_templates_endpoint(request: Request, workspace: Workspace) -> Response:
    """The templates a person may send on a channel outside its reply window.
    ---
    summary: A channel's templates (its configured one first, then the provider account's approved ones).
    responses:
      200: {description: "templates: id, label, name, language, category, status, configured, variables, takes_text"}
      404: {description: "not in this workspace"}
      502: {description: "the provider could not be asked (error.message says why)"}
    """
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        channel = await get_channel(session, workspace.id, path_id(request, "channel"))
    try:
        templates = await available_templates(runtime, channel, strict=True)
    except ChannelTemplatesError as exc:
        return JSONResponse({"error": {"code": "provider_unavailable", "message": str(exc)}}, status_code=502)
    return JSONResponse({"templates": [template_view(t) for t in templates]})


def channel_routes() -> list[BaseRoute]:
    return [
        Route("/channels", authenticated(list_channels_endpoint), methods=["GET"]),
        Route("/channels", authenticated(create_channel_endpoint), methods=["POST"]),
        Route("/channels/{channel}", authenticated(get_channel_endpoint), methods=["GET"]),
        Route("/channels/{channel}/templates", authenticated(channel_templates_endpoint), methods=["GET"]),
        Route("/channels/{channel}", authenticated(update_channel_endpoint), methods=["PATCH"]),
        Route("/channels/{channel}", authenticated(delete_channel_endpoint), methods=["DELETE"]),
    ]
