"""Resolving what one agent turn needs: retriever, chat models, tools, channel capabilities.

Chat models are cached per agent version (``Agent.updated_at``) for
:data:`MODEL_CACHE_SECONDS`: building clients (and decrypting the key) per message would
cost more than the rest of the turn. A changed integration key is picked up within that
time; a changed agent at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from sqlalchemy import select

from callable_agents.core.contracts.channels import ChannelCapabilities
from callable_agents.core.errors import ConfigError
from callable_agents.core.conversation.turn.context import TurnDeps
from callable_agents.core.http_safety import shared_http_client
from callable_agents.core.llm import ModelConfig, build_chat_models, is_offline
from callable_agents.core.models import Agent, Integration, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.contracts.tools import OfflineRoute, ToolContext

MODEL_CACHE = "chat_model_cache"
MODEL_CACHE_SECONDS = 30.0
SEARCH_K = 4


async def chat_models_for(runtime: Runtime, agent: Agent) -> list[BaseChatModel]:
    """The agent's chat models (primary, fallback), or [] for offline mode.

    The key comes from the agent's OpenAI integration (through the vault) or, when no
    integration is named, from ``OPENAI_API_KEY``.
    """
    settings = agent.model_settings or {}
    if is_offline(settings):
        return []
    cache = runtime.services.chat_models
    key = (agent.id, agent.updated_at)
    cached = cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < MODEL_CACHE_SECONDS:
        return cached[1]
    integration_name = settings.get("integration")
    integration: Integration | None = None
    if integration_name:
        async with runtime.db.session() as session:
            integration = await session.scalar(
                select(Integration).where(
                    Integration.workspace_id == agent.workspace_id, Integration.name == integration_name
                )
            )
            workspace = await session.get(Workspace, agent.workspace_id)
        if integration is None or workspace is None:
            raise ConfigError(
                f"agent {agent.name!r}: model_settings.integration {integration_name!r} is not connected "
                "(callable integrations connect openai --name ...)"
            )
    api_key: str | None = None
    public: dict[str, Any] = {}
    if integration is not None:
        api_key = runtime.vault.decrypt(workspace, integration.id, "api_key", integration.secrets["api_key"])  # type: ignore[arg-type]
        public = integration.public or {}
    elif not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(f"agent {agent.name!r}: no model key: attach an OpenAI integration or set OPENAI_API_KEY")
    config = ModelConfig.from_model_settings(
        settings,
        api_key=api_key,
        base_url=public.get("base_url"),
        organization=public.get("organization"),
    )
    models: list[BaseChatModel] = list(build_chat_models(config, http_client=shared_http_client(runtime)))
    if len(cache) > 256:
        cache.clear()
    cache[key] = (time.monotonic(), models)
    return models


def tools_for(
    runtime: Runtime,
    agent: Agent,
    *,
    conversation_id: str | None,
    channel_kind: str,
) -> list[BaseTool]:
    """Build the agent's tools for one turn."""
    built: list[BaseTool] = []
    for spec in agent.tools or []:
        tool_type = runtime.plugins.tools.get(spec["type"])
        config = tool_type.config_schema.model_validate(spec.get("config") or {})
        context = ToolContext(
            runtime=runtime,
            workspace_id=agent.workspace_id,
            agent_id=agent.id,
            tool_name=spec["name"],
            config=config,
            conversation_id=conversation_id,
            channel_kind=channel_kind,
            business_info=dict(getattr(agent, "business_info", None) or {}),
        )
        tool = tool_type.factory(context)
        tool.metadata = {**(tool.metadata or {}), "callable_tool_type": spec["type"]}
        built.append(tool)
    return built


def offline_routes_for(runtime: Runtime, agent: Agent) -> Mapping[str, OfflineRoute]:
    """Offline mode's routes of the agent's tools, by tool name, in the agent's order."""
    routes: dict[str, OfflineRoute] = {}
    for spec in agent.tools or []:
        route = runtime.plugins.tools.get(spec["type"]).offline_route
        if route is not None:
            routes[spec["name"]] = route
    return routes


def search_for(runtime: Runtime, agent: Agent):  # type: ignore[no-untyped-def]
    """A search function over the agent's knowledge bases, or None without any."""
    knowledge_base_ids: Sequence[str] = agent.knowledge_base_ids or []
    if not knowledge_base_ids:
        return None
    from callable_agents.core.knowledge import KnowledgeService

    service = KnowledgeService.of(runtime)

    async def search(query: str) -> Sequence[Any]:
        return await service.search(agent.workspace_id, knowledge_base_ids, query, k=SEARCH_K)

    return search


async def resolve_turn_deps(
    runtime: Runtime,
    agent: Agent,
    *,
    capabilities: ChannelCapabilities,
    channel_kind: str,
    conversation_id: str | None,
) -> TurnDeps:
    return TurnDeps(
        agent=agent,
        capabilities=capabilities,
        search=search_for(runtime, agent),
        models=await chat_models_for(runtime, agent),
        tools=tools_for(runtime, agent, conversation_id=conversation_id, channel_kind=channel_kind),
        offline_routes=offline_routes_for(runtime, agent),
        channel_kind=channel_kind,
    )
