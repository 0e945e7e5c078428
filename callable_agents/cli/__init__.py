"""The ``callable`` command line.

Each command module exposes ``COMMANDS``, added to :data:`cli` here. Errors a user can cause
are printed as one line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from callable_agents.core.errors import CallableError

COMMAND_MODULES = ("server_commands", "workspace", "plugins_command", "keys", "integrations", "kb", "agents", "chat", "channels")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG level.")
def cli(verbose: bool) -> None:
    """Callable Agents: one chat agent on WhatsApp, a website widget and a public page."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _add_commands() -> None:
    for module_name in COMMAND_MODULES:
        qualified = f"{__name__}.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:  # a part not built yet
                continue
            raise
        commands = getattr(module, "COMMANDS", None)
        if commands is None:  # a module exposing one group named after itself
            commands = [getattr(module, module_name)]
        for command in commands:
            cli.add_command(command)


_add_commands()


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
