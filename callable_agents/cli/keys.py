"""``callable keys status | rotate``: the master key that wraps every workspace's data key.

Keys are never printed and never taken from command-line arguments (they would land in
shell history and ``ps``): a new key comes from stdin or is generated into the key file.
"""

from __future__ import annotations

import sys

import click

from callable_agents.cli.common import Progress, cli_settings, with_runtime
from callable_agents.core.errors import InvalidInput
from callable_agents.core.plugins import Plugins
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.key_rotation import rotate_master_key
from callable_agents.core.store.vault import MASTER_KEY_ENV, decode_master_key


# These commands touch only the database and the vault, so they open the runtime with no
# plugins (``Plugins()``): that keeps them fast (no LLM libraries imported) and usable while
# a third-party plugin is broken.


@click.group()
def keys() -> None:
    """The master key (CALLABLE_MASTER_KEY or the data directory's master.key)."""


@keys.command("status")
def keys_status() -> None:
    """Show where the master key comes from and its id (never the key)."""

    async def action(runtime: Runtime) -> None:
        vault = runtime.vault
        source = str(vault.key_file) if vault.key_file else MASTER_KEY_ENV
        click.echo(f"master key id: {vault.master_key_id}")
        click.echo(f"source:        {source}")
        if vault.pending_key_id:
            click.echo(
                f"pending:       {vault.pending_key_id} (an unfinished rotation; run `callable keys rotate` to finish it)"
            )

    with_runtime(action, plugins=Plugins())


def _read_new_key() -> bytes:
    """The new master key from stdin: a hidden prompt on a terminal, else the first line."""
    source = "new master key (stdin)"
    if sys.stdin.isatty():
        text = click.prompt("New master key (base64 of 32 random bytes)", hide_input=True, err=True)
    else:
        text = sys.stdin.readline()
    if not text.strip():
        raise InvalidInput(f"{source}: expected the base64 encoding of 32 random bytes on stdin, got nothing")
    return decode_master_key(text, source)


@keys.command("rotate")
@click.option(
    "--new-key-stdin",
    is_flag=True,
    help="Read the new key (base64 of 32 bytes) from stdin. Required when CALLABLE_MASTER_KEY is set.",
)
def keys_rotate(new_key_stdin: bool) -> None:
    """Re-wrap every workspace's data key under a new master key, in one transaction.

    With the key file, a new key is generated (or read with --new-key-stdin) into
    master.key.new, the workspace keys are re-wrapped, then master.key is replaced, so a crash
    at any point leaves everything readable; running the command again finishes the job.
    Stored secrets are not re-encrypted: their data keys stay the same.
    """

    settings = cli_settings()
    from_env = settings.master_key is not None
    if from_env and not new_key_stdin:
        raise InvalidInput(
            f"--new-key-stdin: {MASTER_KEY_ENV} is set, so give the new key on stdin, e.g. "
            "`openssl rand -base64 32 > new.key; callable keys rotate --new-key-stdin < new.key`"
        )
    # Read before opening anything: no blocking input inside the event loop.
    new_key = _read_new_key() if new_key_stdin else None

    async def action(runtime: Runtime) -> None:
        bar: list[Progress] = []

        def progress(done: int, total: int) -> None:
            if not bar:
                bar.append(Progress("re-wrapping workspace keys", total))
            bar[0].update(done)

        result = await rotate_master_key(runtime.db, runtime.vault, new_key, progress=progress)
        if bar:
            bar[0].finish(f"re-wrapped {result.rewrapped} of {bar[0].total} workspace key(s)")
        click.echo(
            f"re-wrapped {result.rewrapped} workspace key(s): master key {result.old_key_id} -> {result.new_key_id}"
        )
        if from_env:
            click.echo(
                f"Now set {MASTER_KEY_ENV} to the new key (the one given on stdin) wherever the server and "
                "worker run, and restart them: the old key no longer opens anything."
            )
        else:
            click.echo(
                f"{result.key_file} now holds the new key. Back it up (apart from database backups) and "
                "restart running servers and workers."
            )

    with_runtime(action, settings=settings, plugins=Plugins())


COMMANDS = [keys]
