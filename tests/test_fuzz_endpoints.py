"""Fuzzing every JSON and form endpoint: no input answers 5xx, every 4xx says what was wrong.

Hypothesis generates JSON values (deep, wide, odd numbers, any Unicode including lone
surrogates), raw bytes and query strings, and sends them to the real app on a real SQLite
file: the admin API with a valid key, the widget and page APIs with a valid visitor token,
and the WhatsApp webhooks (unsigned and signed with the channel's real auth token).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.testclient import TestClient

from callable_agents.core.store.workspaces import create_api_key
from callable_agents.server import create_app
from tests.core.pipeline_helpers import make_agent_channel, say
from tests.e2e.whatsapp_support import TOKEN, form_and_headers, make_world
from tests.plugins.webchat_support import make_web_setup, web_settings

SHOP = "https://shop.example.com"
EXAMPLES = 40

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(alphabet=st.characters(codec=None))
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20)
raw_bodies = (
    json_values.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=200)
    | st.integers(min_value=1, max_value=3000).map(lambda depth: ("[" * depth + "]" * depth).encode())
    | st.integers(min_value=1, max_value=6000).map(lambda digits: b'{"text": ' + b"9" * digits + b"}")
    | st.sampled_from([b'{"text": "\\ud800"}', b'{"token": "\\udfff"}', b'{"text": "a\\u0000"}', b"NaN", b'{"x": Infinity}'])
    | st.fixed_dictionaries({"text": st.text(alphabet=st.characters(codec=None), max_size=30)}).map(lambda v: json.dumps(v).encode())
)
# Query strings are UTF-8 on the wire: a client cannot send a lone surrogate in one (bodies can).
query_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.integers().map(str) | st.just("9223372036854775808")


@dataclass
class World:
    client: TestClient
    api_headers: dict[str, str]
    widget: str
    page: str
    token: str
    page_token: str
    conversation_id: str
    whatsapp: str
    whatsapp_url: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = web_settings(tmp_path, run_worker=False, public_base_url="https://bot.example.com")
    app = create_app(settings_)
    with TestClient(app, base_url="https://bot.example.com") as client:
        runtime = app.state.runtime

        async def build() -> tuple[Any, ...]:
            setup = await make_web_setup(runtime, widget_config={"allowed_origins": [SHOP]})
            agent, channel = await make_agent_channel(runtime)
            accepted = await say(runtime, channel, "Hello")
            async with runtime.db.session() as session:
                _row, key = await create_api_key(session, agent.workspace_id, "fuzz")
            whatsapp = await make_world(runtime, workspace_name="Fuzz WhatsApp")
            return setup, accepted, key, whatsapp

        setup, accepted, key, whatsapp = client.portal.call(build)  # type: ignore[union-attr]
        client.post("/api/v1/knowledge-bases", json={"name": "fuzz"}, headers={"Authorization": f"Bearer {key}"})
        widget = f"/channels/widget/{setup.channels['widget'].id}"
        page = f"/channels/page/{setup.channels['page'].id}"
        token = client.post(f"{widget}/sessions", headers={"Origin": SHOP}).json()["token"]
        page_token = client.post(f"{page}/sessions", headers={"Origin": "https://bot.example.com"}).json().get("token", "")
        yield World(
            client, {"Authorization": f"Bearer {key}"}, widget, page, token, page_token, accepted.conversation_id,
            whatsapp.path("inbound").rsplit("/", 1)[0], whatsapp.urls(runtime)["inbound"].rsplit("/", 1)[0],
        )


def _check(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what} answered {response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500 and response.headers.get("content-type", "").startswith("application/json"):
        error = response.json().get("error")
        message = error.get("message", "") if isinstance(error, dict) else str(error or "")
        assert message.strip(), f"{what}: a {response.status_code} without a message"
        if response.status_code in (400, 422):
            named = (isinstance(error, dict) and error.get("field")) or ":" in message
            assert named, f"{what}: a {response.status_code} that names no field: {message!r}"


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


ADMIN_POSTS = [
    "/integrations", "/conversations/{id}/reply", "/conversations/{id}/takeover", "/conversations/{id}/return",
    "/agents", "/channels", "/knowledge-bases", "/knowledge-bases/fuzz/sources", "/knowledge-bases/fuzz/search",
    "/keys", "/members",
]
ADMIN_PATCHES = ["/agents/assistant", "/channels/terminal-channel", "/integrations/nothing"]
# Bodies shaped like the endpoints' own, with any value in each field.
shaped_bodies = st.fixed_dictionaries(
    {"kind": st.sampled_from(["text", "url", "widget", "chat", "voice"]) | json_values},
    optional={name: json_values for name in ("name", "title", "text", "url", "options", "agent", "config", "query", "k", "mode", "email", "role", "tools", "model_settings", "index")},
).map(lambda value: json.dumps(value).encode())


@FUZZ
@given(body=raw_bodies | shaped_bodies, path=st.sampled_from(ADMIN_POSTS + ADMIN_PATCHES))
def test_admin_api_json_bodies(world: World, body: bytes, path: str) -> None:
    url = "/api/v1" + path.replace("{id}", world.conversation_id)
    method = "PATCH" if path in ADMIN_PATCHES else "POST"
    headers = {**world.api_headers, "Content-Type": "application/json"}
    _check(world.client.request(method, url, content=body, headers=headers), f"{method} {url}")


@FUZZ
@given(status=query_values, conversation=query_values, name=query_values)
def test_admin_api_parameters(world: World, status: str, conversation: str, name: str) -> None:
    _check(world.client.get("/api/v1/conversations", params={"status": status}, headers=world.api_headers), "list")
    _check(world.client.get(f"/api/v1/conversations/{_segment(conversation)}", headers=world.api_headers), "get conversation")
    _check(world.client.delete(f"/api/v1/integrations/{_segment(name)}", headers=world.api_headers), "delete integration")


def _segment(value: str) -> str:
    """A path segment as a client would send it: percent-encoded bytes (surrogates included)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="") or "x"


@FUZZ
@given(body=raw_bodies, surface=st.sampled_from(["widget", "page"]), endpoint=st.sampled_from(["sessions", "messages"]))
def test_web_chat_json_bodies(world: World, body: bytes, surface: str, endpoint: str) -> None:
    base, token, origin = (world.widget, world.token, SHOP) if surface == "widget" else (world.page, world.page_token, "https://bot.example.com")
    headers = {"Origin": origin, "Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    _check(world.client.post(f"{base}/{endpoint}", content=body, headers=headers), f"{surface} {endpoint}")


@FUZZ
@given(after=query_values, limit=query_values)
def test_web_chat_history_parameters(world: World, after: str, limit: str) -> None:
    headers = {"Origin": SHOP, "Authorization": f"Bearer {world.token}"}
    _check(world.client.get(f"{world.widget}/messages", params={"after": after, "limit": limit}, headers=headers), "history")


form_fields = st.dictionaries(
    st.sampled_from(["Body", "From", "To", "MessageSid", "AccountSid", "NumMedia", "MediaUrl0", "MessageStatus", "ErrorCode", "ProfileName", "Latitude", "x"]),
    query_values,
    max_size=8,
)


@FUZZ
@given(fields=form_fields, endpoint=st.sampled_from(["inbound", "status"]), signed=st.booleans(), raw=st.binary(max_size=100))
def test_whatsapp_form_webhooks(world: World, fields: dict[str, str], endpoint: str, signed: bool, raw: bytes) -> None:
    path, url = f"{world.whatsapp}/{endpoint}", f"{world.whatsapp_url}/{endpoint}"
    if signed:
        try:
            request = form_and_headers(TOKEN, url, fields)
        except UnicodeEncodeError:  # a form cannot carry a lone surrogate; Twilio never sends one
            return
        _check(world.client.post(path, **request), f"signed {endpoint}")
    else:
        _check(world.client.post(path, content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}), f"unsigned {endpoint}")
