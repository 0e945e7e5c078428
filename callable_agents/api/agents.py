"""Agents in the admin API: list, read, create, change, delete.

Bodies are agent specs (:class:`~callable_agents.core.store.agent_spec.AgentSpecInput`),
validated and stored by :mod:`callable_agents.core.store.agents`, exactly as ``callable
apply`` and the dashboard do. A 422 names every field at fault (``error.field`` the first,
``error.problems`` all of them).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body, path_id
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.agents import (
    agent_views,
    create_agent,
    delete_agent,
    get_agent,
    list_agents,
    update_agent,
)


async def list_agents_endpoint(request: Request, workspace: Workspace) -> Response:
    """The workspace's agents.
    ---
    summary: The workspace's agents, by name.
    responses:
      200: {description: "agents (knowledge bases by name and id)"}
    """
    async with runtime_of(request).db.sessions() as session:
        views = await agent_views(session, workspace.id, await list_agents(session, workspace.id))
    return JSONResponse({"agents": views})


async def create_agent_endpoint(request: Request, workspace: Workspace) -> Response:
    """Create an agent from a spec.
    ---
    summary: Create a chat or voice agent.
    requestBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/AgentSpecInput"}
    responses:
      201: {description: "the agent"}
      409: {description: "an agent of that name exists"}
      422: {description: "a field is missing or malformed (error.field names it)"}
    """
    runtime = runtime_of(request)
    body = await json_body(request)
    async with runtime.db.session() as session:
        agent = await create_agent(session, runtime, workspace.id, body)
        [view] = await agent_views(session, workspace.id, [agent])
    return JSONResponse(view, status_code=201)


async def get_agent_endpoint(request: Request, workspace: Workspace) -> Response:
    """One agent, by id or name.
    ---
    summary: One agent, by id or name.
    responses:
      200: {description: "the agent"}
      404: {description: "not in this workspace"}
    """
    async with runtime_of(request).db.sessions() as session:
        agent = await get_agent(session, workspace.id, path_id(request, "agent"))
        [view] = await agent_views(session, workspace.id, [agent])
    return JSONResponse(view)


async def update_agent_endpoint(request: Request, workspace: Workspace) -> Response:
    """Change some of an agent's fields; each given field replaces the stored one whole.
    ---
    summary: Change an agent (the fields given replace the stored ones; name renames it).
    requestBody:
      required: true
      content:
        application/json:
          schema: {type: object, description: "any fields of AgentSpecInput"}
    responses:
      200: {description: "the agent"}
      404: {description: "not in this workspace"}
      409: {description: "the new name is taken"}
      422: {description: "a field is malformed, or a channel's agent would become a voice agent"}
    """
    runtime = runtime_of(request)
    body = await json_body(request)
    async with runtime.db.session() as session:
        agent, _changed = await update_agent(session, runtime, workspace.id, path_id(request, "agent"), body)
        [view] = await agent_views(session, workspace.id, [agent])
    return JSONResponse(view)


async def delete_agent_endpoint(request: Request, workspace: Workspace) -> Response:
    """Delete an agent no channel uses.
    ---
    summary: Delete an agent no channel uses.
    responses:
      204: {description: "deleted"}
      404: {description: "not in this workspace"}
      409: {description: "channels use it (they are named)"}
    """
    async with runtime_of(request).db.session() as session:
        await delete_agent(session, workspace.id, path_id(request, "agent"))
    return Response(status_code=204)


def agent_routes() -> list[BaseRoute]:
    return [
        Route("/agents", authenticated(list_agents_endpoint), methods=["GET"]),
        Route("/agents", authenticated(create_agent_endpoint), methods=["POST"]),
        Route("/agents/{agent}", authenticated(get_agent_endpoint), methods=["GET"]),
        Route("/agents/{agent}", authenticated(update_agent_endpoint), methods=["PATCH"]),
        Route("/agents/{agent}", authenticated(delete_agent_endpoint), methods=["DELETE"]),
    ]
