"""The vault: AES-256-GCM envelope encryption, key file handling and master key rotation.

Database tests run on SQLite and PostgreSQL (``settings``/``runtime`` are parametrised).
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings
from callable_agents.core.db import Database
from callable_agents.core.errors import ConfigError, VaultError
from callable_agents.core.store.integrations import connect_integration, get_integration, read_secret
from callable_agents.core.models import Integration, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.key_rotation import finish_interrupted_rotation, rotate_master_key
from callable_agents.core.store.vault import (
    KEY_FILE_NAME,
    PENDING_KEY_FILE_NAME,
    Vault,
    generate_key,
)
from callable_agents.core.store.workspaces import create_workspace, get_workspace
from tests.conftest import make_settings

SECRET = "s3cr3t-Auth-Token-0123456789abcdef"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2


def workspace_row(vault: Vault, workspace_id: str = "w" * 32, slug: str = "acme") -> Workspace:
    """A workspace with a data key, not stored: enough for the pure crypto tests."""
    wrapped, key_id = vault.new_wrapped_key(workspace_id)
    return Workspace(id=workspace_id, slug=slug, name=slug, wrapped_key=wrapped, key_id=key_id)


def flip_byte(token: str, index: int) -> str:
    """``token`` with one byte of its nonce||ciphertext||tag body changed."""
    version, key_id, body = token.split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[index] ^= 0x01
    return f"{version}:{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"


def fresh_vault() -> Vault:
    return Vault(generate_key())


# -- pure crypto --------------------------------------------------------------------------


def test_round_trip_and_token_format() -> None:
    vault = fresh_vault()
    workspace = workspace_row(vault)
    token = vault.encrypt(workspace, "integration-1", "auth_token", SECRET)
    version, key_id, body = token.split(":", 2)
    assert version == "v1" and key_id == workspace.key_id
    raw = base64.urlsafe_b64decode(body)
    assert len(raw) == 12 + len(SECRET.encode()) + 16
    assert SECRET not in token
    assert vault.decrypt(workspace, "integration-1", "auth_token", token) == SECRET
    assert vault.decrypt(workspace, "integration-1", "auth_token", vault.encrypt(workspace, "integration-1", "auth_token", "")) == ""
    unicode_secret = "pässwörd-ключ-🔑"
    assert vault.decrypt(workspace, "i", "f", vault.encrypt(workspace, "i", "f", unicode_secret)) == unicode_secret


def test_every_encryption_uses_a_fresh_nonce() -> None:
    vault = fresh_vault()
    workspace = workspace_row(vault)
    tokens = {vault.encrypt(workspace, "i", "f", SECRET) for _ in range(50)}
    nonces = {base64.urlsafe_b64decode(t.split(":", 2)[2])[:12] for t in tokens}
    assert len(tokens) == 50 and len(nonces) == 50


@pytest.mark.parametrize(
    ("part", "index"),
    [("nonce", 0), ("nonce", 11), ("ciphertext", 12), ("ciphertext", 12 + len(SECRET) - 1), ("tag", -16), ("tag", -1)],
)
def test_changing_one_byte_fails(part: str, index: int) -> None:
    vault = fresh_vault()
    workspace = workspace_row(vault)
    token = vault.encrypt(workspace, "integration-1", "auth_token", SECRET)
    tampered = flip_byte(token, index)
    with pytest.raises(VaultError, match="failed authentication") as caught:
        vault.decrypt(workspace, "integration-1", "auth_token", tampered)
    message = str(caught.value)
    assert "integration-1" in message and "auth_token" in message and "acme" in message
    assert SECRET not in message


def test_value_moved_to_another_workspace_integration_or_field_fails() -> None:
    vault = fresh_vault()
    workspace_a = workspace_row(vault, "a" * 32, "alpha")
    workspace_b = workspace_row(vault, "b" * 32, "beta")
    token = vault.encrypt(workspace_a, "integration-1", "auth_token", SECRET)
    with pytest.raises(VaultError, match="not this workspace's key"):
        vault.decrypt(workspace_b, "integration-1", "auth_token", token)
    with pytest.raises(VaultError, match="failed authentication"):
        vault.decrypt(workspace_a, "integration-2", "auth_token", token)
    with pytest.raises(VaultError, match="failed authentication"):
        vault.decrypt(workspace_a, "integration-1", "api_key_secret", token)
    # Even with the key id rewritten to B's, B's data key and AAD reject it.
    forged = token.replace(f":{workspace_a.key_id}:", f":{workspace_b.key_id}:")
    with pytest.raises(VaultError, match="failed authentication"):
        vault.decrypt(workspace_b, "integration-1", "auth_token", forged)
    # A workspace row given another workspace's wrapped key does not unwrap (AAD binds the id).
    impostor = Workspace(id="c" * 32, slug="gamma", name="g", wrapped_key=workspace_a.wrapped_key, key_id=workspace_a.key_id)
    with pytest.raises(VaultError, match="gamma.*failed authentication"):
        vault.decrypt(impostor, "integration-1", "auth_token", token)


def test_wrong_master_key_fails() -> None:
    vault = fresh_vault()
    workspace = workspace_row(vault)
    token = vault.encrypt(workspace, "i", "auth_token", SECRET)
    other = fresh_vault()
    with pytest.raises(VaultError, match=f"wrapped by master key '{vault.master_key_id}'.*loaded master key is '{other.master_key_id}'"):
        other.decrypt(workspace, "i", "auth_token", token)
    # A different key whose id was forged into the wrapped token still fails authentication.
    kind, _kek_id, body = str(workspace.wrapped_key).split(":", 2)
    forged = Workspace(id=workspace.id, slug="acme", name="acme", wrapped_key=f"{kind}:{other.master_key_id}:{body}", key_id=workspace.key_id)
    with pytest.raises(VaultError, match="failed authentication"):
        other.decrypt(forged, "i", "auth_token", token)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("v2:{kid}:AAAA", "unknown secret format version"),
        ("plain text secret", "not a vault token"),
        ("v1:{kid}:%%%not-base64%%%", "malformed"),
        ("v1:{kid}:AAAA", "too short"),
        ("v1:0000000000000000:{body}", "not this workspace's key"),
    ],
)
def test_malformed_tokens_fail_loudly(token: str, message: str) -> None:
    vault = fresh_vault()
    workspace = workspace_row(vault)
    good = vault.encrypt(workspace, "i", "f", SECRET)
    token = token.format(kid=workspace.key_id, body=good.split(":", 2)[2])
    with pytest.raises(VaultError, match=message):
        vault.decrypt(workspace, "i", "f", token)


def test_key_id_mismatch_and_missing_key_fail() -> None:
    vault = fresh_vault()
    workspace = workspace_row(vault)
    wrong_id = Workspace(id=workspace.id, slug="acme", name="acme", wrapped_key=workspace.wrapped_key, key_id="f" * 16)
    token = vault.encrypt(workspace, "i", "f", SECRET)
    with pytest.raises(VaultError):
        vault.decrypt(wrong_id, "i", "f", token.replace(str(workspace.key_id), "f" * 16))
    without_key = Workspace(id="x" * 32, slug="nokey", name="n")
    with pytest.raises(VaultError, match="nokey.*no data key"):
        vault.encrypt(without_key, "i", "f", SECRET)


def test_rewrap_keeps_secrets_and_data_key() -> None:
    old = fresh_vault()
    workspace = workspace_row(old)
    token = old.encrypt(workspace, "i", "f", SECRET)
    new = fresh_vault()
    rewrapped = old.rewrap(workspace, new)
    assert rewrapped != workspace.wrapped_key and new.master_key_id in rewrapped
    moved = Workspace(id=workspace.id, slug="acme", name="acme", wrapped_key=rewrapped, key_id=workspace.key_id)
    assert Vault(new._keks[new.master_key_id]).decrypt(moved, "i", "f", token) == SECRET
    with pytest.raises(VaultError):
        fresh_vault().decrypt(moved, "i", "f", token)


def test_repr_and_pickle_never_expose_keys() -> None:
    key = generate_key()
    vault = Vault(key)
    workspace = workspace_row(vault)
    vault.encrypt(workspace, "i", "f", SECRET)
    shown = repr(vault) + str(vault)
    assert vault.master_key_id in shown
    for secret_form in (key.hex(), base64.b64encode(key).decode(), SECRET):
        assert secret_form not in shown
    assert len(vault.master_key_id) == 16 and vault.master_key_id not in key.hex()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(vault)


# -- settings and the key file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not base64 at all!!", "not valid base64"),
        (base64.b64encode(b"short-key-material").decode(), "decodes to 18 bytes"),
        (base64.b64encode(os.urandom(64)).decode(), "decodes to 64 bytes"),
        ("", "decodes to 0 bytes"),
    ],
    ids=["not-base64", "18-bytes", "64-bytes", "empty"],  # the same names in every pytest-xdist worker
)
def test_bad_master_key_setting_is_a_config_error_without_the_value(tmp_path: Path, value: str, expected: str) -> None:
    settings = make_settings(tmp_path, master_key=value)
    with pytest.raises(ConfigError, match=expected) as caught:
        Vault.from_settings(settings)
    message = str(caught.value)
    assert "CALLABLE_MASTER_KEY" in message and "32" in message
    if value:
        assert value not in message
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_master_key_from_setting(tmp_path: Path) -> None:
    key = generate_key()
    vault = Vault.from_settings(make_settings(tmp_path, master_key=base64.b64encode(key).decode()))
    assert vault.master_key_id == Vault(key).master_key_id
    assert vault.key_file is None and not (tmp_path / KEY_FILE_NAME).exists()


def test_key_file_created_0600_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, master_key=None)
    with caplog.at_level(logging.DEBUG):
        first = Vault.from_settings(settings)
        second = Vault.from_settings(settings)
    key_file = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32
    assert first.master_key_id == second.master_key_id
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "created a new master key" in r.getMessage()]
    assert len(warnings) == 1
    assert "back it up" in warnings[0].getMessage().lower() and "apart from database" in warnings[0].getMessage()
    assert key_file.read_text().strip() not in caplog.text
    assert sorted(p.name for p in data_dir.iterdir()) == [KEY_FILE_NAME]  # no temporary files left


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Several processes creating the key file at once must not each keep a different key."""
    script = (
        "import sys; from pathlib import Path; from callable_agents.core.store.vault import Vault; "
        "from tests.conftest import make_settings; "
        "print(Vault.from_settings(make_settings(Path(sys.argv[1]), master_key=None)).master_key_id)"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        for _ in range(4)
    ]
    ids = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert ids == {Vault.from_settings(make_settings(tmp_path / "data", master_key=None)).master_key_id}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_key_file_is_refused(tmp_path: Path, mode: int) -> None:
    settings = make_settings(tmp_path, master_key=None)
    Vault.from_settings(settings)
    key_file = tmp_path / KEY_FILE_NAME
    os.chmod(key_file, mode)
    with pytest.raises(ConfigError, match=rf"group/others \(mode {mode:04o}\).*chmod 600"):
        Vault.from_settings(settings)


def test_corrupt_key_file_is_refused_without_its_content(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_text("definitely-not-a-key\n")
    os.chmod(key_file, 0o600)
    with pytest.raises(ConfigError, match="master.key: expected the base64") as caught:
        Vault.from_settings(make_settings(tmp_path, master_key=None))
    assert "definitely-not-a-key" not in str(caught.value)


def test_missing_key_file_next_to_a_pending_one_is_refused(tmp_path: Path) -> None:
    pending = tmp_path / PENDING_KEY_FILE_NAME
    pending.write_text(base64.b64encode(generate_key()).decode())
    os.chmod(pending, 0o600)
    with pytest.raises(ConfigError, match="restore master.key"):
        Vault.from_settings(make_settings(tmp_path, master_key=None))
    assert not (tmp_path / KEY_FILE_NAME).exists()


# -- with a database (SQLite and PostgreSQL) ----------------------------------------------------


async def _workspace_with_secret(runtime: Runtime, slug: str, secret: str) -> tuple[str, str]:
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, slug.title(), slug)
        integration = await connect_integration(
            session, runtime.vault, workspace, provider="twilio", name="main",
            public={"account_sid": ACCOUNT_SID}, secrets={"auth_token": secret},
        )
        return workspace.id, integration.id


async def _read_back(db: Database, vault: Vault, slug: str) -> str:
    async with db.session() as session:
        workspace = await get_workspace(session, slug)
        integration = await get_integration(session, workspace.id, "main")
        return await read_secret(session, vault, workspace, integration, "auth_token")


async def _wrapped_keys(db: Database) -> dict[str, str]:
    async with db.session() as session:
        return {w.slug: str(w.wrapped_key) for w in (await session.scalars(select(Workspace))).all()}


async def _secret_tokens(db: Database) -> dict[str, dict[str, str]]:
    async with db.session() as session:
        return {i.id: dict(i.secrets) for i in (await session.scalars(select(Integration))).all()}


async def test_secret_absent_from_repr_logs_and_raw_database(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        await _workspace_with_secret(runtime, "acme", SECRET)
        async with runtime.db.session() as session:
            workspace = await get_workspace(session, "acme")
            integration = await get_integration(session, workspace.id, "main")
            assert await read_secret(session, runtime.vault, workspace, integration, "auth_token") == SECRET
            shown = repr(runtime.vault) + repr(integration) + repr(workspace) + str(integration.public)
            assert SECRET not in shown and SECRET not in str(integration.secrets)
    assert SECRET not in caplog.text
    if backend == "sqlite":
        await runtime.db.dispose()  # checkpoint the WAL so every page is in the files read below
        db_path = Path(runtime.settings.resolved_database_url.split(":///", 1)[1])
        raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
        assert b"Auth-Token" not in raw and SECRET.encode() not in raw
        assert b"acme" in raw  # the file really holds the rows
    else:
        async with runtime.db.engine.connect() as conn:
            rows = []
            for table in ("integrations", "workspaces"):
                rows += (await conn.execute(text(f"SELECT t::text FROM {table} t"))).scalars().all()
            dumped = "\n".join(rows)
        assert SECRET not in dumped and "Auth-Token" not in dumped
        assert ACCOUNT_SID in dumped


async def test_rotation_rewraps_every_workspace_and_keeps_secrets(settings: Settings) -> None:
    runtime = await open_runtime(settings)
    try:
        await _workspace_with_secret(runtime, "alpha", SECRET + "-a")
        await _workspace_with_secret(runtime, "beta", SECRET + "-b")
        before = await _wrapped_keys(runtime.db)
        tokens_before = await _secret_tokens(runtime.db)
        new_key = generate_key()
        old_id = runtime.vault.master_key_id
        subkey_before = runtime.vault.derive_subkey("dashboard-sessions")
        result = await rotate_master_key(runtime.db, runtime.vault, new_key)
        assert result.rewrapped == 2 and result.old_key_id == old_id
        # Derived keys (session cookies, visitor tokens) follow the new master key at once.
        assert runtime.vault.derive_subkey("dashboard-sessions") == Vault(new_key).derive_subkey("dashboard-sessions")
        assert runtime.vault.derive_subkey("dashboard-sessions") != subkey_before
        assert result.new_key_id == Vault(new_key).master_key_id != old_id
        after = await _wrapped_keys(runtime.db)
        assert set(after) == {"alpha", "beta"}
        assert all(after[s] != before[s] and result.new_key_id in after[s] for s in after)
        new_vault = Vault.from_settings(make_settings(settings.data_dir, settings.database_url, master_key=base64.b64encode(new_key).decode()))
        assert await _read_back(runtime.db, new_vault, "alpha") == SECRET + "-a"
        assert await _read_back(runtime.db, new_vault, "beta") == SECRET + "-b"
        with pytest.raises(VaultError, match="alpha"):
            await _read_back(runtime.db, Vault.from_settings(settings), "alpha")  # the old key no longer works
        assert await _secret_tokens(runtime.db) == tokens_before  # secrets are not re-encrypted
        with pytest.raises(ConfigError, match="same as the current"):
            await rotate_master_key(runtime.db, new_vault, new_key)
    finally:
        await close_runtime(runtime)


async def test_rotation_with_key_file_is_crash_safe(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, master_key=None)
    runtime = await open_runtime(settings)
    try:
        await _workspace_with_secret(runtime, "alpha", SECRET)
        old_id = runtime.vault.master_key_id
        old_file_text = (data_dir / KEY_FILE_NAME).read_text()
        before = await _wrapped_keys(runtime.db)

        # Crash 1: master.key.new written, transaction never committed.
        new_key = generate_key()
        pending = data_dir / PENDING_KEY_FILE_NAME
        pending.write_text(base64.b64encode(new_key).decode() + "\n")
        os.chmod(pending, 0o600)
        restarted = Vault.from_settings(settings)
        assert restarted.master_key_id == old_id and restarted.pending_key_id == Vault(new_key).master_key_id
        assert await _read_back(runtime.db, restarted, "alpha") == SECRET
        assert await finish_interrupted_rotation(runtime.db, restarted) is False
        assert pending.exists() and (data_dir / KEY_FILE_NAME).read_text() == old_file_text

        # Crash 2: committed (every workspace re-wrapped under the new key), rename never happened.
        async with runtime.db.session() as session:
            for workspace in (await session.scalars(select(Workspace))).all():
                workspace.wrapped_key = restarted.rewrap(workspace, Vault(new_key))
        restarted = Vault.from_settings(settings)
        assert restarted.master_key_id == old_id
        assert await _read_back(runtime.db, restarted, "alpha") == SECRET
        assert await finish_interrupted_rotation(runtime.db, restarted) is True
        assert not pending.exists()
        assert restarted.master_key_id == Vault(new_key).master_key_id
        assert stat.S_IMODE((data_dir / KEY_FILE_NAME).stat().st_mode) == 0o600
        final = Vault.from_settings(settings)
        assert final.master_key_id == Vault(new_key).master_key_id and final.pending_key_id is None
        assert await _read_back(runtime.db, final, "alpha") == SECRET
        assert (await _wrapped_keys(runtime.db))["alpha"] != before["alpha"]
    finally:
        await close_runtime(runtime)


async def test_rotation_resumes_an_interrupted_one_and_replaces_the_key_file(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, master_key=None)
    runtime = await open_runtime(settings)
    try:
        await _workspace_with_secret(runtime, "alpha", SECRET)
        await _workspace_with_secret(runtime, "beta", SECRET + "-b")
        old_id = runtime.vault.master_key_id
        new_key = generate_key()
        pending = data_dir / PENDING_KEY_FILE_NAME
        pending.write_text(base64.b64encode(new_key).decode())
        os.chmod(pending, 0o600)
        vault = Vault.from_settings(settings)
        with pytest.raises(ConfigError, match="different new key"):
            await rotate_master_key(runtime.db, vault, generate_key())
        result = await rotate_master_key(runtime.db, vault)
        assert (result.old_key_id, result.new_key_id, result.rewrapped) == (old_id, Vault(new_key).master_key_id, 2)
        assert not pending.exists()
        reloaded = Vault.from_settings(settings)
        assert reloaded.master_key_id == result.new_key_id
        assert await _read_back(runtime.db, reloaded, "beta") == SECRET + "-b"

        # A fresh rotation generates its own key and writes it 0600.
        second = await rotate_master_key(runtime.db, reloaded)
        assert second.rewrapped == 2 and second.old_key_id == result.new_key_id
        assert stat.S_IMODE((data_dir / KEY_FILE_NAME).stat().st_mode) == 0o600
        assert Vault.from_settings(settings).master_key_id == second.new_key_id == reloaded.master_key_id
        assert await _read_back(runtime.db, Vault.from_settings(settings), "alpha") == SECRET
    finally:
        await close_runtime(runtime)


async def test_rotation_from_the_environment_needs_the_new_key(runtime: Runtime) -> None:
    with pytest.raises(ConfigError, match="CALLABLE_MASTER_KEY is set"):
        await rotate_master_key(runtime.db, runtime.vault)


async def test_rotation_failing_before_commit_changes_nothing(tmp_path: Path, database_url: str) -> None:
    """A workspace whose key can't be unwrapped aborts the rotation: the transaction rolls back,
    master.key stays, and master.key.new is kept so a restart can read either state."""
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, database_url, master_key=None)
    runtime = await open_runtime(settings)
    try:
        await _workspace_with_secret(runtime, "alpha", SECRET)
        await _workspace_with_secret(runtime, "broken", SECRET)
        async with runtime.db.session() as session:
            broken = await get_workspace(session, "broken")
            broken.wrapped_key = flip_byte(str(broken.wrapped_key), -1)
        before = await _wrapped_keys(runtime.db)
        key_text = (data_dir / KEY_FILE_NAME).read_text()
        with pytest.raises(VaultError, match="broken"):
            await rotate_master_key(runtime.db, Vault.from_settings(settings))
        assert await _wrapped_keys(runtime.db) == before
        assert (data_dir / KEY_FILE_NAME).read_text() == key_text
        assert (data_dir / PENDING_KEY_FILE_NAME).exists()
        restarted = Vault.from_settings(settings)
        assert restarted.pending_key_id is not None
        assert await _read_back(runtime.db, restarted, "alpha") == SECRET
    finally:
        await close_runtime(runtime)


def test_copies_share_the_vault() -> None:
    vault = fresh_vault()
    assert copy.copy(vault) is vault and copy.deepcopy({"vault": vault})["vault"] is vault


def test_derived_subkeys_are_stable_per_purpose_and_unrelated() -> None:
    master = generate_key()
    vault = Vault(master)
    same = Vault(master)
    tokens = vault.derive_subkey("webchat-visitor-tokens")
    assert len(tokens) == 32 and tokens == same.derive_subkey("webchat-visitor-tokens")
    assert tokens != vault.derive_subkey("another-purpose")
    assert tokens != master and tokens != Vault(generate_key()).derive_subkey("webchat-visitor-tokens")
    with pytest.raises(ValueError, match="purpose"):
        vault.derive_subkey("")


def test_previous_master_key_setting_keeps_old_wrapped_keys_readable(tmp_path: Path) -> None:
    old_key, new_key = generate_key(), generate_key()
    old = Vault(old_key)
    wrapped, _key_id = old.new_wrapped_key("workspace-1")
    workspace = Workspace(id="workspace-1", name="W", slug="w", wrapped_key=wrapped, key_id=_key_id)
    token = old.encrypt(workspace, "integration-1", "auth_token", "tok_123456789")
    settings = make_settings(
        tmp_path,
        master_key=base64.b64encode(new_key).decode(),
        previous_master_key=base64.b64encode(old_key).decode(),
    )
    rolling = Vault.from_settings(settings)
    assert rolling.decrypt(workspace, "integration-1", "auth_token", token) == "tok_123456789"
    without_previous = Vault.from_settings(make_settings(tmp_path, master_key=base64.b64encode(new_key).decode()))
    with pytest.raises(VaultError):
        without_previous.decrypt(workspace, "integration-1", "auth_token", token)
