"""The ``callable`` command line: its entry function in-process, and the real console script
in a subprocess where start-up, serving or the exit code of a process is what is tested."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from callable_agents.core.db import head_revision
from tests.cli.helpers import cli_env, free_port, run_cli, run_cli_process


def test_migrate_workspace_and_apikey(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"database migrated: empty -> {head_revision()}" in migrated.stdout

    created = run_cli("workspace", "create", "Bella's Bakery", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created workspace bella-s-bakery")
    duplicate = run_cli("workspace", "create", "Bella's Bakery", env=env)
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "error: workspace 'bella-s-bakery' already exists"

    listed = run_cli("workspace", "list", "--json", env=env)
    assert '"slug": "bella-s-bakery"' in listed.stdout

    key = run_cli("apikey", "create", "--name", "ci", env=env)
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip().startswith("ca_")
    assert "shown once" in key.stderr


def test_errors_are_one_line_with_a_nonzero_exit(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    unmigrated = run_cli("workspace", "list", env=env)
    assert unmigrated.returncode == 1
    assert unmigrated.stderr.count("\n") == 1 and "Traceback" not in unmigrated.stderr
    assert "run `callable migrate`" in unmigrated.stderr

    bad_port = run_cli("workspace", "list", env={**env, "CALLABLE_PORT": "eighty"})
    assert bad_port.returncode == 1 and "Traceback" not in bad_port.stderr
    assert "CALLABLE_PORT" in bad_port.stderr and "'eighty'" in bad_port.stderr

    bad_key = run_cli("workspace", "list", env={**env, "CALLABLE_MASTER_KEY": "c2hvcnQ="})
    assert bad_key.returncode == 1 and "Traceback" not in bad_key.stderr
    assert "CALLABLE_MASTER_KEY" in bad_key.stderr and "c2hvcnQ=" not in bad_key.stderr

    bad_db = run_cli("migrate", env={**env, "CALLABLE_DATABASE_URL": "mysql://x/y"})
    assert bad_db.returncode == 1 and "CALLABLE_DATABASE_URL: expected sqlite:///PATH or postgresql://" in bad_db.stderr


def test_plugins_lists_what_each_plugin_registers(tmp_path: Path) -> None:
    listed = run_cli("plugins", "--json", env=cli_env(tmp_path / "data"))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().startswith("[")


def test_demo_serves_and_is_ready(tmp_path: Path) -> None:
    """README's first command: `callable demo` starts the server and /readyz answers 200."""
    port = free_port()
    env = cli_env(tmp_path / "data")
    env.pop("CALLABLE_MASTER_KEY")  # the demo's default: a key file in the data directory
    process = subprocess.Popen(
        [sys.executable, "-m", "callable_agents", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        assert status == 200, "demo never became ready"
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        assert 'href="/chat/bella"' in home and 'href="/demo/widget"' in home
        assert httpx.get(f"http://127.0.0.1:{port}/chat/bella", timeout=5).status_code == 200
        order = httpx.get(f"http://127.0.0.1:{port}/demo-api/orders/BB-1042", timeout=5)
        assert order.status_code == 200 and order.json()
        assert (tmp_path / "data" / "master.key").stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"Open:              http://127.0.0.1:{port}/" in output
    assert f"Chat page:         http://127.0.0.1:{port}/chat/bella" in output


def test_serve_on_an_unmigrated_database_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_cli_process("serve", "--port", str(free_port()), env=cli_env(tmp_path / "data"), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the database is empty, not at the latest schema: run `callable migrate` "
        "(or start with CALLABLE_AUTO_MIGRATE=true)"
    ]
    assert "Traceback" not in result.stdout + result.stderr
