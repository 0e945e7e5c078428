"""The admin API against the real app: a migrated SQLite file, the server's Starlette app
through httpx's ASGI transport, two workspaces with a key each (``api`` acts for *acme*,
``other`` for *globex*), and Twilio as the loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_api_key, create_workspace
from callable_agents.server import create_app
from callable_agents.testing.settings import make_settings, migrated_sqlite_file
from callable_agents.testing.twilio_server import FakeTwilio

ACCOUNT_SID = "AC" + "4d2c" * 8
AUTH_TOKEN = "api-test-auth-token-0123456789-WXYZ"


@dataclass
class ApiEnv:
    runtime: Runtime
    api: httpx.AsyncClient  # acme's key
    other: httpx.AsyncClient  # globex's key
    anonymous: httpx.AsyncClient  # no key
    workspace_id: str
    other_workspace_id: str
    twilio: FakeTwilio
    responses: list[httpx.Response]  # every response any client got, to check none carries a secret


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        fake.add_account(ACCOUNT_SID, AUTH_TOKEN)
        yield fake


@pytest.fixture
async def env(tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[ApiEnv]:
    data_dir = tmp_path / "data"
    migrated_sqlite_file(data_dir)
    settings = make_settings(
        data_dir, twilio_api_base_url=twilio.base_url, twilio_messaging_base_url=twilio.base_url,
        twilio_content_base_url=twilio.base_url,
    )
    runtime = await open_runtime(settings)
    app = create_app(settings)
    app.state.runtime = runtime
    responses: list[httpx.Response] = []

    async def remember(response: httpx.Response) -> None:
        await response.aread()
        responses.append(response)

    def client(key: str | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test/api/v1",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            event_hooks={"response": [remember]},
        )

    try:
        async with runtime.db.session() as session:
            acme = await create_workspace(session, runtime.vault, "Acme", "acme")
            globex = await create_workspace(session, runtime.vault, "Globex", "globex")
            _row, acme_key = await create_api_key(session, acme.id, "tests")
            _row, globex_key = await create_api_key(session, globex.id, "tests")
        async with client(acme_key) as api, client(globex_key) as other, client(None) as anonymous:
            yield ApiEnv(runtime, api, other, anonymous, acme.id, globex.id, twilio, responses)
    finally:
        await close_runtime(runtime)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error body of a response that must have ``status``."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


AGENT = {
    "name": "assistant",
    "kind": "chat",
    "system_prompt": "You answer questions about Acme's bicycles.",
    "business_info": {"name": "Acme Bikes", "hours": "Mon-Fri 9-17"},
    "greeting": "Hi! How can I help?",
}
