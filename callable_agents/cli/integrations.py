"""``callable integrations connect | list | remove``: provider accounts and their secrets.

Secrets never come from command-line options (shell history, ``ps``). They are read from a
hidden prompt on a terminal, or from stdin otherwise: one value per line in the provider's
secret-field order (an empty line skips a field), or with ``--secrets-stdin`` a JSON object.
Nothing this command prints contains a secret: only ``has_<field>`` and the last 4 characters.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from callable_agents.cli.common import echo_json, echo_table, resolve_workspace, with_runtime, workspace_option
from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.store.integrations import (
    ProviderType,
    ProviderUnreachable,
    connect_checked,
    default_providers,
    describe_integration,
    list_integrations,
    provider_schema,
    remove_integration,
)
from callable_agents.core.plugins import Plugins
from callable_agents.core.runtime import Runtime


# ``list`` and ``remove`` touch only the database and the vault, so they open the runtime with
# no plugins (``Plugins()``): usable while a third-party plugin is broken; the built-in
# providers (``default_providers``) describe the fields. ``connect`` loads every plugin:
# their providers validate and verify.


@click.group()
def integrations() -> None:
    """Provider accounts (twilio, openai, http) with write-only secrets."""


def _secrets_from_json(text: str, schema: ProviderType) -> dict[str, str | None]:
    example = json.dumps({field: "..." for field in schema.secret_fields})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--secrets-stdin: expected a JSON object like {example} ({exc.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) or v is None for v in data.values()):
        raise InvalidInput(f"--secrets-stdin: expected a JSON object of strings like {example}")
    return data


def _secrets_from_lines(text: str, schema: ProviderType) -> dict[str, str | None]:
    lines = text.splitlines()
    while lines and not lines[-1]:
        lines.pop()
    fields = schema.secret_fields
    if len(lines) > len(fields):
        raise InvalidInput(
            f"stdin: expected at most {len(fields)} line(s), one per secret ({', '.join(fields)}), got {len(lines)}"
        )
    return {field: (line or None) for field, line in zip(fields, lines)}


def _secrets_from_prompt(schema: ProviderType) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for field in schema.secret_fields:
        hint = "" if field in schema.required_secrets else " (optional)"
        value = click.prompt(
            f"{schema.name} {field}{hint}, hidden; Enter keeps the stored value",
            hide_input=True,
            default="",
            show_default=False,
            err=True,
        )
        values[field] = value or None
    return values


def read_secrets(schema: ProviderType, secrets_stdin: bool) -> dict[str, str | None]:
    """The secret values to store, from a hidden prompt or stdin (never from options)."""
    if secrets_stdin:
        return _secrets_from_json(sys.stdin.read(), schema)
    if sys.stdin.isatty():
        return _secrets_from_prompt(schema)
    return _secrets_from_lines(sys.stdin.read(), schema)


def _secret_summary(view: dict[str, Any], schema: ProviderType | None) -> str:
    fields = schema.secret_fields if schema else ()
    parts = []
    for field in fields:
        if not view.get(f"has_{field}"):
            parts.append(f"{field}=(not set)")
        else:
            hint = view.get(f"{field}_last4")
            parts.append(f"{field}=…{hint}" if hint else f"{field}=(set)")
    return " ".join(parts)


def _public_summary(view: dict[str, Any], schema: ProviderType | None) -> str:
    fields = schema.public_fields if schema else ()
    return " ".join(f"{field}={view[field]}" for field in fields if view.get(field) is not None)


_PROVIDERS = default_providers()
_SECRET_ORDER = "; ".join(f"{name}: {', '.join(schema.secret_fields)}" for name, schema in sorted(_PROVIDERS.items()))


@integrations.command(
    "connect",
    help=(
        "Connect a provider account, or update the one called NAME.\n\n"
        "Secrets are prompted for (hidden) or read from stdin, one per line in the order "
        f"{_SECRET_ORDER}. On update, a secret left empty keeps its stored value, and public "
        "options left out keep theirs."
    ),
)
@click.argument("provider", type=click.Choice(sorted(_PROVIDERS)))
@click.option("--name", required=True, help="A name to refer to this integration by (agents, channels, tools).")
@workspace_option
@click.option("--account-sid", default=None, help="twilio: Account SID (AC...).")
@click.option("--api-key-sid", default=None, help="twilio: API key SID (SK...), optional.")
@click.option("--base-url", default=None, help="openai, http: the server's base URL, optional.")
@click.option("--organization", default=None, help="openai: organization id, optional.")
@click.option("--secrets-stdin", is_flag=True, help="Read the secrets as a JSON object from stdin.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--no-verify", is_flag=True, help="Don't check the credentials with the provider (offline set-ups)."
)
def integrations_connect(
    provider: str,
    name: str,
    workspace: str | None,
    account_sid: str | None,
    api_key_sid: str | None,
    base_url: str | None,
    organization: str | None,
    secrets_stdin: bool,
    as_json: bool,
    no_verify: bool,
) -> None:
    """Connect or update an integration (the help text above is built from the providers)."""
    schema = provider_schema(provider, _PROVIDERS)
    given = {"account_sid": account_sid, "api_key_sid": api_key_sid, "base_url": base_url, "organization": organization}
    public = {field: value for field, value in given.items() if value is not None}
    secrets = read_secrets(schema, secrets_stdin)

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        try:
            connected = await connect_checked(
                runtime, target, provider=provider, name=name, public=public, secrets=secrets, verify=not no_verify
            )
        except ProviderUnreachable as exc:
            # The provider could not be asked (offline, DNS, its outage): say the way out.
            raise CallableError(
                f"{exc}. To store the credentials without checking them "
                f"(offline set-ups), run the same command with --no-verify"
            ) from None
        account, view = connected.account, connected.view
        if account is not None:
            label = account.get("sid") or account.get("id") or name
            click.echo(
                f"{provider.title()} accepted the credentials for {label} ({account.get('friendly_name')})",
                err=True,
            )
        if as_json:
            echo_json(view)
        else:
            click.echo(
                f"connected {provider} integration {name!r} ({view['id']}) in workspace {target.slug}: "
                f"{_secret_summary(view, schema)}"
            )

    with_runtime(action)  # plugins loaded: they verify credentials with their provider


@integrations.command("list")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (has_<secret> and <secret>_last4, never secrets).")
def integrations_list(workspace: str | None, as_json: bool) -> None:
    """List the workspace's integrations (secrets show as set/not set and their last 4 characters)."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            views = [describe_integration(i, _PROVIDERS) for i in await list_integrations(session, target.id)]
        if as_json:
            echo_json(views)
            return
        rows = [
            {
                "name": view["name"],
                "provider": view["provider"],
                "id": view["id"],
                "settings": _public_summary(view, _PROVIDERS.get(view["provider"])),
                "secrets": _secret_summary(view, _PROVIDERS.get(view["provider"])),
            }
            for view in views
        ]
        echo_table(
            rows,
            ["name", "provider", "settings", "secrets", "id"],
            empty=f"no integrations in workspace {target.slug}: add one with `callable integrations connect`",
        )

    with_runtime(action, plugins=Plugins())


@integrations.command("remove")
@click.argument("name")
@workspace_option
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation.")
def integrations_remove(name: str, workspace: str | None, yes: bool) -> None:
    """Remove the integration NAME (or id) and its stored secrets. Refused while in use."""
    if not yes:
        click.confirm(f"Remove integration {name!r} and its stored secrets?", abort=True, err=True)

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        async with runtime.db.session() as session:
            removed = await remove_integration(session, target.id, name)
        click.echo(f"removed {removed.provider} integration {removed.name!r} from workspace {target.slug}")

    with_runtime(action, plugins=Plugins())


COMMANDS = [integrations]
