"""Interactive replies end to end, through a real server process: the model offers three
choices with the ``offer_choices`` tool, the customer gets WhatsApp quick-reply buttons (a
Content API message), taps one, and the tap comes back as a signed webhook whose choice the
next turn's model sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from callable_agents.core.models import Agent
from callable_agents.core.runtime import Runtime
from tests.e2e.conftest import run, start_stack
from tests.e2e.processes import sent_to, wait_until
from tests.e2e.whatsapp_support import CUSTOMER, TOKEN
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import signed_headers


def test_three_choices_become_buttons_and_the_tap_reaches_the_next_turn(
    tmp_path: Path, twilio: FakeTwilio, openai: FakeOpenAI
) -> None:
    stack = start_stack(tmp_path, twilio, openai)
    try:
        async def give_the_tool(runtime: Runtime) -> None:
            async with runtime.db.session() as session:
                await session.execute(
                    update(Agent).where(Agent.id == stack.world.agent.id)
                    .values(tools=[{"type": "offer_choices", "name": "offer_choices", "config": {}}])
                )

        run(stack.settings, give_the_tool)
        openai.queue_tool_call("offer_choices", {"text": "Which size?", "choices": ["Small", "Medium", "Large"]})
        openai.queue_reply("Happy to help with a cake.")

        def post(params: dict[str, str]) -> httpx.Response:
            url = f"{stack.server.url}/channels/whatsapp/{stack.world.channel.id}/inbound"
            return httpx.post(url, data=params, headers=signed_headers(TOKEN, stack.inbound_public_url, params), timeout=10)

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
