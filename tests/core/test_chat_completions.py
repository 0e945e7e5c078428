"""PlainChatCompletions sends exactly what the stock client sends, without its transform.

Each conversation below goes to the fake OpenAI server twice, once through a stock
``ChatOpenAI`` and once through :func:`build_chat_model` (which uses
:class:`PlainChatCompletions`); the two recorded requests must be the same. If a future
``openai`` client's transform starts changing chat completion requests, this fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from callable_agents.core.chat_completions import PlainChatCompletions
from callable_agents.core.llm import ModelConfig, build_chat_model
from callable_agents.testing.openai_server import FakeOpenAI

KEY = "sk-plain-completions"


@tool
def lookup_order(order_id: str, include_items: bool = False) -> str:
    """Look up an order's delivery status by its id."""
    return f"Order {order_id} ships tomorrow."


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _models(fake: FakeOpenAI, **settings: Any) -> tuple[ChatOpenAI, ChatOpenAI]:
    ours = build_chat_model(ModelConfig(model="gpt-4o-mini", api_key=KEY, base_url=fake.base_url, max_retries=0, **settings))
    stock = ChatOpenAI(
        model="gpt-4o-mini", api_key=KEY, base_url=fake.base_url, max_retries=0, stream_usage=True,  # type: ignore[arg-type]
        **({"temperature": settings["temperature"]} if "temperature" in settings else {}),
        **({"max_tokens": settings["max_tokens"]} if "max_tokens" in settings else {}),
    )
    assert isinstance(ours.async_client, PlainChatCompletions)
    assert not isinstance(stock.async_client, PlainChatCompletions)
    return ours, stock


CONVERSATION: list[BaseMessage] = [
    SystemMessage("You answer for Rosa's Bakery. Cite passages by [id]."),
    HumanMessage("Where is order A17?"),
    AIMessage("", tool_calls=[{"id": "call_1", "name": "lookup_order", "args": {"order_id": "A17", "include_items": True}}]),
    ToolMessage("Order A17 ships tomorrow.", tool_call_id="call_1"),
    AIMessage("It ships tomorrow. Anything else? 🥐"),
    HumanMessage(
        content=[
            {"type": "text", "text": "Is this cake in stock?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    ),
    SystemMessage("Knowledge passages for the latest message:\n\n[1] Cakes\nWe bake to order."),
]


async def _request_bodies(fake: FakeOpenAI, stream: bool, **settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    bodies = []
    for model in _models(fake, **settings):
        fake.queue_reply("We bake cakes to order.")
        runnable = model.bind_tools([lookup_order])
        if stream:
            async for _ in runnable.astream(CONVERSATION):
                pass
        else:
            await runnable.ainvoke(CONVERSATION)
        bodies.append(fake.chat_requests[-1].json_body)
    return bodies[0], bodies[1]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_requests_equal_the_stock_clients(fake: FakeOpenAI, stream: bool) -> None:
    ours, stock = await _request_bodies(fake, stream, temperature=0.3, max_tokens=200)

    assert ours == stock
    assert ours["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert ours["messages"][5]["content"][1]["image_url"]["url"].startswith("data:image/png")
    assert ours["tools"][0]["function"]["name"] == "lookup_order"
    assert bool(ours.get("stream")) is stream


async def test_answers_errors_and_raw_responses_come_back_as_from_the_stock_client(fake: FakeOpenAI) -> None:
    ours, _ = _models(fake)
    fake.queue_reply("Fresh bread at 7.")
    answer = await ours.ainvoke([HumanMessage("When is bread ready?")])
    assert answer.content == "Fresh bread at 7."
    assert answer.usage_metadata is not None and answer.usage_metadata["total_tokens"] > 0

    fake.queue_error(status=503)
    with pytest.raises(openai.APIStatusError) as raised:
        await ours.ainvoke([HumanMessage("Again?")])
    assert raised.value.status_code == 503
