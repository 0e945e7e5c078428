"""``callable workspace create|list`` and ``callable apikey create|list|revoke``."""

from __future__ import annotations

import click

from callable_agents.cli.common import (
    echo_json,
    echo_table,
    json_option,
    resolve_workspace,
    with_runtime,
    workspace_option,
)
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import (
    create_api_key,
    create_workspace,
    describe_api_key,
    list_api_keys,
    list_workspaces,
    revoke_api_key,
)


@click.group()
def workspace() -> None:
    """Create and list workspaces (the isolation boundary)."""


@workspace.command("create")
@click.argument("name")
@click.option("--slug", default=None, help="URL-safe id (default: derived from NAME).")
def workspace_create(name: str, slug: str | None) -> None:
    """Create a workspace with its own encryption key."""

    async def action(runtime: Runtime) -> None:
        async with runtime.db.session() as session:
            created = await create_workspace(session, runtime.vault, name, slug)
        click.echo(f"created workspace {created.slug} ({created.id})")

    with_runtime(action)


@workspace.command("list")
@json_option
def workspace_list(as_json: bool) -> None:
    """List workspaces."""

    async def action(runtime: Runtime) -> None:
        async with runtime.db.session() as session:
            rows = [{"slug": w.slug, "name": w.name, "id": w.id} for w in await list_workspaces(session)]
        if as_json:
            echo_json(rows)
        else:
            echo_table(rows, ["slug", "name", "id"], empty="no workspaces yet: `callable workspace create NAME`")

    with_runtime(action)


@click.group()
def apikey() -> None:
    """Admin API keys (bearer tokens for /api/v1, scoped to one workspace)."""


@apikey.command("create")
@click.option("--name", default="default", help="A label to recognise the key by.")
@workspace_option
def apikey_create(name: str, workspace: str | None) -> None:
    """Create an API key. It is shown once; only its hash is stored."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            _row, key = await create_api_key(session, target.id, name)
        click.echo(key)
        click.echo(f"(API key {name!r} for workspace {target.slug}: shown once, store it now)", err=True)

    with_runtime(action)


@apikey.command("list")
@workspace_option
@json_option
def apikey_list(workspace: str | None, as_json: bool) -> None:
    """List the workspace's API keys: prefix, name, last use, state (never the keys)."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            rows = [describe_api_key(row) for row in await list_api_keys(session, target.id)]
        if as_json:
            echo_json(rows)
            return
        echo_table(
            rows,
            ["prefix", "name", "status", "created_at", "last_used_at"],
            empty=f"no API keys in workspace {target.slug}: `callable apikey create --name NAME`",
        )

    with_runtime(action)


@apikey.command("revoke")
@click.argument("key")
@workspace_option
def apikey_revoke(key: str, workspace: str | None) -> None:
    """Revoke the API key KEY (its prefix from `callable apikey list`, or its name).

    Requests with it are refused from then on (401 "unknown or revoked").
    """

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            row = await revoke_api_key(session, target.id, key)
        click.echo(f"revoked API key {row.prefix} ({row.name}) of workspace {target.slug}")

    with_runtime(action)


COMMANDS = [workspace, apikey]
