"""Start-up: ``callable --help`` loads no model stack, and its command table tells the truth.

This tests the import graph, not wall time: a heavy import at a command module's top, or in
what the CLI's top level imports, fails here whatever the machine's speed.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click

from callable_agents.cli import COMMANDS, cli, load_command
from tests.cli.helpers import cli_env, run_cli_process

# The model stack and the providers' clients: what only turns, indexing and sends need.
HEAVY_MODULES = ("langgraph", "langchain_core", "langchain_openai", "faiss", "twilio", "openai", "numpy")


def _loaded_after(code: str) -> list[str]:
    probe = "\n".join(
        [
            "import sys",
            code,
            f"heavy = {HEAVY_MODULES!r}",
            'print("loaded:", *sorted(name for name in sys.modules if name.split(".")[0] in heavy))',
        ]
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.rsplit("loaded:", 1)[1].split()  # after what the code printed


def test_importing_the_cli_loads_no_model_stack() -> None:
    loaded = _loaded_after("import callable_agents.cli")
    assert not loaded, f"importing callable_agents.cli loaded {loaded}: import them inside the commands that need them"


def test_help_lists_every_command_without_loading_the_model_stack(tmp_path: Path) -> None:
    # `callable --help` as the console script runs it, then what it left in sys.modules.
    code = "from callable_agents.cli import cli\ntry:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    loaded = _loaded_after(code)
    assert not loaded, f"`callable --help` loaded {loaded}: import them inside the commands that need them"
    shown = run_cli_process("--help", env=cli_env(tmp_path / "data"))
    assert shown.returncode == 0, shown.stderr
    listed = shown.stdout.split("Commands:", 1)[1]
    for name in COMMANDS:
        assert f"\n  {name} " in listed, f"{name} missing from `callable --help`"


def test_the_command_table_matches_the_commands() -> None:
    # Every module's commands are in the table, under their own names and summaries.
    modules = {entry.module for entry in COMMANDS.values()}
    declared = {
        command.name: module
        for module in modules
        for command in importlib.import_module(f"callable_agents.cli.{module}").COMMANDS
    }
    assert declared == {name: entry.module for name, entry in COMMANDS.items()}
    for name, entry in COMMANDS.items():
        command = load_command(name)
        summary = click.Command(name, help=entry.summary).get_short_help_str(1000)
        assert command.get_short_help_str(1000) == summary, f"{name}: update its summary in cli/__init__.py"
        assert cli.get_command(click.Context(cli), name) is command
