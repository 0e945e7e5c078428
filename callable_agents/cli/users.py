"""``callable user create|list``: the people who sign in to the dashboard.

A person is never given a password on the command line (it would stay in the shell's
history): ``user create`` prints a one-time link whose page sets it.
"""

from __future__ import annotations

import click

from callable_agents.cli.common import echo_json, echo_table, json_option, resolve_workspace, with_runtime, workspace_option
from callable_agents.core.runtime import Runtime


@click.group()
def user() -> None:
    """People who sign in to the dashboard (owners and members)."""


@user.command("create")
@click.option("--email", default="", help="The member's e-mail (required for --role member; an owner sets it on the link's page).")
@click.option("--role", type=click.Choice(["owner", "member"]), default="owner", show_default=True, help="What the person may do.")
@workspace_option
def user_create(email: str, role: str, workspace: str | None) -> None:
    """Print a one-time link (valid 3 days) that creates an owner or a member."""
    from callable_agents.core.errors import InvalidInput
    from callable_agents.core.store.users import create_link, link_path

    if role == "member" and not email:
        raise InvalidInput("--email: a member is invited by e-mail address; pass --email name@example.com")

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            if role == "owner" and not email:
                token = await create_link(session, target.id, purpose="owner")
            else:
                token = await create_link(session, target.id, purpose="invite", email=email, role=role)
        click.echo(runtime.settings.base_url + link_path(token))
        click.echo(f"(one-time link to {'create an owner' if role == 'owner' else 'join'} of workspace {target.slug}: it works once, for 3 days)", err=True)

    with_runtime(action)


@user.command("list")
@workspace_option
@json_option
def user_list(workspace: str | None, as_json: bool) -> None:
    """List the workspace's people and their roles."""
    from callable_agents.core.store.users import list_users

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            rows = [
                {
                    "email": u.email,
                    "name": u.name,
                    "role": u.role,
                    "signed_in": u.last_signed_in_at.strftime("%Y-%m-%d %H:%M") if u.last_signed_in_at else "never",
                }
                for u in await list_users(session, target.id)
            ]
        if as_json:
            echo_json(rows)
        else:
            echo_table(rows, ["email", "name", "role", "signed_in"], empty="no people yet: `callable user create`")

    with_runtime(action)


COMMANDS = [user]
