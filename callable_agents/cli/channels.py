"""``callable channels list | show NAME``: channels and where to point providers at them.

Both print for people by default (a table; aligned ``key: value`` lines with the agent by
name and the addresses to paste) and JSON with ``--json``.
"""

from __future__ import annotations

import click

from callable_agents.cli.common import (
    echo_fields,
    echo_json,
    echo_table,
    json_option,
    resolve_workspace,
    with_runtime,
    workspace_option,
)
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.channels import channel_views, get_channel, list_channels


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
            views = await channel_views(session, runtime, target.id, await list_channels(session, target.id))
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
            [view] = await channel_views(session, runtime, target.id, [await get_channel(session, target.id, name)])
        if as_json:
            echo_json(view)
            return
        fields: dict[str, object] = {key: view[key] for key in SHOWN_FIELDS if key in view}
        fields.update({key: value for key, value in view.items() if key not in fields and key not in HIDDEN_FIELDS})
        fields["config"] = view["config"]
        echo_fields(fields)

    with_runtime(action)


COMMANDS = [channels]
