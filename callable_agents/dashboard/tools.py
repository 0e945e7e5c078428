"""``/dashboard/tools``: the tool types the loaded plugins provide, their settings, and who uses them.

Each type shows its plugin, description and config fields (the same generated controls the
Agents builder shows, :func:`~callable_agents.dashboard.schema_forms.fields_of`), and the
workspace's agents that use it, under which name.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.agents import list_agents
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render
from callable_agents.dashboard.schema_forms import fields_of


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        agents = await list_agents(session, viewer.workspace_id)
    used: dict[str, list[dict[str, str]]] = {}
    for agent in agents:
        for tool in agent.tools or []:
            used.setdefault(str(tool["type"]), []).append({"agent": agent.name, "agent_id": agent.id, "name": str(tool["name"])})
    registry = runtime.plugins.tools
    tool_types: list[dict[str, Any]] = [
        {
            "name": tool.name,
            "description": tool.description,
            "plugin": registry.owners.get(tool.name, ""),
            "offline": tool.offline_route is not None,
            "fields": fields_of(tool.config_schema),
            "used_by": used.get(tool.name, []),
        }
        for tool in sorted(registry, key=lambda t: t.name)
    ]
    return render(request, "tools/index.html", {"section": "tools", "tool_types": tool_types})


def routes() -> list[BaseRoute]:
    return [Route("/tools", index, methods=["GET"])]
