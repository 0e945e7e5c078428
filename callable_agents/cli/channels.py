"""``callable channels list | show NAME | templates NAME``: channels, where to point providers
at them, and the templates a person may send on one.

They print for people by default (a table; aligned ``key: value`` lines with the agent by
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
from callable_agents.core.contracts.channels import ChannelTemplatesError
from callable_agents.core.conversation.templates import available_templates, template_view
from callable_agents.core.errors import CallableError
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


@channels.command("templates")
@click.argument("name")
@workspace_option
@json_option
def channels_templates(name: str, workspace: str | None, as_json: bool) -> None:
    """List the templates a person may send on a channel: its configured one first, then the
    provider account's approved ones (name, language, variables, category, status)."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.sessions() as session:
            channel = await get_channel(session, target.id, name)
        try:
            templates = [template_view(t) for t in await available_templates(runtime, channel, strict=True)]
        except ChannelTemplatesError as exc:
            raise CallableError(f"channel {name}: {exc}") from None
        if as_json:
            echo_json({"templates": templates})
            return
        rows = [
            {**t, "variables": ", ".join(f"{{{{{k}}}}}={v}" for k, v in t["variables"].items()) or "-",
             "configured": "yes" if t["configured"] else ""}
            for t in templates
        ]
        echo_table(
            rows,
            ["name", "language", "category", "status", "configured", "variables", "id"],
            empty=f"channel {name} has no templates",
        )

    with_runtime(action)


COMMANDS = [channels]
