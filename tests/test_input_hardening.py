"""Each input the fuzzing found answering 500 now answers 422 naming the field, storing nothing.

Through the real app, over ASGI, on a real SQLite file: the admin API (JSON bodies, a
person's reply) and the widget API (JSON messages, the history cursor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from callable_agents.core.models import Message
from callable_agents.core.store.workspaces import create_api_key
from callable_agents.server import create_app
from tests.core.pipeline_helpers import make_agent_channel, say
from tests.e2e.whatsapp_support import serving
from tests.plugins.webchat_support import make_web_setup, web_settings

SHOP = "https://shop.example.com"
DEEP = "[" * 1_200 + "]" * 1_200
LONG_NUMBER = "1" * 4_400


@dataclass
class Env:
    api: httpx.AsyncClient
    web: httpx.AsyncClient
    widget_path: str
    token: str
    conversation_id: str

    async def stored_messages(self) -> int:
        runtime = self.web._transport.app.state.runtime  # type: ignore[attr-defined]
        async with runtime.db.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    app = create_app(web_settings(tmp_path, run_worker=False))
    async with serving(app) as web:
        runtime = app.state.runtime
        setup = await make_web_setup(runtime, widget_config={"allowed_origins": [SHOP]})
        _agent, channel = await make_agent_channel(runtime)
        accepted = await say(runtime, channel, "Hello")
        async with runtime.db.session() as session:
            _row, key = await create_api_key(session, setup.workspace_id, "hardening")
        widget_path = f"/channels/widget/{setup.channels['widget'].id}"
        session_response = await web.post(f"{widget_path}/sessions", headers={"Origin": SHOP})
        token = session_response.json()["token"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {key}"}) as api:
            yield Env(api, web, widget_path, token, accepted.conversation_id)


def _error(response: httpx.Response) -> dict[str, str]:
    error = response.json()["error"]
    assert isinstance(error, dict)
    return error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (DEEP, "body: expected JSON nested at most 32 levels deep"),
        ('{"provider": "http", "name": "x", "n": ' + LONG_NUMBER + "}", "body: expected numbers of at most 32 characters"),
        ('{"provider": "\\ud800", "name": "x"}', "body.provider: expected text without lone UTF-16 surrogates"),
    ],
    ids=["deep", "long-number", "surrogate"],
)
async def test_admin_api_bodies(env: Env, body: str, message: str) -> None:
    response = await env.api.post("/api/v1/integrations", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert _error(response)["message"].startswith(message)
    assert _error(response)["field"] == message.split(":")[0]


async def test_a_persons_reply_with_a_lone_surrogate(env: Env) -> None:
    before = await env.stored_messages()
    response = await env.api.post(
        f"/api/v1/conversations/{env.conversation_id}/reply",
        content='{"text": "Hi \\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert _error(response)["field"] == "body.text"
    assert await env.stored_messages() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [(DEEP, "body"), ('{"text": "\\ud800"}', "body.text"), ('{"text": ' + LONG_NUMBER + "}", "body")],
    ids=["deep", "surrogate", "long-number"],
)
async def test_widget_messages(env: Env, body: str, field: str) -> None:
    before = await env.stored_messages()
    headers = {"Origin": SHOP, "Authorization": f"Bearer {env.token}", "Content-Type": "application/json"}
    response = await env.web.post(f"{env.widget_path}/messages", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert await env.stored_messages() == before


@pytest.mark.parametrize("after", ["9223372036854775808", "1" * 5_000, "-1"])
async def test_widget_history_cursor_out_of_range(env: Env, after: str) -> None:
    headers = {"Origin": SHOP, "Authorization": f"Bearer {env.token}"}
    response = await env.web.get(f"{env.widget_path}/messages", params={"after": after}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "after"
    assert response.json()["error"]["message"].startswith("after: expected an integer 0..9223372036854775807")


async def test_the_largest_cursor_is_accepted(env: Env) -> None:
    headers = {"Origin": SHOP, "Authorization": f"Bearer {env.token}"}
    response = await env.web.get(f"{env.widget_path}/messages", params={"after": str(2**63 - 1)}, headers=headers)
    assert response.status_code == 200, response.text
