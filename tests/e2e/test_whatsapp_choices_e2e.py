"""Interactive replies end to end, through a real server process: the model offers three
choices with the ``offer_choices`` tool, the customer gets WhatsApp quick-reply buttons (a
Content API message), taps one, and the tap comes back as a signed webhook whose choice the
next turn's model sees. Where the Content API can't make buttons the choices go numbered,
and the customer's typed "2" reaches the model (or offline mode) as the choice it picks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from callable_agents.core.models import Agent
from callable_agents.core.runtime import Runtime
from tests.e2e.conftest import Stack, run, start_stack
from tests.e2e.processes import sent_to, wait_until
from tests.e2e.whatsapp_support import CUSTOMER
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio


def update_agent(stack: Stack, **values: Any) -> None:
    """Change the served agent's row (the server reads it at every turn)."""

    async def change(runtime: Runtime) -> None:
        async with runtime.db.session() as session:
            await session.execute(update(Agent).where(Agent.id == stack.world.agent.id).values(**values))

    run(stack.settings, change)


OFFER_CHOICES_TOOL = [{"type": "offer_choices", "name": "offer_choices", "config": {}}]


def test_three_choices_become_buttons_and_the_tap_reaches_the_next_turn(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    stack = start_stack(tmp_path, twilio, openai)
    try:
        update_agent(stack, tools=OFFER_CHOICES_TOOL)
        openai.queue_tool_call("offer_choices", {"text": "Which size?", "choices": ["Small", "Medium", "Large"]})
        openai.queue_reply("Happy to help with a cake.")
        post = stack.post_inbound
        assert post(stack.inbound("I want a cake", user=CUSTOMER)).status_code == 200
        sent: list[dict[str, Any]] = wait_until(
            lambda: [m for m in sent_to(twilio.sent_messages, CUSTOMER) if m["content_sid"]],
            timeout=30, what="the choices", log=lambda: stack.server.log,
        )
        [content] = [c for c in twilio.contents if c["sid"] == sent[0]["content_sid"]]
        actions = content["types"]["twilio/quick-reply"]["actions"]
        assert [(a["title"], a["id"]) for a in actions] == [("Small", "choice-1"), ("Medium", "choice-2"), ("Large", "choice-3")]

        openai.queue_reply("Medium it is.")
        tap = stack.inbound("Medium", user=CUSTOMER, ButtonPayload="choice-2", ButtonText="Medium", ButtonType="REPLY")
        assert post(tap).status_code == 200
        wait_until(
            lambda: any(m["body"] == "Medium it is." for m in sent_to(twilio.sent_messages, CUSTOMER)),
            timeout=30, what="the answer to the tap", log=lambda: stack.server.log,
        )
        users = [m for m in openai.chat_requests[-1].messages if m.get("role") == "user"]
        assert "[The customer tapped the choice 'Medium' (id choice-2)]" in str(users[-1]["content"])
    finally:
        stack.server.stop()


FACTS = {
    "name": "Bella's Bakery",
    "hours": "Mon-Sat 7:00-18:00",
    "facts": [
        "Collection is from the shop counter, ready two hours after you order.",
        "Delivery is free within five miles of the shop and arrives the next morning.",
    ],
}


def offer_numbered_choices(stack: Stack, twilio: FakeTwilio, openai: FakeOpenAI) -> None:
    """The agent, given the tool, offers three choices to a customer whose account has no
    Content API: they go out numbered, as text."""
    update_agent(stack, tools=OFFER_CHOICES_TOOL)
    twilio.fail_next(status=404, code=20404, scope="content")  # no Content API for this account
    openai.queue_tool_call("offer_choices", {"text": "How would you like it?", "choices": ["Collection", "Delivery", "Gift wrapping"]})
    openai.queue_reply("Happy to help with a cake.")
    assert stack.post_inbound(stack.inbound("I want a cake", user=CUSTOMER)).status_code == 200
    wait_until(
        lambda: any(m["body"] and "2. Delivery" in m["body"] for m in sent_to(twilio.sent_messages, CUSTOMER)),
        timeout=30, what="the numbered choices", log=lambda: stack.server.log,
    )
    [numbered] = [m for m in sent_to(twilio.sent_messages, CUSTOMER) if m["body"] and "2. Delivery" in m["body"]]
    assert numbered["content_sid"] is None
    assert numbered["body"] == (
        "How would you like it?\n1. Collection\n2. Delivery\n3. Gift wrapping\nReply with the number of your choice."
    )


@pytest.fixture
def numbered(tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI) -> Iterator[Stack]:
    """A server whose agent has just offered three choices, numbered (no Content API)."""
    stack = start_stack(tmp_path, twilio, openai)
    try:
        offer_numbered_choices(stack, twilio, openai)
        yield stack
    finally:
        stack.server.stop()


def reply_to(stack: Stack, text: str) -> dict[str, Any]:
    """The customer sends ``text`` (a signed webhook); the one message the agent answers with."""
    sent = len(sent_to(stack.twilio.sent_messages, CUSTOMER))
    assert stack.post_inbound(stack.inbound(text, user=CUSTOMER)).status_code == 200
    [answer] = wait_until(
        lambda: sent_to(stack.twilio.sent_messages, CUSTOMER)[sent:], timeout=30, what=f"the answer to {text!r}",
        log=lambda: stack.server.log,
    )
    return answer


def test_without_the_content_api_a_typed_number_reaches_the_model_as_the_choice(numbered: Stack) -> None:
    numbered.openai.queue_reply("Delivery it is.")
    assert reply_to(numbered, "2")["body"] == "Delivery it is."
    users = [m for m in numbered.openai.chat_requests[-1].messages if m.get("role") == "user"]
    assert users[-1]["content"] == "2\n[The customer picked the choice 'Delivery' (id choice-2)]"


def test_offline_mode_answers_a_typed_number_about_the_choice(numbered: Stack) -> None:
    update_agent(numbered, model_settings={}, business_info=FACTS)  # the model's key removed: offline mode
    requests = len(numbered.openai.chat_requests)
    answer = reply_to(numbered, " option 2 ")["body"]
    assert answer.startswith("Delivery is free within five miles of the shop and arrives the next morning.")
    assert "offline mode" in answer
    assert len(numbered.openai.chat_requests) == requests  # no model was asked
