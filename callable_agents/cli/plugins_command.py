"""``callable plugins``: what is loaded and what each plugin registers."""

from __future__ import annotations

import click

from callable_agents.cli.common import cli_settings, echo_json
from callable_agents.core.plugins import load_plugins


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins_command(as_json: bool) -> None:
    """List loaded plugins and the channel, tool and loader types they register."""
    settings = cli_settings()
    rows = load_plugins(autoload=not settings.disable_plugin_autoload).describe()
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items())
        click.echo(f"{row['plugin']}\t{provides or '(event hooks only)'}")


COMMANDS = [plugins_command]
