"""Interactive replies: the agent's choices go out as WhatsApp quick-reply buttons (up to 3)
or a list picker (up to 10) through the Content API, numbered where that cannot be; the
customer's tap comes back signed and the next turn sees the choice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from callable_agents.core.contracts.effects import OfferChoices
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.send_info import offer_choices
from callable_agents.plugins.whatsapp.send import send
from callable_agents.server import create_app
from callable_agents.testing import FakeOpenAI, TurnRunner
from callable_agents.testing.twilio_server import FakeTwilio
from tests.e2e.whatsapp_support import (
    whatsapp_runtime,
    ACCOUNT,
    CUSTOMER,
    SENDER,
    TOKEN,
    file_all_queued,
    form_and_headers,
    make_chat,
    make_world,
    messages_of,
    serving,
    sqlite_settings,
)
from callable_agents.testing.twilio_signing import inbound_params


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    async with whatsapp_runtime(tmp_path, fake.base_url) as opened:
        yield opened


def offer(n: int) -> OfferChoices:
    return OfferChoices(text="Which size?", choices=[{"id": f"choice-{k}", "title": f"Size {k}"} for k in range(1, n + 1)])


async def send_offer(runtime: Runtime, effect: OfferChoices) -> dict[str, Any]:
    chat = await make_chat(runtime, workspace_name=f"Shop {time.monotonic_ns()}")
    stored = await chat.reply(effect.as_text())
    await send(runtime, replace(stored, choices=effect.as_meta()))
    return {"chat": chat}


async def test_three_choices_go_as_quick_reply_buttons(runtime: Runtime, fake: FakeTwilio) -> None:
    await send_offer(runtime, offer(3))
    [content] = fake.contents
    assert list(content["types"]) == ["twilio/quick-reply"]
    assert [a["id"] for a in content["types"]["twilio/quick-reply"]["actions"]] == ["choice-1", "choice-2", "choice-3"]
    [created] = fake.sent_messages
    assert created["content_sid"] == content["sid"] and created["body"] is None
    # The same choices again reuse the content made for them.
    await send_offer(runtime, offer(3))
    assert len(fake.contents) == 1 and fake.sent_messages[-1]["content_sid"] == content["sid"]


async def test_ten_choices_go_as_a_list_and_eleven_numbered(runtime: Runtime, fake: FakeTwilio) -> None:
    await send_offer(runtime, offer(10))
    assert list(fake.contents[0]["types"]) == ["twilio/list-picker"]
    assert fake.sent_messages[0]["content_sid"] == fake.contents[0]["sid"]
    await send_offer(runtime, offer(11))
    assert len(fake.contents) == 1  # nothing made for eleven
    body = fake.sent_messages[-1]["body"]
    assert body.startswith("Which size?\n1. Size 1\n2. Size 2") and "11. Size 11" in body


async def test_without_the_content_api_the_choices_go_numbered(runtime: Runtime, fake: FakeTwilio) -> None:
    fake.fail_next(status=404, code=20404, scope="content")  # no Content API for this account
    await send_offer(runtime, offer(3))
    assert fake.contents == []
    assert fake.sent_messages[0]["body"] == "Which size?\n1. Size 1\n2. Size 2\n3. Size 3\nReply with the number of your choice."


async def test_the_tap_comes_back_signed_and_the_agent_sees_the_choice(tmp_path: Path, fake: FakeTwilio) -> None:
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    app = create_app(settings)
    async with serving(app) as client:
        runtime: Runtime = app.state.runtime
        world = await make_world(runtime)
        url = world.urls(runtime)["inbound"]
        tap = inbound_params(ACCOUNT, CUSTOMER, SENDER, "Size 2", ButtonPayload="choice-2", ButtonText="Size 2",
                             ButtonType="REPLY", MessageType="interactive")
        response = await client.post(world.path("inbound"), **form_and_headers(TOKEN, url, tap))
        assert response.status_code == 200
        listed = inbound_params(ACCOUNT, CUSTOMER, SENDER, "Size 9", ListId="choice-9", ListTitle="Size 9")
        assert (await client.post(world.path("inbound"), **form_and_headers(TOKEN, url, listed))).status_code == 200
        await file_all_queued(runtime)
        texts = [m.text for m in await messages_of(runtime, world.channel.id, "inbound")]
    assert texts == [
        "Size 2\n[The customer tapped the choice 'Size 2' (id choice-2)]",
        "Size 9\n[The customer tapped the choice 'Size 9' (id choice-9)]",
    ]


def test_the_tool_checks_what_the_model_asks() -> None:
    text, effects = offer_choices({"text": "Which size?", "choices": ["Small", "Large"]}, [])
    assert effects == [OfferChoices("Which size?", [{"id": "choice-1", "title": "Small"}, {"id": "choice-2", "title": "Large"}])]
    assert "1. Small; 2. Large" in text and "number" in text
    assert offer_choices({"text": "Again?", "choices": ["a", "b"]}, effects)[1] == []  # once per turn
    for bad, expected in [
        ({"choices": ["a", "b"]}, "Missing argument 'text'"),
        ({"text": "q", "choices": ["only one"]}, "expected 2 to 20"),
        ({"text": "q", "choices": ["a", "a"]}, "must be different"),
        ({"text": "q", "choices": ["a", 3]}, "expected 2 to 20"),
        ({"text": "q", "choices": ["a", "b"], "style": "x"}, "Unknown argument 'style'"),
    ]:
        message, none = offer_choices(bad, [])
        assert expected in message and none == []


@pytest.fixture
def callable_agent_spec() -> dict[str, Any]:
    return {"name": "assistant", "tools": [{"type": "offer_choices", "name": "offer_choices", "config": {}}]}


async def test_a_turn_offers_choices_numbered_on_a_channel_without_buttons(
    callable_run_turn: TurnRunner, callable_fake_openai: FakeOpenAI
) -> None:
    callable_fake_openai.queue_tool_call("offer_choices", {"text": "Which size?", "choices": ["Small", "Medium", "Large"]})
    callable_fake_openai.responder = lambda request: "Let me know!"
    result = await callable_run_turn("I want a cake")
    [offered] = [m for m in result.messages if m.meta.get("effect") == "choices"]
    assert offered.text == "Which size?\n1. Small\n2. Medium\n3. Large\nReply with the number of your choice."
    assert offered.meta["choices"]["options"][1] == {"id": "choice-2", "title": "Medium"}
    # The next turn: "2" reaches the model with the choice it picks described.
    callable_fake_openai.responder = lambda request: "Medium it is."
    await callable_run_turn("2")
    messages = callable_fake_openai.chat_requests[-1].messages
    assert any("1. Small; 2. Medium; 3. Large" in str(m.get("content")) for m in messages)
    users = [m for m in messages if m.get("role") == "user"]
    assert users[-1]["content"] == "2\n[The customer picked the choice 'Medium' (id choice-2)]"
