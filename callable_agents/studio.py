"""The agent graph for LangGraph Studio / ``langgraph dev`` (see ``langgraph.json``).

Compiled without a checkpointer (the LangGraph API server brings its own). A run picks its
agent through the run context — ``{"workspace": "demo", "agent": "assistant",
"channel_kind": "<a channel type>"}``, the demo agent with default capabilities by default —
and its dependencies are loaded from the database named by the ``CALLABLE_*`` settings,
exactly as a turn would load them.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from callable_agents.core.bootstrap import open_runtime
from callable_agents.core.contracts.channels import ChannelCapabilities
from callable_agents.core.config import load_settings
from callable_agents.core.errors import NotFound
from callable_agents.core.conversation.turn.context import AgentContext, TurnDeps, set_deps_resolver
from callable_agents.core.conversation.turn.graph import build_graph
from callable_agents.core.models import Agent, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.conversation.turn.deps import resolve_turn_deps

_runtime: list[Runtime] = []
_lock = asyncio.Lock()


async def _shared_runtime() -> Runtime:
    async with _lock:
        if not _runtime:
            settings = await asyncio.to_thread(load_settings)
            _runtime.append(await open_runtime(settings))
        return _runtime[0]


async def resolve_from_names(context: AgentContext) -> TurnDeps:
    runtime = await _shared_runtime()
    async with runtime.db.session() as session:
        agent = await session.scalar(
            select(Agent)
            .join(Workspace, Workspace.id == Agent.workspace_id)
            .where(Workspace.slug == context.workspace, Agent.name == context.agent)
        )
    if agent is None:
        raise NotFound(
            f"agent {context.agent!r} in workspace {context.workspace!r} not found: run `callable demo` once, "
            "or pass context {'workspace': ..., 'agent': ...}"
        )
    if context.channel_kind in runtime.plugins.channels:
        capabilities = runtime.plugins.channels.get(context.channel_kind).capabilities
    else:
        capabilities = ChannelCapabilities()
    return await resolve_turn_deps(
        runtime, agent, capabilities=capabilities, channel_kind=context.channel_kind, conversation_id=None
    )


set_deps_resolver(resolve_from_names)
graph = build_graph().compile()
graph.name = "callable-agent"
