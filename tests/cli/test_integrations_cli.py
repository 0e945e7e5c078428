"""``callable integrations``: the real command (its entry function, in-process:
``tests.cli.helpers.run_cli``).

Secrets go in on stdin only; no output (stdout or stderr, even at DEBUG) may contain them.
Workspaces are set up directly through the store; the commands under test run through the
CLI, with its logging on its stderr. The main flow runs on SQLite and PostgreSQL; the error paths,
which don't depend on the backend, on SQLite only.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import running
from callable_agents.core.config import Settings
from callable_agents.core.store.integrations import default_providers
from callable_agents.core.store.workspaces import create_workspace
from tests.cli.helpers import cli_env, run_cli
from tests.conftest import make_settings
from callable_agents.testing.twilio_server import FakeTwilio

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
API_KEY_SID = "SK" + "0" * 32
AUTH_TOKEN = "cli-auth-token-0123456789abcdef-WXYZ"
API_KEY_SECRET = "cli-api-key-secret-000000-QRST"
OPENAI_KEY = "sk-cli-openai-0123456789abcdef-LMNO"
SECRETS = (AUTH_TOKEN, API_KEY_SECRET, OPENAI_KEY)

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

PROVIDERS = default_providers()  # the built-in plugins' providers and core's own


def assert_no_secret(result: subprocess.CompletedProcess[str], secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


async def create_workspaces(settings: Settings, *slugs: str) -> None:
    async with running(settings) as runtime, runtime.db.session() as session:
        for slug in slugs:
            await create_workspace(session, runtime.vault, slug.title(), slug)


@dataclass
class Cli:
    """Runs ``callable`` against one data directory and database; checks every output for secrets."""

    env: dict[str, str]
    settings: Settings

    def __call__(self, *args: str, input: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env=self.env, input=input)
        if check:
            assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert_no_secret(result)
        return result


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        fake.add_account(ACCOUNT_SID, AUTH_TOKEN)
        fake.add_api_key(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET)
        yield fake


@pytest.fixture
async def cli(tmp_path: Path, database_url: str, twilio: FakeTwilio) -> Cli:
    """The CLI against a migrated database with workspace ``acme``; Twilio is the loopback fake."""
    env = cli_env(tmp_path / "data", CALLABLE_DATABASE_URL=database_url, CALLABLE_TWILIO_API_BASE_URL=twilio.base_url)
    settings = make_settings(tmp_path / "data", database_url, master_key=env["CALLABLE_MASTER_KEY"])
    await create_workspaces(settings, "acme")
    return Cli(env, settings)


async def test_connect_update_and_list_never_show_secrets(cli: Cli, twilio: FakeTwilio) -> None:
    connected = cli(
        "-v", "integrations", "connect", "twilio", "--name", "main", "--account-sid", ACCOUNT_SID,
        "--api-key-sid", API_KEY_SID, input=f"{AUTH_TOKEN}\n{API_KEY_SECRET}\n",
    )
    assert f"Twilio accepted the credentials for {ACCOUNT_SID}" in connected.stderr
    assert "connected twilio integration 'main'" in connected.stdout
    assert "auth_token=…WXYZ" in connected.stdout and "api_key_secret=…QRST" in connected.stdout
    assert "DEBUG" in connected.stderr  # -v really logged (SQL parameters included), and no secret is in it
    openai_args = ("integrations", "connect", "openai", "--name", "llm", "--secrets-stdin", "--base-url", "http://127.0.0.1:9/v1")
    unreachable = cli(*openai_args, input=json.dumps({"api_key": OPENAI_KEY}), check=False)  # the key is checked by listing models
    assert unreachable.returncode == 1 and "could not reach the model server at http://127.0.0.1:9/v1" in unreachable.stderr
    assert "nothing was stored" in unreachable.stderr and "--no-verify" in unreachable.stderr
    assert OPENAI_KEY not in unreachable.stdout + unreachable.stderr
    cli(*openai_args, "--no-verify", input=json.dumps({"api_key": OPENAI_KEY}))
    table = cli("integrations", "list").stdout.splitlines()
    assert len(table) == 3 and re.fullmatch(r"NAME\s+PROVIDER\s+SETTINGS\s+SECRETS\s+ID", table[0])
    assert re.match(r"llm\s+openai\s+", table[1]) and "base_url=http://127.0.0.1:9/v1" in table[1] and "api_key=…LMNO" in table[1]
    assert re.match(r"main\s+twilio\s+", table[2]) and f"account_sid={ACCOUNT_SID}" in table[2]

    # Update: a new auth token replaces the old one; the empty second line keeps api_key_secret.
    new_token = "rotated-token-0000000000000000-NEW1"
    twilio.add_account(ACCOUNT_SID, new_token)  # rotated in the Twilio Console first
    updated = cli("integrations", "connect", "twilio", "--name", "main", input=f"{new_token}\n\n")
    assert new_token not in updated.stdout + updated.stderr and "auth_token=…NEW1" in updated.stdout

    listed = json.loads(cli("-v", "integrations", "list", "--json").stdout)
    assert [(v["name"], v["provider"]) for v in listed] == [("llm", "openai"), ("main", "twilio")]
    twilio = listed[1]
    assert twilio["has_auth_token"] is True and twilio["auth_token_last4"] == "NEW1"
    assert twilio["has_api_key_secret"] is True and twilio["api_key_secret_last4"] == "QRST"
    assert twilio["account_sid"] == ACCOUNT_SID
    assert not any(key in twilio for key in ("auth_token", "api_key_secret", "secrets", "_last4"))


BAD_CONNECTS: list[tuple[list[str], str, str]] = [
    (["twilio", "--name", "t", "--account-sid", "AC123"], f"{AUTH_TOKEN}\n", "account_sid: expected 'AC' followed by 32 hex"),
    (["twilio", "--name", "t", "--account-sid", ACCOUNT_SID], "", "auth_token: required"),
    (["twilio", "--name", "t", "--account-sid", ACCOUNT_SID], f"{AUTH_TOKEN}\n{API_KEY_SECRET}\nextra-{OPENAI_KEY}\n", "stdin: expected at most 2 line(s)"),
    (["openai", "--name", "o", "--secrets-stdin"], f"{{api_key: {OPENAI_KEY}}}", "--secrets-stdin: expected a JSON object"),
    (["openai", "--name", "o", "--secrets-stdin"], json.dumps([OPENAI_KEY]), "--secrets-stdin: expected a JSON object of strings"),
]


@sqlite_only
async def test_bad_input_is_one_line_naming_the_field(cli: Cli) -> None:
    for args, stdin, expected in BAD_CONNECTS:
        result = cli("integrations", "connect", *args, input=stdin, check=False)
        assert result.returncode == 1, args
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert expected in result.stderr
    assert json.loads(cli("integrations", "list", "--json").stdout) == []


async def test_secrets_are_not_accepted_as_options(tmp_path: Path) -> None:
    # Click rejects these before any database is opened, so no backend is needed.
    env = cli_env(tmp_path / "data")
    result = run_cli("integrations", "connect", "twilio", "--name", "t", "--auth-token", AUTH_TOKEN, env=env)
    assert result.returncode == 2 and "No such option '--auth-token'" in result.stderr
    unknown = run_cli("integrations", "connect", "slack", "--name", "s", env=env)
    assert unknown.returncode == 2 and "'slack' is not one of" in unknown.stderr
    assert all(f"'{provider}'" in unknown.stderr for provider in PROVIDERS)


@sqlite_only
async def test_remove_and_workspace_scoping(cli: Cli) -> None:
    await create_workspaces(cli.settings, "other")
    cli("integrations", "connect", "openai", "--name", "llm", "--workspace", "acme", "--no-verify", input=f"{OPENAI_KEY}\n")
    several = cli("integrations", "list", check=False)
    assert several.returncode == 1 and "--workspace: several workspaces exist" in several.stderr
    assert json.loads(cli("integrations", "list", "--json", "--workspace", "other").stdout) == []
    missing = cli("integrations", "remove", "llm", "--yes", "--workspace", "other", check=False)
    assert missing.returncode == 1 and "integration 'llm' not found" in missing.stderr
    declined = cli("integrations", "remove", "llm", "-w", "acme", input="n\n", check=False)
    assert declined.returncode != 0 and "Aborted" in declined.stderr
    removed = cli("integrations", "remove", "llm", "--yes", "--workspace", "acme")
    assert "removed openai integration 'llm' from workspace acme" in removed.stdout
    assert json.loads(cli("integrations", "list", "--json", "-w", "acme").stdout) == []
