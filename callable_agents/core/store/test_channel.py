"""The test channel: where the dashboard's Test panel talks to an agent through the real pipeline.

Each agent gets one channel of kind :data:`TEST_CHANNEL_KIND`, made on first use. A message
typed in the panel is accepted on it like any customer's (``accept_inbound`` → the turn job
→ the graph → stored reply), so the panel shows what customers would get. It delivers by
storing (``send=None``): the panel reads the stored reply and the turn's trace. Replies are
stored in Markdown with no length limit and no sources block (the sources are kept in the
reply's ``meta``), so a page can shape them again for any channel type it previews.

Core registers the channel type (like its integration providers, :mod:`.providers`), so
every process that runs turns knows it, the server's worker or a separate one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.models import Channel
from callable_agents.core.store.channels import TEST_CHANNEL_KIND, create_or_update_channel

if TYPE_CHECKING:
    from callable_agents.core.models import Agent
    from callable_agents.core.runtime import Runtime

PLUGIN_NAME = "core-test-channel"


class TestChannelConfig(BaseModel):
    """The test channel has no settings."""

    model_config = ConfigDict(extra="forbid")


TEST_CHANNEL = ChannelType(
    name=TEST_CHANNEL_KIND,
    description="The dashboard's Test panel: an agent's replies are stored and shown, never sent.",
    config_schema=TestChannelConfig,
    capabilities=ChannelCapabilities(formatting="markdown", max_message_length=None, citations=False),
    send=None,
)


@hookimpl
def register_channels() -> list[ChannelType]:
    return [TEST_CHANNEL]


def test_channel_name(agent_name: str) -> str:
    return f"{TEST_CHANNEL_KIND}-{agent_name}"[:100]


async def agent_test_channel(session: AsyncSession, runtime: Runtime, agent: Agent) -> Channel:
    """The agent's test channel, created on first use (through the channel service)."""
    channel, _changed = await create_or_update_channel(
        session, runtime, agent.workspace_id, name=test_channel_name(agent.name), kind=TEST_CHANNEL_KIND, agent=agent.name
    )
    return channel


async def delete_agent_test_channel(session: AsyncSession, agent: Agent) -> None:
    """Remove the agent's test channel and its conversations (before the agent is deleted)."""
    channels = (
        await session.scalars(
            select(Channel).where(
                Channel.workspace_id == agent.workspace_id, Channel.agent_id == agent.id, Channel.kind == TEST_CHANNEL_KIND
            )
        )
    ).all()
    for channel in channels:
        await session.delete(channel)
    if channels:
        await session.flush()
