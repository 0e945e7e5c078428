"""The ``callable`` command line.

Each command module exposes ``COMMANDS``; :data:`COMMANDS` below says which module holds
which command and its one-line summary. A command's module is imported only when that
command runs (or its own ``--help`` is asked for), so ``callable --help`` loads neither the
database nor the model stack: it starts in a fraction of a second. A test checks the table
against the commands themselves. Errors a user can cause are printed on stderr after
``error:`` (one line, or one line a problem when a file has several: ``callable apply``)
with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import NamedTuple

import click

from callable_agents.core.errors import CallableError


class CommandEntry(NamedTuple):
    module: str  # under callable_agents.cli
    summary: str  # the first paragraph of the command's help


COMMANDS: dict[str, CommandEntry] = {
    "agents": CommandEntry("agents", "List and inspect agents (declare them with `callable apply`)."),
    "apikey": CommandEntry("workspace", "Admin API keys (bearer tokens for /api/v1, scoped to one workspace)."),
    "apply": CommandEntry("agents", "Apply a workspace declared in a YAML file. Idempotent: only what differs is written."),
    "channels": CommandEntry("channels", "Channels (WhatsApp senders, widgets, public pages) and their public addresses."),
    "chat": CommandEntry("chat", "Chat with AGENT in the terminal (empty line or Ctrl+D to leave)."),
    "demo": CommandEntry("server_commands", "Set up the demo workspace on SQLite with the offline model, and serve it."),
    "integrations": CommandEntry("integrations", "Provider accounts (twilio, openai, http) with write-only secrets."),
    "kb": CommandEntry("kb", "Knowledge bases: the business's own content the agent answers from."),
    "keys": CommandEntry("keys", "The master key (CALLABLE_MASTER_KEY or the data directory's master.key)."),
    "migrate": CommandEntry("server_commands", "Bring the database schema up to date."),
    "plugins": CommandEntry("plugins_command", "List loaded plugins and the channel, tool and loader types they register."),
    "user": CommandEntry("users", "People who sign in to the dashboard (owners and members)."),
    "serve": CommandEntry("server_commands", "Run the server: channel webhooks, widget, admin API, job worker."),
    "worker": CommandEntry("server_commands", "Run a job worker without the web server (several may share one PostgreSQL database)."),
    "workspace": CommandEntry("workspace", "Create and list workspaces (the isolation boundary)."),
}


def load_command(name: str) -> click.Command:
    """Import the command's module and return the command (a programming error if absent)."""
    entry = COMMANDS[name]
    module = importlib.import_module(f"{__name__}.{entry.module}")
    for command in getattr(module, "COMMANDS", ()):
        if command.name == name:
            return command
    raise LookupError(f"callable_agents.cli.{entry.module} has no command {name!r} in COMMANDS; fix the table in cli/__init__.py")


class LazyGroup(click.Group):
    """A group whose commands are imported when used, and listed from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name))
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click's own listing, but from the summaries: nothing is imported to show help.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # A stand-in command with the summary shortens it exactly as the real one would.
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name].summary)
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG level.")
def cli(verbose: bool) -> None:
    """Callable Agents: one chat agent on WhatsApp, a website widget and a public page."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CallableError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug or an input no check caught: one line, the traceback on -v
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        click.echo(f"error: {type(exc).__name__}: {str(exc)[:300]} (run with -v to see where it happened)", err=True)
        sys.exit(1)
