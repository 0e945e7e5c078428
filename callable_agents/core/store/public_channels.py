"""Reads for public channel endpoints, as read-only snapshots plugins can keep.

A provider's webhook, a web chat's API or a public page is reached by a stranger whose
only credential is the channel's unguessable id (or its public slug) in the URL, so these
lookups are unscoped by design, like :func:`~callable_agents.core.store.channels.get_channel_by_id_unscoped`;
everything after them is scoped by the snapshot's ``workspace_id``. Plugins receive frozen
dataclasses, never ORM rows: nothing they hold can write to the database or lazy-load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from callable_agents.core.contracts.integrations import StoredIntegration
from callable_agents.core.models import Agent, Channel, Integration, Workspace
from callable_agents.core.store.channels import get_channel_by_id_unscoped, get_channel_by_slug_unscoped
from callable_agents.core.store.integrations import WorkspaceKey, stored_integration

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime


@dataclass(frozen=True)
class ChannelRecord:
    """One channel as plugins see it."""

    id: str
    workspace_id: str
    kind: str
    name: str
    agent_id: str
    integration_id: str | None
    slug: str | None
    config: Mapping[str, Any]
    enabled: bool


@dataclass(frozen=True)
class AgentRecord:
    """What a channel shows of its agent (name, greeting, business info), nothing of its prompt."""

    id: str
    name: str
    greeting: str
    business_info: Mapping[str, Any]


@dataclass(frozen=True)
class ChannelAccount:
    """A channel with its provider integration and its workspace's key reference (see
    :func:`read_channel_account`)."""

    channel: ChannelRecord
    integration: StoredIntegration
    workspace: WorkspaceKey


def channel_record(channel: Channel) -> ChannelRecord:
    return ChannelRecord(
        id=channel.id,
        workspace_id=channel.workspace_id,
        kind=channel.kind,
        name=channel.name,
        agent_id=channel.agent_id,
        integration_id=channel.integration_id,
        slug=channel.slug,
        config=dict(channel.config or {}),
        enabled=bool(channel.enabled),
    )


def agent_record(agent: Agent) -> AgentRecord:
    return AgentRecord(agent.id, agent.name, agent.greeting or "", dict(agent.business_info or {}))


async def read_channel_agent(runtime: Runtime, channel: ChannelRecord) -> AgentRecord | None:
    """The agent answering on ``channel`` (in the channel's workspace), or None if it is gone."""
    async with runtime.db.sessions() as session:
        agent = await session.scalar(
            select(Agent).where(Agent.id == channel.agent_id, Agent.workspace_id == channel.workspace_id)
        )
    return agent_record(agent) if agent is not None else None


async def read_public_channel(runtime: Runtime, channel_id: str) -> ChannelRecord | None:
    """The channel with this id, in whatever workspace (public endpoints only); None if unknown."""
    async with runtime.db.session() as session:
        channel = await get_channel_by_id_unscoped(session, channel_id)
    return channel_record(channel) if channel is not None else None


async def read_public_page(runtime: Runtime, slug: str) -> tuple[ChannelRecord, AgentRecord | None] | None:
    """The channel with this public slug and its agent (public page route only); None if unknown."""
    async with runtime.db.session() as session:
        channel = await get_channel_by_slug_unscoped(session, slug)
        agent = await session.get(Agent, channel.agent_id) if channel is not None else None
    if channel is None:
        return None
    return channel_record(channel), agent_record(agent) if agent is not None else None


async def read_channel_account(runtime: Runtime, channel_id: str) -> ChannelAccount | None:
    """The channel with its integration and workspace key, in one query (webhook hot path).

    None when there is no such channel or it has no integration. The caller checks the kind,
    ``enabled`` and the provider.
    """
    statement = (
        select(Channel, Integration, Workspace)
        .join(Integration, Integration.id == Channel.integration_id)
        .join(Workspace, Workspace.id == Channel.workspace_id)
        .where(Channel.id == channel_id)
    )
    row = await runtime.db.run(lambda session: session.execute(statement).first(), write=False)
    if row is None:
        return None
    channel, integration, workspace = row
    if integration.workspace_id != channel.workspace_id:
        return None
    stored = stored_integration(integration, workspace)
    return ChannelAccount(channel_record(channel), stored, stored.sealed.workspace)
