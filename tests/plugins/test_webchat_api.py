"""The web chat API (widget and page) through the real server over real connections.

The server runs under uvicorn on a loopback port with its worker on; an offline agent (no
model) answers unless a test points the agent at the fake OpenAI server.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.conversation.inbox import list_conversations
from callable_agents.core.models import Channel, Conversation, Job, Message
from callable_agents.core.conversation.people import hand_off, return_to_agent, send_human_reply
from callable_agents.testing.openai_server import FakeOpenAI
from tests.plugins.webchat_support import (
    HOURS_PAGE,
    BusinessSite,
    LiveServer,
    SSEEvent,
    WebSetup,
    make_web_setup,
    EventReader,
    server_app,
    web_settings,
)

SHOP = "https://shop.example.com"
EVIL = "https://evil.example.net"


@dataclass
class Web:
    server: LiveServer
    setup: WebSetup
    client: httpx.AsyncClient

    def path(self, channel: str, endpoint: str) -> str:
        kind = "page" if channel == "page" else "widget"
        return f"/channels/{kind}/{self.setup.channels[channel].id}/{endpoint}"

    async def session(self, channel: str = "widget", origin: str | None = SHOP, **body: Any) -> httpx.Response:
        return await self.client.post(self.path(channel, "sessions"), json=body or None, headers=_origin(origin))

    async def token(self, channel: str = "widget", origin: str | None = SHOP) -> str:
        response = await self.session(channel, origin)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    async def post(self, channel: str, token: str, body: Any, origin: str | None = SHOP) -> httpx.Response:
        headers = {**_origin(origin), "Authorization": f"Bearer {token}"}
        return await self.client.post(self.path(channel, "messages"), json=body, headers=headers)

    async def history(self, channel: str, token: str, origin: str | None = SHOP, **params: Any) -> httpx.Response:
        headers = {**_origin(origin), "Authorization": f"Bearer {token}"}
        return await self.client.get(self.path(channel, "messages"), params=params, headers=headers)


async def settled(web: Web, timeout: float = 10) -> None:
    """Wait until the server's worker has no job left (replies stored and sent)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with web.server.runtime.db.session() as session:
            busy = await session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(("pending", "running"))))
        if not busy:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("jobs still pending")


def _origin(origin: str | None) -> dict[str, str]:
    return {"Origin": origin} if origin else {}


WIDGETS = {
    "other": {"allowed_origins": [SHOP]},
    "closed": {},
    "limited": {
        "allowed_origins": [SHOP],
        "messages_per_minute_per_visitor": 2,
        "messages_per_minute_per_ip": 3,
        "sessions_per_minute_per_ip": 4,
    },
    "small": {"allowed_origins": [SHOP], "max_message_chars": 20},
}


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    async with LiveServer(server_app(web_settings(tmp_path))) as server:
        setup = await make_web_setup(
            server.runtime,
            widget_config={
                "allowed_origins": [SHOP, "http://localhost:*"],
                "appearance": {"color": "#7c2d12", "title": "Ask Bella", "position": "bottom-left"},
            },
            extra_widgets=WIDGETS,
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
            yield Web(server, setup, client)


# --------------------------------------------------------------------------- sessions


async def test_a_session_starts_resumes_and_carries_the_look(web: Web) -> None:
    response = await web.session()
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in response.headers["vary"]
    started = response.json()
    assert re.fullmatch(r"v1\.[0-9a-f]{32}\.[0-9a-f]{32}\.[A-Za-z0-9_-]{43}", started["token"])
    assert started["token"].split(".")[1] == web.setup.channels["widget"].id
    assert started["resumed"] is False and started["status"] == "bot" and started["max_message_chars"] == 2000
    assert started["greeting"] == "Hi! Ask me about Bella's Bakery."  # the agent's, as the widget sets none
    assert started["appearance"] == {
        "color": "#7c2d12",
        "title": "Ask Bella",
        "greeting": "Hi! Ask me about Bella's Bakery.",
        "position": "bottom-left",
    }

    resumed = (await web.session(token=started["token"])).json()
    assert (resumed["token"], resumed["visitor_id"], resumed["resumed"]) == (started["token"], started["visitor_id"], True)

    other_channel_token = await web.token("other")
    for stale in (other_channel_token, started["token"][:-2] + "xx", "not-a-token"):
        fresh = (await web.session(token=stale)).json()
        assert fresh["resumed"] is False and fresh["visitor_id"] != started["visitor_id"]


async def test_a_session_refuses_a_malformed_body(web: Web) -> None:
    wrong_type = await web.session(token=5)
    assert wrong_type.status_code == 422
    assert wrong_type.json()["error"] == {"message": "token: expected a string or nothing, got int", "field": "token"}
    not_json = await web.client.post(
        web.path("widget", "sessions"), content=b"{token", headers={"Origin": SHOP, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["error"]["message"]
    assert not_json.headers["access-control-allow-origin"] == SHOP  # errors are readable by the page too


# --------------------------------------------------------------------------- origins


async def test_only_allowed_origins_get_a_session(web: Web) -> None:
    for origin in (EVIL, "null", "https://shop.example.com.evil.example", "http://shop.example.com", None):
        refused = await web.session(origin=origin)
        assert refused.status_code == 403, origin
        assert "access-control-allow-origin" not in refused.headers
        assert refused.json()["error"]["field"] == "Origin"
        assert "allowed_origins" in refused.json()["error"]["message"]
    # "http://localhost:*" allows any port of that host.
    for origin in ("http://localhost:5173", "http://localhost"):
        assert (await web.session(origin=origin)).status_code == 200
    assert (await web.session(origin="http://127.0.0.1:5173")).status_code == 403
    # An empty list allows nobody.
    assert (await web.session("closed", origin=SHOP)).status_code == 403


async def test_cors_preflight_is_answered_per_channel(web: Web) -> None:
    for endpoint in ("sessions", "messages", "events"):
        allowed = await web.client.options(
            web.path("widget", endpoint),
            headers={"Origin": SHOP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"},
        )
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == SHOP
        assert "Authorization" in allowed.headers["access-control-allow-headers"]
        assert "Content-Type" in allowed.headers["access-control-allow-headers"]
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "Origin" in allowed.headers["vary"]
    refused = await web.client.options(web.path("widget", "sessions"), headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    elsewhere = await web.client.options(web.path("closed", "sessions"), headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
    assert elsewhere.status_code == 403


async def test_every_endpoint_checks_the_origin_even_with_a_valid_token(web: Web) -> None:
    token = await web.token()
    assert (await web.post("widget", token, {"text": "hi"}, origin=EVIL)).status_code == 403
    assert (await web.history("widget", token, origin=EVIL)).status_code == 403
    events = await web.client.get(web.path("widget", "events"), headers={"Origin": EVIL, "Authorization": f"Bearer {token}"})
    assert events.status_code == 403
    async with web.server.runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_the_page_api_answers_only_the_servers_own_origin(web: Web) -> None:
    assert (await web.session("page", origin=None)).status_code == 200
    same_origin = await web.session("page", origin=web.server.url)
    assert same_origin.status_code == 200 and same_origin.json()["title"] == "Bella's Bakery"
    for origin in (SHOP, web.server.url_on("localhost"), web.server.url.replace("http:", "https:")):
        refused = await web.session("page", origin=origin)
        assert refused.status_code == 403, origin
        assert "answers only the page itself" in refused.json()["error"]["message"]


# --------------------------------------------------------------------------- tokens


async def test_a_visitor_token_reads_only_its_own_conversation(web: Web) -> None:
    token_a, token_b = await web.token(), await web.token()
    assert (await web.post("widget", token_a, {"text": "A: my order is 1234"})).status_code == 202
    assert (await web.post("widget", token_b, {"text": "B: my address is 5 Elm St"})).status_code == 202
    history_a = (await web.history("widget", token_a)).json()["messages"]
    history_b = (await web.history("widget", token_b)).json()["messages"]
    customer_a = [m["text"] for m in history_a if m["author"] == "customer"]
    customer_b = [m["text"] for m in history_b if m["author"] == "customer"]
    assert customer_a == ["A: my order is 1234"] and customer_b == ["B: my address is 5 Elm St"]
    assert not {m["id"] for m in history_a} & {m["id"] for m in history_b}

    # Swapping B's visitor id into A's token breaks its signature.
    version, channel_id, _visitor_a, signature_a = token_a.split(".")
    forged = ".".join([version, channel_id, token_b.split(".")[2], signature_a])
    for bad in (forged, token_a[:-3] + "AAA", "v2" + token_a[2:], "Bearer-less"):
        refused = await web.history("widget", bad)
        assert refused.status_code == 401, bad
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["field"] == "Authorization"
    missing = await web.client.get(web.path("widget", "messages"), headers={"Origin": SHOP})
    assert missing.status_code == 401 and "Bearer <visitor token>" in missing.json()["error"]["message"]


async def test_a_token_for_one_channel_cannot_post_or_read_on_another(web: Web) -> None:
    token_x = await web.token("widget")
    await web.post("widget", token_x, {"text": "hello"})
    posted = await web.post("other", token_x, {"text": "sneaky"})
    assert posted.status_code == 403 and "another channel" in posted.json()["error"]["message"]
    assert (await web.history("other", token_x)).status_code == 403
    events = await web.client.get(web.path("other", "events"), headers={"Origin": SHOP, "Authorization": f"Bearer {token_x}"})
    assert events.status_code == 403
    page_token = await web.token("page", origin=None)
    assert (await web.post("widget", page_token, {"text": "from the page"})).status_code == 403
    async with web.server.runtime.db.session() as session:
        other_id = web.setup.channels["other"].id
        assert await session.scalar(select(func.count()).select_from(Message).where(Message.channel_id == other_id)) == 0


# --------------------------------------------------------------------------- limits


async def test_rate_limits_answer_429_with_retry_after(web: Web) -> None:
    token_a, token_b = await web.token("limited"), await web.token("limited")
    assert [(await web.post("limited", token_a, {"text": f"a{n}"})).status_code for n in range(2)] == [202, 202]
    limited = await web.post("limited", token_a, {"text": "a2"})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["access-control-allow-origin"] == SHOP  # the widget can read why
    assert "Retry-After" in limited.headers["access-control-expose-headers"]
    assert "try again in" in limited.json()["error"]["message"]
    # B has an allowance of their own, but shares this IP's (3 a minute): one more gets through.
    assert (await web.post("limited", token_b, {"text": "b0"})).status_code == 202
    per_ip = await web.post("limited", token_b, {"text": "b1"})
    assert per_ip.status_code == 429 and int(per_ip.headers["retry-after"]) >= 1
    texts = [m["text"] for m in (await web.history("limited", token_a)).json()["messages"] if m["author"] == "customer"]
    assert texts == ["a0", "a1"]  # refused messages are not stored
    # Sessions per IP: 4 a minute; two were used above.
    assert [(await web.session("limited")).status_code for _ in range(3)] == [200, 200, 429]


async def test_message_size_and_shape_are_checked(web: Web) -> None:
    token = await web.token("small")
    too_long = await web.post("small", token, {"text": "x" * 21})
    assert too_long.status_code == 413
    assert too_long.json()["error"] == {
        "message": "text: a message may be at most 20 characters; this one has 21",
        "field": "text",
    }
    assert (await web.post("small", token, {"text": "  " + "y" * 20 + "\n"})).status_code == 202  # trimmed first
    for body, field in (
        ({"text": "   "}, "text"),
        ({}, "text"),
        ({"text": 12}, "text"),
        (["text"], "body"),
        ({"text": "ok", "client_message_id": "no spaces allowed"}, "client_message_id"),
    ):
        refused = await web.post("small", token, body)
        assert refused.status_code == 422, body
        assert refused.json()["error"]["field"] == field
    huge = await web.client.post(
        web.path("small", "messages"),
        content=b'{"text": "' + b"z" * 100_000 + b'"}',
        headers={"Origin": SHOP, "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["error"]["field"] == "body"


async def test_a_retried_post_is_one_message(web: Web) -> None:
    token = await web.token()
    first = await web.post("widget", token, {"text": "hello", "client_message_id": "m-1"})
    again = await web.post("widget", token, {"text": "hello", "client_message_id": "m-1"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
    other = await web.token()  # the same client id from another visitor is another message
    assert (await web.post("widget", other, {"text": "hello", "client_message_id": "m-1"})).json()["duplicate"] is False


async def test_the_inbox_names_a_visitor_by_a_short_label_not_its_id(web: Web) -> None:
    token = await web.token()
    assert (await web.post("widget", token, {"text": "hello"})).status_code == 202
    async with web.server.runtime.db.sessions() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.channel_id == web.setup.channels["widget"].id))
    assert conversation is not None and conversation.external_user_id.startswith("web:")
    visitor_id = conversation.external_user_id.removeprefix("web:")
    assert conversation.profile == {"name": f"Web visitor {visitor_id[:6]}"}
    page = await list_conversations(web.server.runtime, web.setup.workspace_id, None)
    assert [row.customer_name for row in page.rows] == [f"Web visitor {visitor_id[:6]}"]


async def test_unknown_disabled_and_wrong_kind_channels_are_not_found(web: Web) -> None:
    widget_id = web.setup.channels["widget"].id
    for path in (
        f"/channels/widget/{'0' * 32}/sessions",
        "/channels/widget/not-an-id/sessions",
        f"/channels/page/{widget_id}/sessions",
        f"/channels/widget/{web.setup.channels['page'].id}/sessions",
    ):
        response = await web.client.post(path, headers={"Origin": SHOP})
        assert response.status_code == 404, path
    async with web.server.runtime.db.session() as session:
        await session.execute(update(Channel).where(Channel.id == widget_id).values(enabled=False))
    assert (await web.session()).status_code == 404


# --------------------------------------------------------------------------- history


async def test_history_is_paged_and_its_parameters_checked(web: Web) -> None:
    token = await web.token()
    assert (await web.history("widget", token)).json() == {"messages": [], "status": "bot"}
    for text in ("one", "two", "three"):
        await web.post("widget", token, {"text": text})
    await settled(web)
    everything = (await web.history("widget", token)).json()["messages"]
    customer = [m for m in everything if m["author"] == "customer"]
    assert [m["text"] for m in customer] == ["one", "two", "three"]
    assert set(customer[0]) == {"id", "author", "author_name", "text", "media", "citations", "choices", "status", "created_at"}
    later = (await web.history("widget", token, after=customer[0]["id"], limit=1)).json()["messages"]
    assert [m["id"] for m in later] == [everything[1]["id"]]
    latest = (await web.history("widget", token, limit=1)).json()["messages"]
    assert latest == [everything[-1]]
    for params in ({"limit": 0}, {"limit": 201}, {"after": -1}, {"after": "abc"}):
        refused = await web.history("widget", token, **params)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == next(iter(params))


# --------------------------------------------------------------------------- live events


def _agent_message(events: list[SSEEvent]) -> bool:
    return any(e.event == "message" and e.data["author"] == "agent" for e in events)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_events_stream_the_reply_then_the_stored_message_with_citations(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    database_url = request.getfixturevalue("fresh_postgres_url") if backend == "postgresql" else None
    reply = "We open at **7:00** from Monday to Saturday."
    with FakeOpenAI() as fake:
        async with BusinessSite({"/hours": HOURS_PAGE}) as site:
            async with LiveServer(server_app(web_settings(tmp_path, database_url))) as server:
                hours_url = f"{site.url_on('127.0.0.1')}/hours"
                setup = await make_web_setup(
                    server.runtime, model_base_url=fake.base_url, knowledge_urls=(hours_url,), widget_config={"allowed_origins": [SHOP]}
                )
                async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
                    web = Web(server, setup, client)
                    token = await web.token()
                    # The model marks the passage it used; the marker is gone from the stored text.
                    fake.queue_reply(reply + " [1]", chunk_delay=0.02)
                    headers = {"Origin": SHOP, "Authorization": f"Bearer {token}"}
                    async with client.stream("GET", web.path("widget", "events"), headers=headers) as stream:
                        reader = EventReader(stream)
                        assert stream.status_code == 200
                        assert stream.headers["content-type"].startswith("text/event-stream")
                        assert stream.headers["access-control-allow-origin"] == SHOP
                        posted = await web.post("widget", token, {"text": "When do you open?"})
                        events = await reader.until(_agent_message)
                    names = [e.event for e in events]
                    tokens = [e.data["text"] for e in events if e.event == "token"]
                    assert len(tokens) > 3 and "".join(tokens) == reply + " [1]"
                    assert names.index("token") < names.index("message", names.index("token"))
                    customer = next(e.data for e in events if e.event == "message" and e.data["author"] == "customer")
                    assert customer["id"] == posted.json()["message_id"] and customer["text"] == "When do you open?"
                    final = events[-1].data
                    assert final["text"].startswith(reply) and f"[Opening hours]({hours_url})" in final["text"]
                    assert final["citations"] == [{"url": hours_url, "title": "Opening hours", "page": None}]
                    stored = (await web.history("widget", token)).json()["messages"]
                    assert [m["id"] for m in stored] == [customer["id"], final["id"]]
                    assert stored[-1]["citations"] == final["citations"] and stored[-1]["text"] == final["text"]

                    # Reconnecting after the last message resends nothing old.
                    fake.queue_reply("Sourdough comes out at 8:30.")
                    async with client.stream("GET", web.path("widget", "events"), params={"after": final["id"]}, headers=headers) as stream:
                        reader = EventReader(stream)
                        first = await reader.until(lambda seen: any(e.event == "status" for e in seen))
                        await web.post("widget", token, {"text": "And the sourdough?"})
                        more = await reader.until(_agent_message)
                    ids = [e.data["id"] for e in [*first, *more] if e.event == "message"]
                    assert all(message_id > final["id"] for message_id in ids) and len(ids) == len(set(ids)) == 2


async def test_events_carry_a_handoff_and_the_persons_replies_live(web: Web) -> None:
    token = await web.token()
    await web.post("widget", token, {"text": "I want to talk about a catering order"})
    runtime = web.server.runtime
    async with runtime.db.session() as session:
        conversation_id = await session.scalar(select(Conversation.id).where(Conversation.channel_id == web.setup.channels["widget"].id))
    assert conversation_id is not None
    headers = {"Origin": SHOP, "Authorization": f"Bearer {token}"}
    async with web.client.stream("GET", web.path("widget", "events"), headers=headers) as stream:
        reader = EventReader(stream)
        await reader.until(lambda seen: any(e.event == "status" for e in seen))
        await hand_off(runtime, web.setup.workspace_id, conversation_id, "catering")
        handed = await reader.until(lambda seen: any(e.event == "status" for e in seen), timeout=5)
        assert handed[-1].data == {"status": "human"}
        # The customer writes meanwhile: stored, not answered by the agent.
        await web.post("widget", token, {"text": "Still there?"})
        await send_human_reply(runtime, web.setup.workspace_id, conversation_id, "Hi, Dana here.", author_name="Dana")
        person = await reader.until(lambda seen: any(e.event == "message" and e.data["author"] == "human" for e in seen), timeout=5)
        message = next(e.data for e in person if e.event == "message" and e.data["author"] == "human")
        assert (message["text"], message["author_name"]) == ("Hi, Dana here.", "Dana")
        await return_to_agent(runtime, web.setup.workspace_id, conversation_id)
        back = await reader.until(lambda seen: any(e.event == "status" for e in seen), timeout=5)
        assert back[-1].data == {"status": "bot"}
    history = (await web.history("widget", token)).json()
    assert history["status"] == "bot"
    assert [m["author"] for m in history["messages"]][-2:] == ["customer", "human"]


async def test_replies_stored_by_another_process_reach_the_stream(web: Web) -> None:
    """A second runtime on the same database stands for another server or worker process:
    its live events never reach this server's hub, so the stream must find them by polling."""
    token = await web.token()
    headers = {"Origin": SHOP, "Authorization": f"Bearer {token}"}
    async with web.client.stream("GET", web.path("widget", "events"), headers=headers) as stream:
        reader = EventReader(stream)
        await web.post("widget", token, {"text": "Is anyone there?"})
        await reader.until(_agent_message)  # the offline agent's answer, from this server's worker
        other = await open_runtime(web.server.runtime.settings)
        try:
            async with other.db.session() as session:
                conversation_id = await session.scalar(select(Conversation.id).where(Conversation.channel_id == web.setup.channels["widget"].id))
            assert conversation_id is not None
            await hand_off(other, web.setup.workspace_id, conversation_id, "from the inbox")
            await send_human_reply(other, web.setup.workspace_id, conversation_id, "Yes! Sam here.", author_name="Sam")
        finally:
            await close_runtime(other)
        started = asyncio.get_running_loop().time()
        seen = await reader.until(
            lambda events: any(e.event == "message" and e.data["author"] == "human" for e in events), timeout=5
        )
        assert asyncio.get_running_loop().time() - started < 4  # a poll interval or two, not a retry
    assert {"status": "human"} in [e.data for e in seen if e.event == "status"]
    assert next(e.data for e in seen if e.event == "message" and e.data["author"] == "human")["text"] == "Yes! Sam here."


async def test_events_need_a_valid_token(web: Web) -> None:
    refused = await web.client.get(web.path("widget", "events"), headers={"Origin": SHOP})
    assert refused.status_code == 401
    bad_after = await web.client.get(
        web.path("widget", "events"), params={"after": "x"}, headers={"Origin": SHOP, "Authorization": f"Bearer {await web.token()}"}
    )
    assert bad_after.status_code == 422


# --------------------------------------------------------------------------- the script and the page


async def test_the_widget_script_is_small_cacheable_and_builds_no_html_from_text(web: Web) -> None:
    async with web.client.stream("GET", "/widget.js", headers={"Accept-Encoding": "gzip"}) as response:
        body = await response.aread()
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.headers["content-encoding"] == "gzip"
        assert response.num_bytes_downloaded < 30_000  # the target: under 30 KB gzipped
    assert len(gzip.compress(body)) < 30_000
    plain = await web.client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert plain.content == body and "content-encoding" not in plain.headers
    cached = await web.client.get("/widget.js", headers={"If-None-Match": plain.headers["etag"]})
    assert cached.status_code == 304
    source = body.decode()
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser"):
        assert risky not in source, risky


async def test_the_public_page_shows_the_business_and_its_greeting_escaped(tmp_path: Path) -> None:
    async with LiveServer(server_app(web_settings(tmp_path))) as server:
        setup = await make_web_setup(
            server.runtime,
            greeting="Welcome <script>alert('greeting')</script>!",
            page_config={"color": "#065f46", "title": "Bella's <Bakery> & Café"},
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            page = await client.get("/chat/bella")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            html = page.text
            assert "<h1>Bella&#39;s &lt;Bakery&gt; &amp; Café</h1>" in html
            assert "Welcome &lt;script&gt;alert(&#39;greeting&#39;)&lt;/script&gt;!" in html
            assert "<script>alert" not in html
            assert f'data-channel="{setup.channels["page"].id}"' in html and 'src="/widget.js"' in html
            assert "background: #065f46" in html
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-content-type-options"] == "nosniff"
            # The page links the server's icon, and the icon is there (no 404 in the console).
            icon_link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
            assert icon_link is not None and icon_link.group(1) == "/favicon.ico"
            for icon_url in (icon_link.group(1), "/favicon.ico"):
                icon = await client.get(icon_url)
                assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
                assert icon.content.startswith(b"<svg") and len(icon.content) < 2048
            home = await client.get("/")
            assert '<link rel="icon" href="/favicon.ico"' in home.text
            for missing in ("/chat/nobody", "/chat/Bella", "/chat/" + "x" * 80):
                assert (await client.get(missing)).status_code == 404, missing
            async with server.runtime.db.session() as session:
                await session.execute(update(Channel).where(Channel.id == setup.channels["page"].id).values(enabled=False))
            assert (await client.get("/chat/bella")).status_code == 404


async def test_a_locked_database_answers_503_with_retry_after(web: Web, tmp_path: Path) -> None:
    import sqlite3
    import threading

    database = str(web.server.runtime.settings.database_url).removeprefix("sqlite:///")
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        # The server's own writes (its worker, a checkpoint) may hold the lock a moment: wait for it.
        connection = sqlite3.connect(database, isolation_level=None, timeout=30)
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(30)
        connection.execute("ROLLBACK")
        connection.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 35)  # the server (this loop) may need to finish a write first
        response = await web.session()
    finally:
        release.set()
        holder.join()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"error": {"message": "the server is busy: try again in a moment"}}
    assert (await web.session()).status_code == 200  # and it answers again once the lock is gone


async def test_the_public_page_may_be_framed_by_its_embed_origins_only(tmp_path: Path) -> None:
    async with LiveServer(server_app(web_settings(tmp_path / "embedded"))) as server:
        await make_web_setup(server.runtime, page_config={"embed_origins": [SHOP, "http://localhost:*"]})
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            framed = await client.get("/chat/bella")
            assert framed.status_code == 200
            policy = framed.headers["content-security-policy"]
            assert policy.endswith(f"; frame-ancestors {SHOP} http://localhost:*")
            assert policy.count("frame-ancestors") == 1 and "script-src 'self'" in policy
            assert "x-frame-options" not in framed.headers  # it would refuse every framer, allowed or not
            missing = await client.get("/chat/nobody")
            assert missing.status_code == 404 and missing.headers["x-frame-options"] == "DENY"
            assert missing.headers["content-security-policy"].endswith("; frame-ancestors 'none'")

    async with LiveServer(server_app(web_settings(tmp_path / "default"))) as server:
        await make_web_setup(server.runtime)  # the default: framed by nobody
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            closed = await client.get("/chat/bella")
            assert closed.status_code == 200
            assert closed.headers["content-security-policy"].endswith("; frame-ancestors 'none'")
            assert closed.headers["content-security-policy"].count("frame-ancestors") == 1
            assert closed.headers["x-frame-options"] == "DENY"
