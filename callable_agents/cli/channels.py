"""``callable channels list | show NAME``: channels and where to point providers at them."""

from __future__ import annotations

from typing import Any

import click

from callable_agents.cli.common import echo_json, resolve_workspace, with_runtime, workspace_option
from callable_agents.core.store.channels import describe_channel, get_channel, list_channels
from callable_agents.core.models import Channel
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.public_channels import channel_record


def public_addresses(runtime: Runtime, channel: Channel) -> dict[str, str]:
    """What to paste or share for this channel, as its channel type describes it."""
    if channel.kind not in runtime.plugins.channels:
        return {}
    describe = runtime.plugins.channels.get(channel.kind).public_addresses
    # Plugins receive the read-only snapshot, never the ORM row.
    return describe(runtime.settings, channel_record(channel)) if describe is not None else {}


@click.group()
def channels() -> None:
    """Channels (WhatsApp senders, widgets, public pages) and their public addresses."""


@channels.command("list")
@workspace_option
@click.option("--json", "as_json", is_flag=True)
def channels_list(workspace: str | None, as_json: bool) -> None:
    """List the workspace's channels."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            rows = await list_channels(session, target.id)
        views = [{**describe_channel(row), **public_addresses(runtime, row)} for row in rows]
        if as_json:
            echo_json(views)
            return
        for view in views:
            state = "" if view["enabled"] else " (disabled)"
            click.echo(f"{view['name']}\t{view['kind']}{state}\t{view['id']}")

    with_runtime(action)


@channels.command("show")
@click.argument("name")
@workspace_option
def channels_show(name: str, workspace: str | None) -> None:
    """Show a channel with the addresses to paste into Twilio or share."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            channel = await get_channel(session, target.id, name)
        view: dict[str, Any] = {**describe_channel(channel), **public_addresses(runtime, channel)}
        echo_json(view)

    with_runtime(action)


COMMANDS = [channels]
