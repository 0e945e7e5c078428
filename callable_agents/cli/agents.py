"""``callable apply -f FILE`` (agents as code) and ``callable agents list | show``."""

from __future__ import annotations

import sys

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


@click.command("apply")
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The YAML file declaring a workspace's knowledge bases, agents, tools and channels.",
)
@click.option("--dry-run", is_flag=True, help="Check everything and say what would change, writing nothing.")
@click.option("--workspace", "-w", default=None, help="Apply to this workspace slug instead of the file's.")
@click.option("--no-ingest", is_flag=True, help="Leave new and changed sources pending instead of indexing them now.")
@click.option(
    "--source-root",
    default=None,
    type=click.Path(file_okay=False),
    help="The folder file sources must be inside (default: the YAML file's folder). The data folder "
    "and key files are refused even inside it.",
)
def apply(path: str, dry_run: bool, workspace: str | None, no_ingest: bool, source_root: str | None) -> None:
    """Apply a workspace declared in a YAML file. Idempotent: only what differs is written.

    Secrets never go in the file: reference integrations by name. ${CALLABLE_BASE_URL} in
    any string becomes this server's base URL. File sources must be inside the YAML file's
    folder (or --source-root).
    """
    from callable_agents.apply import apply_file
    from callable_agents.cli.kb import ProgressDisplay

    async def action(runtime: Runtime) -> int:
        report = await apply_file(
            runtime, path, dry_run=dry_run, workspace=workspace, ingest=not no_ingest, source_root=source_root,
            progress=ProgressDisplay,
        )
        for line in report.lines():
            click.echo(line)
        if not report.changed and not dry_run:
            click.echo(f"workspace {report.workspace}: nothing to change")
        return 1 if report.failed_sources else 0

    code = with_runtime(action)
    if code:
        sys.exit(code)


@click.group("agents")
def agents() -> None:
    """List and inspect agents (declare them with `callable apply`)."""


@agents.command("list")
@workspace_option
@json_option
def agents_list(workspace: str | None, as_json: bool) -> None:
    """List the workspace's agents."""
    from callable_agents.core.store.agents import list_agents

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            rows = [
                {
                    "name": agent.name,
                    "kind": agent.kind,
                    "model": (agent.model_settings or {}).get("model") or "offline",
                    "tools": [tool["name"] for tool in agent.tools or []],
                    "id": agent.id,
                }
                for agent in await list_agents(session, target.id)
            ]
        if as_json:
            echo_json(rows)
            return
        echo_table(
            rows,
            ["name", "kind", "model", "tools", "id"],
            empty=f"no agents in workspace {target.slug}: declare one in a file and `callable apply -f FILE`",
        )

    with_runtime(action)


@agents.command("show")
@click.argument("name")
@workspace_option
@json_option
def agents_show(name: str, workspace: str | None, as_json: bool) -> None:
    """Show an agent (agents hold no secrets: integrations are referenced by name)."""
    from callable_agents.core.store.agents import agent_views, get_agent

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            [view] = await agent_views(session, target.id, [await get_agent(session, target.id, name)])
        if as_json:
            echo_json(view)
            return
        settings = view["model_settings"]
        echo_fields(
            {
                "name": view["name"],
                "kind": view["kind"],
                "model": settings.get("model") or "offline",
                "integration": settings.get("integration"),
                "knowledge_bases": view["knowledge_bases"],
                "tools": [f"{tool['name']} ({tool['type']})" for tool in view["tools"]],
                "greeting": view["greeting"],
                "fallback_message": view["fallback_message"],
                "id": view["id"],
                "business_info": view["business_info"],
                "system_prompt": view["system_prompt"],
            }
        )

    with_runtime(action)


COMMANDS = [apply, agents]
