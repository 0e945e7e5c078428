"""What a channel's set-up at its provider works on: the channel, its type and its integration.

The dashboard's Channels page and the admin API both set a channel up through its type's
:class:`~callable_agents.core.contracts.channels.ChannelSetup` (senders, "configure for me",
a test message); this module finds, within one workspace, the three parts those functions
are given, and says clearly what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from callable_agents.core.contracts.channels import ChannelSetup, ChannelType
from callable_agents.core.contracts.integrations import StoredIntegration
from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.models import Integration, Workspace
from callable_agents.core.store.channels import get_channel
from callable_agents.core.store.integrations import get_integration, stored_integration
from callable_agents.core.store.public_channels import ChannelRecord, channel_record

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime


@dataclass(frozen=True)
class SetupTarget:
    channel: ChannelRecord
    channel_type: ChannelType
    setup: ChannelSetup
    integration: StoredIntegration


async def _snapshot(runtime: Runtime, workspace_id: str, integration: Integration) -> StoredIntegration:
    async with runtime.db.sessions() as session:
        workspace = await session.get(Workspace, workspace_id)
    assert workspace is not None  # the integration is scoped to it
    return stored_integration(integration, workspace)


async def channel_setup_target(runtime: Runtime, workspace_id: str, name_or_id: str) -> SetupTarget:
    """The workspace's channel ``name_or_id`` with its type's set-up and its integration."""
    async with runtime.db.sessions() as session:
        channel = await get_channel(session, workspace_id, name_or_id)
        integration = await session.get(Integration, channel.integration_id) if channel.integration_id else None
    channel_type = runtime.plugins.channels.types.get(channel.kind)
    if channel_type is None or channel_type.setup is None:
        raise NotFound(f"{channel.kind} channels have no set-up at a provider")
    if integration is None or integration.workspace_id != workspace_id:
        raise InvalidInput(f"integration: channel {channel.name!r} has no integration; edit it and pick one", field="integration")
    return SetupTarget(channel_record(channel), channel_type, channel_type.setup, await _snapshot(runtime, workspace_id, integration))


async def integration_setup(runtime: Runtime, workspace_id: str, integration_name: str) -> tuple[ChannelType, StoredIntegration]:
    """The channel type that is set up through the integration ``integration_name``'s provider."""
    async with runtime.db.sessions() as session:
        integration = await get_integration(session, workspace_id, integration_name)
    for channel_type in runtime.plugins.channels:
        if channel_type.integration_provider == integration.provider and channel_type.setup is not None:
            return channel_type, await _snapshot(runtime, workspace_id, integration)
    raise NotFound(f"integration {integration.name!r}: no channel type is set up through {integration.provider} integrations")
