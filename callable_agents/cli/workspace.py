"""``callable workspace create|list`` and ``callable apikey create``."""

from __future__ import annotations

import click

from callable_agents.cli.common import echo_json, resolve_workspace, with_runtime, workspace_option
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_api_key, create_workspace, list_workspaces


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
@click.option("--json", "as_json", is_flag=True)
def workspace_list(as_json: bool) -> None:
    """List workspaces."""

    async def action(runtime: Runtime) -> None:
        async with runtime.db.session() as session:
            rows = [{"slug": w.slug, "name": w.name, "id": w.id} for w in await list_workspaces(session)]
        if as_json:
            echo_json(rows)
        else:
            for row in rows:
                click.echo(f"{row['slug']}\t{row['name']}\t{row['id']}")

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


COMMANDS = [workspace, apikey]
