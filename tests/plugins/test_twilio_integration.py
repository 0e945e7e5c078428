"""Connecting a Twilio integration through the one check-then-store path (``connect_checked``,
as the CLI, the admin API and the dashboard do): Account SID + Auth Token or an API key, each
refused clearly for 401, 404 and an unreachable Twilio, with nothing stored and no secret in
any message or view."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.errors import InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.integrations import connect_checked, list_integrations
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.core.store.integrations import ProviderUnreachable
from callable_agents.testing.twilio_server import FakeTwilio
from tests.e2e.whatsapp_support import ACCOUNT, KEY_SECRET, KEY_SID, TOKEN, sqlite_settings
from tests.plugins.test_twilio_api import closed_port_url

UNKNOWN_ACCOUNT = "AC" + "7" * 32
WRONG_SECRET = "wrong-secret-typed-by-hand-9876"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN, friendly_name="Bella's Bakery")
        server.add_api_key(ACCOUNT, KEY_SID, KEY_SECRET)
        yield server


async def opened(tmp_path: Path, api_base_url: str) -> tuple[Runtime, Workspace]:
    runtime = await open_runtime(sqlite_settings(tmp_path, twilio_api_base_url=api_base_url))
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Bella's Bakery")
    return runtime, workspace


@pytest.fixture
async def world(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[tuple[Runtime, Workspace]]:
    runtime, workspace = await opened(tmp_path, fake.base_url)
    try:
        yield runtime, workspace
    finally:
        await close_runtime(runtime)


async def connect(runtime: Runtime, workspace: Workspace, public: dict[str, str], secrets: dict[str, str | None]) -> object:
    return await connect_checked(runtime, workspace, provider="twilio", name="twilio", public=public, secrets=secrets)


async def stored_names(runtime: Runtime, workspace: Workspace) -> list[str]:
    async with runtime.db.session() as session:
        return [i.name for i in await list_integrations(session, workspace.id)]


async def test_good_credentials_are_stored_with_the_account_facts_and_masked(world: tuple[Runtime, Workspace]) -> None:
    runtime, workspace = world
    connected = await connect_checked(
        runtime, workspace, provider="twilio", name="twilio",
        public={"account_sid": ACCOUNT, "api_key_sid": KEY_SID}, secrets={"auth_token": TOKEN, "api_key_secret": KEY_SECRET},
    )
    assert connected.account is not None and connected.account["friendly_name"] == "Bella's Bakery"
    view = json.dumps(connected.view)
    assert TOKEN not in view and KEY_SECRET not in view
    assert connected.view["auth_token_last4"] == TOKEN[-4:] and connected.view["api_key_secret_last4"] == KEY_SECRET[-4:]
    assert await stored_names(runtime, workspace) == ["twilio"]


@pytest.mark.parametrize(
    ("public", "secrets", "message"),
    [
        ({"account_sid": ACCOUNT}, {"auth_token": WRONG_SECRET},
         f"Twilio rejected the credentials for account {ACCOUNT} (HTTP 401): check the Account SID and Auth Token"),
        # Twilio authenticates an unknown Account SID as a wrong user: 401, not 404 (404 is for an
        # account the credentials cannot see; test_twilio_api covers it with an API key).
        ({"account_sid": UNKNOWN_ACCOUNT}, {"auth_token": TOKEN},
         f"Twilio rejected the credentials for account {UNKNOWN_ACCOUNT} (HTTP 401): check the Account SID and Auth Token"),
        ({"account_sid": ACCOUNT, "api_key_sid": KEY_SID}, {"auth_token": TOKEN, "api_key_secret": WRONG_SECRET},
         f"the API key {KEY_SID} does not work for this account: Twilio rejected the credentials for account "
         f"{ACCOUNT} (HTTP 401): check the API key SID {KEY_SID} and its secret"),
        ({"account_sid": ACCOUNT, "api_key_sid": "SK" + "9" * 32}, {"auth_token": TOKEN, "api_key_secret": KEY_SECRET},
         f"the API key SK{'9' * 32} does not work for this account: Twilio rejected the credentials"),
    ],
    ids=["wrong-token", "unknown-account", "wrong-key-secret", "unknown-key"],
)
async def test_refused_credentials_are_explained_and_nothing_is_stored(
    world: tuple[Runtime, Workspace], public: dict[str, str], secrets: dict[str, str | None], message: str
) -> None:
    runtime, workspace = world
    with pytest.raises(InvalidInput) as info:
        await connect(runtime, workspace, public, secrets)
    assert str(info.value).startswith(message)
    assert WRONG_SECRET not in str(info.value) and TOKEN not in str(info.value)
    assert await stored_names(runtime, workspace) == []


async def test_a_refused_rotation_keeps_the_working_secret(world: tuple[Runtime, Workspace]) -> None:
    runtime, workspace = world
    await connect(runtime, workspace, {"account_sid": ACCOUNT}, {"auth_token": TOKEN})
    with pytest.raises(InvalidInput, match="HTTP 401"):
        await connect(runtime, workspace, {}, {"auth_token": WRONG_SECRET})
    again = await connect_checked(runtime, workspace, provider="twilio", name="twilio", public={}, secrets={})
    assert again.view["auth_token_last4"] == TOKEN[-4:]  # the stored token still verifies


async def test_twilio_down_or_unreachable_is_said_so_and_nothing_is_stored(
    world: tuple[Runtime, Workspace], fake: FakeTwilio, tmp_path: Path
) -> None:
    runtime, workspace = world
    fake.fail_next(1, 503, scope="accounts")
    with pytest.raises(ProviderUnreachable, match=r"right now \(HTTP 503\); try again; nothing was stored"):
        await connect(runtime, workspace, {"account_sid": ACCOUNT}, {"auth_token": TOKEN})
    assert await stored_names(runtime, workspace) == []

    offline, offline_workspace = await opened(tmp_path / "offline", closed_port_url())
    try:
        with pytest.raises(ProviderUnreachable, match="could not reach Twilio to check account") as info:
            await connect(offline, offline_workspace, {"account_sid": ACCOUNT}, {"auth_token": TOKEN})
        assert str(info.value).endswith("nothing was stored") and TOKEN not in str(info.value)
        assert await stored_names(offline, offline_workspace) == []
    finally:
        await close_runtime(offline)


async def test_other_writes_go_on_while_twilio_is_asked(world: tuple[Runtime, Workspace], fake: FakeTwilio) -> None:
    """The provider is asked with no write transaction open: on SQLite one would hold the
    database's only write lock, and every webhook would wait for Twilio."""
    runtime, workspace = world
    fake.delay_next(1, 1.5, scope="accounts")
    connecting = asyncio.create_task(connect(runtime, workspace, {"account_sid": ACCOUNT}, {"auth_token": TOKEN}))
    while not any(r.scope == "accounts" for r in fake.requests):
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    async with runtime.db.session() as session:
        await create_workspace(session, runtime.vault, "Another Shop")
    waited = time.perf_counter() - started
    assert not connecting.done() and waited < 0.5, f"a write waited {waited:.2f} s for Twilio"
    await connecting
    assert await stored_names(runtime, workspace) == ["twilio"]
