"""``callable keys status | rotate``: the real command (its entry function, in-process:
``tests.cli.helpers.run_cli``), on SQLite and PostgreSQL. Secrets are then read back with the
real vault to prove nothing was lost.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import running
from callable_agents.core.config import Settings
from callable_agents.core.db import Database
from callable_agents.core.errors import VaultError
from callable_agents.core.store.integrations import connect_integration, get_integration, read_secret
from callable_agents.core.store.vault import KEY_FILE_NAME, PENDING_KEY_FILE_NAME, Vault, generate_key
from callable_agents.core.store.workspaces import create_workspace, get_workspace
from tests.cli.helpers import cli_env, run_cli
from tests.cli.test_integrations_cli import ACCOUNT_SID, AUTH_TOKEN, assert_no_secret
from tests.conftest import make_settings


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def read_auth_token(settings: Settings) -> str:
    """The stored auth token, decrypted by a vault built from ``settings`` like a fresh process."""
    vault = Vault.from_settings(settings)
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            workspace = await get_workspace(session, "acme")
            integration = await get_integration(session, workspace.id, "main")
            return await read_secret(session, vault, workspace, integration, "auth_token")
    finally:
        await db.dispose()


async def setup_workspace(settings: Settings) -> None:
    """Workspace ``acme`` with a twilio integration ``main``, set up in-process (fast)."""
    async with running(settings) as runtime, runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Acme", "acme")
        await connect_integration(
            session, runtime.vault, workspace, provider="twilio", name="main",
            public={"account_sid": ACCOUNT_SID}, secrets={"auth_token": AUTH_TOKEN},
        )


async def test_rotate_with_the_key_file(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, CALLABLE_DATABASE_URL=database_url)
    del env["CALLABLE_MASTER_KEY"]  # the key file in the data directory
    settings = make_settings(data_dir, database_url, master_key=None)
    await setup_workspace(settings)
    key_file = data_dir / KEY_FILE_NAME
    old_key_text = key_file.read_text().strip()
    old_id = Vault.from_settings(settings).master_key_id

    status = run_cli("keys", "status", env=env)
    assert status.returncode == 0 and f"master key id: {old_id}" in status.stdout and str(key_file) in status.stdout

    rotated = run_cli("-v", "keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new_key_text = key_file.read_text().strip()
    new_id = Vault(base64.b64decode(new_key_text)).master_key_id
    assert new_key_text != old_key_text and new_id != old_id
    assert f"re-wrapped 1 workspace key(s): master key {old_id} -> {new_id}" in rotated.stdout
    # Progress on stderr (not a terminal here: plain lines), then the count and the time.
    assert "  re-wrapping workspace keys: 0/1" in rotated.stderr.splitlines()
    assert re.search(r"^  re-wrapped 1 of 1 workspace key\(s\) in \d+\.\ds$", rotated.stderr, re.M), rotated.stderr
    assert "Back it up" in rotated.stdout
    for shown in (rotated.stdout + rotated.stderr, status.stdout + status.stderr):
        assert old_key_text not in shown and new_key_text not in shown
    assert_no_secret(rotated, (AUTH_TOKEN,))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (data_dir / PENDING_KEY_FILE_NAME).exists()

    assert await read_auth_token(settings) == AUTH_TOKEN
    with pytest.raises(VaultError, match="acme"):
        await read_auth_token(make_settings(data_dir, database_url, master_key=old_key_text))

    # A rotation that stopped after writing master.key.new: both keys load, and rotate finishes it.
    pending_key = generate_key()
    pending = data_dir / PENDING_KEY_FILE_NAME
    pending.write_text(b64(pending_key) + "\n")
    os.chmod(pending, 0o600)
    pending_id = Vault(pending_key).master_key_id
    status = run_cli("keys", "status", env=env)
    assert status.returncode == 0 and f"pending:       {pending_id}" in status.stdout
    assert "unfinished key rotation" in status.stderr  # the vault's start-up warning
    assert await read_auth_token(settings) == AUTH_TOKEN
    refused = run_cli("keys", "rotate", "--new-key-stdin", env=env, input=b64(generate_key()) + "\n")
    assert refused.returncode == 1 and "different new key from an unfinished rotation" in refused.stderr
    finished = run_cli("keys", "rotate", env=env)
    assert finished.returncode == 0, finished.stderr
    assert f"{new_id} -> {pending_id}" in finished.stdout
    assert not pending.exists() and key_file.read_text().strip() == b64(pending_key)
    assert await read_auth_token(settings) == AUTH_TOKEN


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the key-file test covers PostgreSQL
async def test_rotate_with_the_environment_variable(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    old_key, new_key = b64(generate_key()), b64(generate_key())
    env = cli_env(data_dir, CALLABLE_DATABASE_URL=database_url, CALLABLE_MASTER_KEY=old_key)
    await setup_workspace(make_settings(data_dir, database_url, master_key=old_key))
    assert not (data_dir / KEY_FILE_NAME).exists()

    without_flag = run_cli("keys", "rotate", env=env, input=new_key + "\n")
    assert without_flag.returncode == 1
    assert "--new-key-stdin: CALLABLE_MASTER_KEY is set" in without_flag.stderr

    same = run_cli("keys", "rotate", "--new-key-stdin", env=env, input=old_key + "\n")
    assert same.returncode == 1 and "same as the current one" in same.stderr
    assert await read_auth_token(make_settings(data_dir, database_url, master_key=old_key)) == AUTH_TOKEN

    rotated = run_cli("keys", "rotate", "--new-key-stdin", env=env, input=new_key + "\n")
    assert rotated.returncode == 0, rotated.stderr
    old_id, new_id = (Vault(base64.b64decode(k)).master_key_id for k in (old_key, new_key))
    assert f"re-wrapped 1 workspace key(s): master key {old_id} -> {new_id}" in rotated.stdout
    assert "set CALLABLE_MASTER_KEY to the new key" in rotated.stdout
    for key in (old_key, new_key):
        assert key not in rotated.stdout and key not in rotated.stderr
    assert_no_secret(rotated, (AUTH_TOKEN,))
    assert not (data_dir / KEY_FILE_NAME).exists() and not (data_dir / PENDING_KEY_FILE_NAME).exists()

    assert await read_auth_token(make_settings(data_dir, database_url, master_key=new_key)) == AUTH_TOKEN
    with pytest.raises(VaultError, match=f"wrapped by master key '{new_id}'"):
        await read_auth_token(make_settings(data_dir, database_url, master_key=old_key))


def test_a_bad_new_key_on_stdin_is_refused_without_echoing_it(tmp_path: Path) -> None:
    # The key is checked before any database is opened, so no backend is needed.
    env = cli_env(tmp_path / "data")
    for bad, expected in (("not-base64!!", "not valid base64"), (b64(b"x" * 16), "decodes to 16 bytes")):
        result = run_cli("keys", "rotate", "--new-key-stdin", env=env, input=bad + "\n")
        assert result.returncode == 1 and expected in result.stderr, result.stderr
        assert result.stderr.startswith("error: new master key (stdin)")
        if bad:
            assert bad not in result.stderr
