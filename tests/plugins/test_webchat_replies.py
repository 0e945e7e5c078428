"""Several widget messages in a row, at the server's default reply policy (``interrupt``):
the real server under uvicorn, a visitor watching the event stream, the fake OpenAI server
as the model (``ack: <this turn's messages>``) with a set latency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply
from tests.core.pipeline_helpers import ack
from tests.plugins.webchat_support import EventReader, LiveServer, SSEEvent, make_web_setup, server_app, web_settings

SHOP = "https://shop.example.com"
BURST = ["Hi", "do you have croissants", "and gluten-free bread?"]


@dataclass
class Visitor:
    client: httpx.AsyncClient
    path: str
    headers: dict[str, str]
    model: dict[str, float]  # latency, chunk_delay


@pytest.fixture
async def visitor(tmp_path: Path) -> AsyncIterator[Visitor]:
    model = {"latency": 0.0, "chunk_delay": 0.0}

    def respond(request_json: dict[str, Any]) -> ScriptedReply:
        return ScriptedReply(text=ack(request_json), delay=model["latency"], chunk_delay=model["chunk_delay"])

    with FakeOpenAI(responder=respond) as fake:
        async with LiveServer(server_app(web_settings(tmp_path))) as server:
            setup = await make_web_setup(server.runtime, model_base_url=fake.base_url, widget_config={"allowed_origins": [SHOP]})
            path = f"/channels/widget/{setup.channels['widget'].id}"
            async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
                session = await client.post(f"{path}/sessions", headers={"Origin": SHOP})
                token = session.json()["token"]
                yield Visitor(client, path, {"Origin": SHOP, "Authorization": f"Bearer {token}"}, model)


def agent_messages(events: list[SSEEvent]) -> list[str]:
    return [e.data["text"] for e in events if e.event == "message" and e.data["author"] == "agent"]


async def send(visitor: Visitor, text: str) -> None:
    response = await visitor.client.post(f"{visitor.path}/messages", json={"text": text}, headers=visitor.headers)
    assert response.status_code == 202, response.text


async def test_a_burst_to_a_slow_model_gets_one_reply_addressing_all_three(visitor: Visitor) -> None:
    visitor.model["latency"] = 1.0
    async with visitor.client.stream("GET", f"{visitor.path}/events", headers=visitor.headers) as stream:
        reader = EventReader(stream)
        for index, text in enumerate(BURST):
            if index:
                await asyncio.sleep(0.3)
            await send(visitor, text)
        events = await reader.until(lambda seen: bool(agent_messages(seen)))
        assert agent_messages(events) == ["ack: " + " | ".join(BURST)]
        # Only the answering turn's tokens were shown: the superseded ones had none yet.
        assert "".join(e.data["text"] for e in events if e.event == "token") == "ack: " + " | ".join(BURST)
        with pytest.raises(TimeoutError):  # and nothing else comes
            await reader.until(lambda seen: bool(agent_messages(seen)), timeout=1.5)


async def test_a_quick_model_answers_each_message_in_order(visitor: Visitor) -> None:
    async with visitor.client.stream("GET", f"{visitor.path}/events", headers=visitor.headers) as stream:
        reader = EventReader(stream)
        # Warm: the server's first turn loads the model client, which can take longer than a pause.
        await send(visitor, "warm-up")
        await reader.until(lambda seen: bool(agent_messages(seen)))
        for index, text in enumerate(BURST):
            if index:
                await asyncio.sleep(0.3)
            await send(visitor, text)
        events = await reader.until(lambda seen: len(agent_messages(seen)) == 3)
        assert agent_messages(events) == [f"ack: {text}" for text in BURST]


async def test_a_reply_the_visitor_has_started_to_see_is_not_withdrawn(visitor: Visitor) -> None:
    visitor.model["chunk_delay"] = 0.1
    async with visitor.client.stream("GET", f"{visitor.path}/events", headers=visitor.headers) as stream:
        reader = EventReader(stream)
        await send(visitor, "Hi")
        seen = await reader.until(lambda events: any(e.event == "token" for e in events))
        await send(visitor, "are you open today?")
        events = [*seen, *await reader.until(lambda events: len(agent_messages([*seen, *events])) == 2)]
        assert agent_messages(events) == ["ack: Hi", "ack: are you open today?"]
