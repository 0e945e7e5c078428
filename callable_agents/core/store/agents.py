"""Agents: workspace-scoped data access and the snapshot the graph runs on.

An agent is stored as one :class:`~callable_agents.core.models.Agent` row, written from a
spec that :mod:`callable_agents.core.store.agent_spec` has validated.
:func:`create_or_update_agent` writes only the columns that differ, so saving the same
agent twice leaves the row (and its ``updated_at``) untouched. :class:`AgentSnapshot` is
an agent as it was read, detached from the session: what one graph run uses.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.db import find_named, scoped
from callable_agents.core.errors import Conflict, NotFound
from callable_agents.core.models import Agent, Channel, Integration, KnowledgeBase
from callable_agents.core.store.agent_spec import (
    DEFAULT_MAX_TOOL_ROUNDS,
    AgentSpecInput,
    Problem,
    SpecError,
    _plugins_of,
    agent_reference_problems,
    validate_agent_spec,
)

if TYPE_CHECKING:
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.runtime import Runtime

__all__ = [
    "AgentSnapshot",
    "AgentTool",
    "agent_spec_of",
    "agent_views",
    "create_agent",
    "create_or_update_agent",
    "delete_agent",
    "describe_agent",
    "find_agent",
    "get_agent",
    "list_agents",
    "update_agent",
]

# Settings the graph reads itself; the chat-model factory (core/llm.py) is given the rest.
GRAPH_MODEL_SETTINGS = frozenset({"max_tool_rounds"})


# --------------------------------------------------------------------------- data access


async def find_agent(session: AsyncSession, workspace_id: str, name_or_id: str) -> Agent | None:
    return await find_named(session, Agent, workspace_id, name_or_id)


async def get_agent(session: AsyncSession, workspace_id: str, name_or_id: str) -> Agent:
    agent = await find_agent(session, workspace_id, name_or_id)
    if agent is None:
        raise NotFound(f"agent {name_or_id[:100]!r} not found in this workspace (`callable agents list` shows them)")
    return agent


async def list_agents(session: AsyncSession, workspace_id: str) -> Sequence[Agent]:
    return (await session.scalars(scoped(Agent, workspace_id).order_by(Agent.name))).all()


async def _integration_providers(session: AsyncSession, workspace_id: str) -> dict[str, str]:
    rows = await session.execute(
        select(Integration.name, Integration.provider).where(Integration.workspace_id == workspace_id)
    )
    return {name: provider for name, provider in rows.all()}


async def _knowledge_base_ids(session: AsyncSession, workspace_id: str) -> dict[str, str]:
    rows = await session.execute(
        select(KnowledgeBase.name, KnowledgeBase.id).where(KnowledgeBase.workspace_id == workspace_id)
    )
    return {name: kb_id for name, kb_id in rows.all()}


def agent_columns(spec: AgentSpecInput, knowledge_base_ids: Mapping[str, str]) -> dict[str, Any]:
    """The stored form of a validated spec: the ``Agent`` column values."""
    return {
        "kind": spec.kind,
        "system_prompt": spec.system_prompt,
        "business_info": spec.business_info.model_dump(mode="json"),
        "model_settings": spec.model_settings.stored(),
        "tools": [tool.model_dump(mode="json") for tool in spec.tools],
        "knowledge_base_ids": [knowledge_base_ids[name] for name in spec.knowledge_bases],
        "greeting": spec.greeting,
        "fallback_message": spec.fallback_message,
    }


async def _stored_columns(
    session: AsyncSession,
    runtime_or_plugins: Runtime | Plugins,
    workspace_id: str,
    spec: AgentSpecInput | Mapping[str, Any],
) -> tuple[AgentSpecInput, dict[str, Any]]:
    """The validated spec and its column values; :class:`SpecError` names every field at fault."""
    validated = validate_agent_spec(spec, runtime_or_plugins)
    kb_ids = await _knowledge_base_ids(session, workspace_id)
    problems = agent_reference_problems(
        validated, integrations=await _integration_providers(session, workspace_id), knowledge_bases=kb_ids
    )
    if problems:
        raise SpecError(problems)
    return validated, agent_columns(validated, kb_ids)


async def _channels_using(session: AsyncSession, workspace_id: str, agent_id: str) -> list[str]:
    names = await session.scalars(
        select(Channel.name).where(Channel.workspace_id == workspace_id, Channel.agent_id == agent_id)
    )
    return sorted(names.all())


async def _apply_columns(session: AsyncSession, agent: Agent, desired: Mapping[str, Any]) -> bool:
    """Set the columns that differ; a channel's agent must stay a chat agent."""
    if desired["kind"] != "chat" and agent.kind == "chat":
        channels = await _channels_using(session, agent.workspace_id, agent.id)
        if channels:
            raise SpecError(
                [
                    Problem(
                        ("kind",),
                        f"agent {agent.name!r} answers on channel(s) {', '.join(channels)}, which carry text; "
                        f"a {desired['kind']} agent cannot answer there (attach another agent to them first)",
                    )
                ]
            )
    changed = False
    for column, value in desired.items():
        if getattr(agent, column) != value:
            setattr(agent, column, value)
            changed = True
    if changed:
        await session.flush()
    return changed


async def create_or_update_agent(
    session: AsyncSession,
    runtime_or_plugins: Runtime | Plugins,
    workspace_id: str,
    spec: AgentSpecInput | Mapping[str, Any],
) -> tuple[Agent, bool]:
    """Create the agent ``spec.name`` or bring the stored one in line with ``spec``.

    Returns the row and whether anything was written. Only columns that differ are set, so
    an unchanged agent keeps its ``updated_at``. Raises :class:`SpecError` naming each field
    at fault (nothing is written then), also when an agent channels use would stop being a
    chat agent.
    """
    validated, desired = await _stored_columns(session, runtime_or_plugins, workspace_id, spec)
    agent = await session.scalar(scoped(Agent, workspace_id).where(Agent.name == validated.name))
    if agent is None:
        agent = Agent(workspace_id=workspace_id, name=validated.name, **desired)
        session.add(agent)
        await session.flush()
        return agent, True
    return agent, await _apply_columns(session, agent, desired)


async def create_agent(
    session: AsyncSession,
    runtime_or_plugins: Runtime | Plugins,
    workspace_id: str,
    spec: AgentSpecInput | Mapping[str, Any],
) -> Agent:
    """Create a new agent; an agent of the same name is a :class:`Conflict` (update it instead)."""
    validated, desired = await _stored_columns(session, runtime_or_plugins, workspace_id, spec)
    if await find_agent(session, workspace_id, validated.name) is not None:
        raise Conflict(f"name: an agent named {validated.name!r} already exists in this workspace; update it instead")
    agent = Agent(workspace_id=workspace_id, name=validated.name, **desired)
    session.add(agent)
    await session.flush()
    return agent


async def agent_spec_of(session: AsyncSession, agent: Agent) -> dict[str, Any]:
    """The stored agent as a spec (knowledge bases by name): what an update starts from."""
    kb_names = {kb_id: name for name, kb_id in (await _knowledge_base_ids(session, agent.workspace_id)).items()}
    return {
        "name": agent.name,
        "kind": agent.kind,
        "system_prompt": agent.system_prompt or "",
        "business_info": copy.deepcopy(agent.business_info or {}),
        "model_settings": copy.deepcopy(agent.model_settings or {}),
        "knowledge_bases": [kb_names[kb_id] for kb_id in agent.knowledge_base_ids or [] if kb_id in kb_names],
        "tools": copy.deepcopy(agent.tools or []),
        "greeting": agent.greeting or "",
        "fallback_message": agent.fallback_message or "",
    }


async def update_agent(
    session: AsyncSession,
    runtime_or_plugins: Runtime | Plugins,
    workspace_id: str,
    name_or_id: str,
    changes: Mapping[str, Any],
) -> tuple[Agent, bool]:
    """Change some of an agent's fields (each given field replaces the stored one, whole).

    ``changes`` holds spec fields (:class:`AgentSpecInput`); a new ``name`` renames the
    agent (channels keep it: they refer to it by id). The result is validated as a whole, as
    :func:`create_or_update_agent` does. Returns the row and whether anything changed.
    """
    agent = await get_agent(session, workspace_id, name_or_id)
    spec = {**await agent_spec_of(session, agent), **dict(changes)}
    validated, desired = await _stored_columns(session, runtime_or_plugins, workspace_id, spec)
    renamed = validated.name != agent.name
    if renamed:
        holder = await find_agent(session, workspace_id, validated.name)
        if holder is not None and holder.id != agent.id:
            raise Conflict(f"name: an agent named {validated.name!r} already exists in this workspace")
        agent.name = validated.name
    return agent, await _apply_columns(session, agent, desired) or renamed


async def delete_agent(session: AsyncSession, workspace_id: str, name_or_id: str) -> Agent:
    """Delete an agent no channel uses (a channel must be moved to another agent first)."""
    agent = await get_agent(session, workspace_id, name_or_id)
    channels = await _channels_using(session, workspace_id, agent.id)
    if channels:
        raise Conflict(
            f"agent {agent.name!r} is used by channel(s) {', '.join(channels)}; "
            "attach them to another agent or delete them first"
        )
    await session.delete(agent)
    await session.flush()
    return agent


def describe_agent(agent: Agent) -> dict[str, Any]:
    """The agent as people and APIs see it. Agents hold no secrets (integrations are referenced by name)."""
    return {
        "id": agent.id,
        "name": agent.name,
        "kind": agent.kind,
        "system_prompt": agent.system_prompt,
        "business_info": copy.deepcopy(agent.business_info or {}),
        "model_settings": copy.deepcopy(agent.model_settings or {}),
        "knowledge_base_ids": list(agent.knowledge_base_ids or []),
        "tools": copy.deepcopy(agent.tools or []),
        "greeting": agent.greeting,
        "fallback_message": agent.fallback_message,
        "created_at": agent.created_at.isoformat() if agent.created_at else None,
        "updated_at": agent.updated_at.isoformat() if agent.updated_at else None,
    }


async def agent_views(session: AsyncSession, workspace_id: str, agents: Sequence[Agent]) -> list[dict[str, Any]]:
    """:func:`describe_agent` of each, plus ``knowledge_bases``: their names (ids of deleted
    ones as they are), read in one query for them all."""
    names = {kb_id: name for name, kb_id in (await _knowledge_base_ids(session, workspace_id)).items()}
    views = []
    for agent in agents:
        view = describe_agent(agent)
        view["knowledge_bases"] = [names.get(kb_id, kb_id) for kb_id in view["knowledge_base_ids"]]
        views.append(view)
    return views


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class AgentTool:
    """One tool of an agent: its registered type, the name the model calls, its stored config."""

    type: str
    name: str
    config: Mapping[str, Any]

    def validated_config(self, runtime_or_plugins: Runtime | Plugins) -> BaseModel:
        """The config as the tool type's schema model (what :class:`~callable_agents.core.contracts.tools.ToolContext` holds)."""
        schema = _plugins_of(runtime_or_plugins).tools.get(self.type).config_schema
        return schema.model_validate(dict(self.config))


@dataclass(frozen=True)
class AgentSnapshot:
    """An agent as it was read, detached from the session: what one graph run uses.

    ``model_settings`` is the stored mapping: the chat-model factory's settings
    (:func:`callable_agents.core.llm.validate_model_settings`) plus the graph's own
    ``max_tool_rounds`` (:data:`GRAPH_MODEL_SETTINGS`, also given as :attr:`max_tool_rounds`),
    which must be left out when building the model. Mappings are copies, so a run cannot
    change the stored row.
    """

    id: str
    workspace_id: str
    name: str
    kind: str
    system_prompt: str
    business_info: Mapping[str, Any]
    model_settings: Mapping[str, Any]
    tools: tuple[AgentTool, ...]
    knowledge_base_ids: tuple[str, ...]
    greeting: str
    fallback_message: str
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS
    updated_at: datetime | None = None

    @classmethod
    def of(cls, agent: Agent) -> AgentSnapshot:
        settings = dict(copy.deepcopy(agent.model_settings or {}))
        rounds = settings.get("max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)
        return cls(
            id=agent.id,
            workspace_id=agent.workspace_id,
            name=agent.name,
            kind=agent.kind,
            system_prompt=agent.system_prompt or "",
            business_info=copy.deepcopy(agent.business_info or {}),
            model_settings=settings,
            tools=tuple(
                AgentTool(type=tool["type"], name=tool["name"], config=copy.deepcopy(tool.get("config") or {}))
                for tool in agent.tools or []
            ),
            knowledge_base_ids=tuple(agent.knowledge_base_ids or ()),
            greeting=agent.greeting or "",
            fallback_message=agent.fallback_message or "",
            max_tool_rounds=int(rounds),
            updated_at=agent.updated_at,
        )

    @property
    def chat_model_settings(self) -> dict[str, Any]:
        """What :meth:`callable_agents.core.llm.ModelConfig.from_model_settings` takes (no graph settings)."""
        return {key: value for key, value in self.model_settings.items() if key not in GRAPH_MODEL_SETTINGS}

    @property
    def offline(self) -> bool:
        """True when no chat model is configured: the agent answers extractively."""
        return not self.model_settings.get("model")


async def read_model_integration_name(runtime: Runtime, workspace_id: str, agent_id: str) -> str | None:
    """The name (or id) of the integration an agent's model uses, if its settings name one.

    For plugins that call the same provider on the agent's behalf (a channel transcribing a
    voice note with the agent's OpenAI account).
    """
    async with runtime.db.sessions() as session:
        settings = await session.scalar(
            select(Agent.model_settings).where(Agent.id == agent_id, Agent.workspace_id == workspace_id)
        )
    preferred = (settings or {}).get("integration")
    return preferred if isinstance(preferred, str) else None
