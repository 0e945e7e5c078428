"""Grounded answers and every built-in tool through the whole pipeline.

The real langchain-openai client talks to the fake OpenAI server; the knowledge base is
real (local embeddings, FAISS + BM25); lookup calls a real loopback API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.conversation.turn.offline import OFFLINE_LABEL
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.knowledge import add_source, create_knowledge_base, ingest_source
from callable_agents.core.models import Agent, Conversation, Workspace
from callable_agents.core.runtime import Runtime
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI

DELIVERY = (
    "Delivery area. We deliver within 5 km of the shop, to Riverside and Old Town, "
    "Tuesday to Saturday between 8:00 and 12:00. Delivery costs 4 euros and is free over 40 euros."
)
CAKES = "Custom cakes. Wedding and birthday cakes need one week's notice and a 30 euro deposit."

TOOLS = [
    {
        "type": "lookup",
        "name": "order_status",
        "config": {
            "description": "Look up an order by its number",
            "url": "{base}/orders/{order_id}",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    },
    {
        "type": "send_info",
        "name": "send_info",
        "config": {"items": [{"key": "menu", "label": "Our menu", "kind": "media",
                              "url": "https://bakery.example/menu.pdf", "content_type": "application/pdf"}]},
    },
    {"type": "handoff", "name": "handoff", "config": {"customer_message": "A person will reply here shortly."}},
]


class OrdersApi:
    """The business's order API on loopback, recording the paths it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                api.paths.append(self.path)
                body = json.dumps({"order": self.path.rsplit("/", 1)[-1], "status": "out for delivery"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def orders() -> Iterator[OrdersApi]:
    api = OrdersApi()
    yield api
    api.server.shutdown()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(make_settings(tmp_path / "data"), migrate=True)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def knowledge_agent(runtime: Runtime, tools: list[dict[str, object]], model_settings: dict[str, object]):  # type: ignore[no-untyped-def]
    agent, channel = await make_agent_channel(runtime, tools=tools, model_settings=model_settings)
    async with runtime.db.session() as session:
        kb = await create_knowledge_base(session, agent.workspace_id, "bakery", runtime=runtime)
        sources = [
            await add_source(session, agent.workspace_id, kb.id, runtime=runtime, kind="text", title=title, content=text.encode())
            for title, text in (("Delivery", DELIVERY), ("Cakes", CAKES))
        ]
        stored = await session.get(Agent, agent.id)
        assert stored is not None
        stored.knowledge_base_ids = [kb.id]
    for source in sources:
        await ingest_source(runtime, agent.workspace_id, source.id)
    return agent, channel


async def connect_openai(runtime: Runtime, workspace_id: str, fake: FakeOpenAI) -> None:
    async with runtime.db.session() as session:
        workspace = await session.get(Workspace, workspace_id)
        assert workspace is not None
        await connect_integration(session, runtime.vault, workspace, provider="openai", name="openai-main",
                                  public={"base_url": fake.base_url}, secrets={"api_key": "sk-grounded"})


async def test_offline_mode_answers_from_the_knowledge_base(runtime: Runtime) -> None:
    _agent, channel = await knowledge_agent(runtime, [], {})
    accepted = await say(runtime, channel, "Do you deliver to Riverside?")
    await drain(runtime)
    reply = (await outbound(runtime, accepted.conversation_id))[0].text
    assert "We deliver within 5 km of the shop, to Riverside and Old Town" in reply
    assert OFFLINE_LABEL in reply
    await say(runtime, channel, "Do you repair bicycles?")
    await drain(runtime)
    assert "I don't know" in (await outbound(runtime, accepted.conversation_id))[-1].text


async def test_grounded_answer_and_every_tool_round_trip(runtime: Runtime, orders: OrdersApi) -> None:
    tools = json.loads(json.dumps(TOOLS).replace("{base}", orders.base))
    with FakeOpenAI(api_key="sk-grounded") as fake:
        agent, channel = await knowledge_agent(
            runtime, tools, {"integration": "openai-main", "model": "gpt-test", "max_retries": 0}
        )
        await connect_openai(runtime, agent.workspace_id, fake)

        # A knowledge question: the passages are in what the model was sent.
        fake.queue_reply("Yes, we deliver to Riverside, Tuesday to Saturday [1].")
        accepted = await say(runtime, channel, "Do you deliver to Riverside?")
        await drain(runtime)
        assert "free over 40 euros" in fake.chat_requests[-1].prompt_text
        conversation_id = accepted.conversation_id

        # lookup: the model calls it, the loopback API answers, the model uses the result.
        fake.queue_tool_call("order_status", {"order_id": "BB 1042"})
        fake.queue_reply("Your order BB 1042 is out for delivery.")
        await say(runtime, channel, "Where is my order BB 1042?")
        await drain(runtime)
        assert orders.paths == ["/orders/BB%201042"]
        assert "out for delivery" in json.dumps(fake.chat_requests[-1].messages)

        # send_info: the item goes out as its own message, word for word.
        fake.queue_tool_call("send_info", {"item": "menu"})
        fake.queue_reply("I've sent you our menu.")
        await say(runtime, channel, "Can you send me the menu?")
        await drain(runtime)

        # handoff: status human, the customer told once, the next message unanswered.
        fake.queue_tool_call("handoff", {"reason": "Wants to change a wedding cake order"})
        fake.queue_reply("Someone will be with you.")
        await say(runtime, channel, "I need to change my wedding cake order")
        await drain(runtime)
        requests_before = len(fake.chat_requests)
        await say(runtime, channel, "Hello?")
        await drain(runtime)
        assert len(fake.chat_requests) == requests_before  # no model call while handed off

    replies = [(m.author, m.text, [i.get("url") for i in m.media]) for m in await outbound(runtime, conversation_id)]
    assert replies[0][1].startswith("Yes, we deliver to Riverside")
    assert replies[1][1] == "Your order BB 1042 is out for delivery."
    assert replies[2][1] == "I've sent you our menu." and replies[3][2] == ["https://bakery.example/menu.pdf"]
    assert replies[4:] == [("system", "A person will reply here shortly.", [])]
    async with runtime.db.session() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.id == conversation_id))
        assert conversation is not None and conversation.status == "human"
        assert conversation.handoff_reason == "Wants to change a wedding cake order"
