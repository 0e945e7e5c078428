"""``callable channels list | show NAME``: channels and where to point providers at them.

Both print for people by default (a table; aligned ``key: value`` lines with the agent by
name and the addresses to paste) and JSON with ``--json``.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.cli.common import (
    echo_fields,
    echo_json,
    echo_table,
    json_option,
    resolve_workspace,
    with_runtime,
    workspace_option,
)
from callable_agents.core.models import Agent, Channel, Integration
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.channels import describe_channel, get_channel, list_channels
from callable_agents.core.store.public_channels import channel_record


def public_addresses(runtime: Runtime, channel: Channel) -> dict[str, str]:
    """What to paste or share for this channel, as its channel type describes it."""
    if channel.kind not in runtime.plugins.channels:
        return {}
    describe = runtime.plugins.channels.get(channel.kind).public_addresses
    # Plugins receive the read-only snapshot, never the ORM row.
    return describe(runtime.settings, channel_record(channel)) if describe is not None else {}


async def _names(session: AsyncSession, workspace_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """Agent and integration names by id, so a channel shows ``agent: assistant``."""
    agents = dict((await session.execute(select(Agent.id, Agent.name).where(Agent.workspace_id == workspace_id))).all())
    integrations = dict(
        (await session.execute(select(Integration.id, Integration.name).where(Integration.workspace_id == workspace_id))).all()
    )
    return agents, integrations


def _view(runtime: Runtime, channel: Channel, agents: dict[str, str], integrations: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {
        **describe_channel(channel, agents.get(channel.agent_id or "")),
        **public_addresses(runtime, channel),
    }
    view["integration"] = integrations.get(channel.integration_id or "")
    return view


@click.group()
def channels() -> None:
    """Channels (WhatsApp senders, widgets, public pages) and their public addresses."""


@channels.command("list")
@workspace_option
@json_option
def channels_list(workspace: str | None, as_json: bool) -> None:
    """List the workspace's channels."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            rows = await list_channels(session, target.id)
            agents, integrations = await _names(session, target.id)
        views = [_view(runtime, row, agents, integrations) for row in rows]
        if as_json:
            echo_json(views)
            return
        echo_table(
            views,
            ["name", "kind", "agent", "enabled", "id"],
            empty=f"no channels in workspace {target.slug}: declare them in a file and `callable apply -f FILE`",
        )

    with_runtime(action)


# The order `channels show` prints a channel's fields in; the addresses follow.
SHOWN_FIELDS = ("name", "kind", "agent", "integration", "slug", "enabled", "id")
HIDDEN_FIELDS = {"agent_id", "integration_id", "created_at", "updated_at", "config"}


@channels.command("show")
@click.argument("name")
@workspace_option
@json_option
def channels_show(name: str, workspace: str | None, as_json: bool) -> None:
    """Show a channel with the addresses to paste into Twilio or share."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            channel = await get_channel(session, target.id, name)
            agents, integrations = await _names(session, target.id)
        view = _view(runtime, channel, agents, integrations)
        if as_json:
            echo_json(view)
            return
        fields: dict[str, object] = {key: view[key] for key in SHOWN_FIELDS if key in view}
        fields.update({key: value for key, value in view.items() if key not in fields and key not in HIDDEN_FIELDS})
        fields["config"] = view["config"]
        echo_fields(fields)

    with_runtime(action)


COMMANDS = [channels]
