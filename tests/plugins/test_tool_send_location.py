"""The built-in ``send_location`` tool: the business's location as its own message — a map pin
on WhatsApp (Twilio's PersistentAction ``geo:``), its name, address and a map link elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.contracts.effects import SendLocation
from callable_agents.plugins.send_info import SendLocationConfig, location_effect
from callable_agents.plugins.whatsapp.send import send
from callable_agents.testing import FakeOpenAI, TurnRunner
from callable_agents.testing.twilio_server import FakeTwilio
from tests.e2e.whatsapp_support import ACCOUNT, TOKEN, make_chat, sqlite_settings

BUSINESS = {"name": "Bella's Bakery", "address": "Carrer de Verdi 12, Barcelona"}
PLACE = {"latitude": 41.40363, "longitude": 2.15678}


@pytest.fixture
def callable_agent_spec() -> dict[str, Any]:
    return {
        "name": "assistant",
        "system_prompt": "You are the assistant of Bella's Bakery.",
        "business_info": BUSINESS,
        "tools": [{"type": "send_location", "name": "send_our_location", "config": PLACE}],
    }


async def test_the_model_sends_the_location_and_any_channel_gets_its_text(
    callable_run_turn: TurnRunner, callable_fake_openai: FakeOpenAI
) -> None:
    callable_fake_openai.queue_tool_call("send_our_location", {})
    callable_fake_openai.responder = lambda request: "Here is where we are."
    result = await callable_run_turn("Where are you?")
    assert result.trace is not None and result.trace["effects"] == ["location"]
    [sent] = [m for m in result.messages if m.meta.get("effect") == "location"]
    assert sent.meta["location"] == {**PLACE, "label": BUSINESS["name"], "address": BUSINESS["address"]}
    # The terminal channel shows no map pin: the same place as words and a map link.
    assert sent.text == (
        "Bella's Bakery\nCarrer de Verdi 12, Barcelona\n"
        "https://www.google.com/maps/search/?api=1&query=41.403630,2.156780"
    )
    assert result.reply == "Here is where we are."


async def test_the_location_is_sent_once_per_turn_and_takes_no_arguments(
    callable_run_turn: TurnRunner, callable_fake_openai: FakeOpenAI
) -> None:
    callable_fake_openai.queue_tool_call("send_our_location", {})
    callable_fake_openai.queue_tool_call("send_our_location", {"city": "Madrid"})
    callable_fake_openai.queue_tool_call("send_our_location", {})
    callable_fake_openai.responder = lambda request: "Done."
    result = await callable_run_turn("Where are you?")
    assert [m.meta.get("effect") for m in result.messages].count("location") == 1
    last_request = callable_fake_openai.chat_requests[-1]
    tool_results = [m for m in last_request.messages if m.get("role") == "tool"]
    assert "this tool takes no arguments" in str(tool_results[1]["content"])
    assert "already sent" in str(tool_results[2]["content"])


def test_the_config_names_the_field_it_refuses() -> None:
    with pytest.raises(ValidationError, match="latitude"):
        SendLocationConfig.model_validate({"latitude": 91, "longitude": 2})
    with pytest.raises(ValidationError, match="longitude"):
        SendLocationConfig.model_validate({"latitude": 41})
    config = SendLocationConfig.model_validate({**PLACE, "label": "Bella's (Gràcia)"})
    effect = location_effect(config, BUSINESS)
    assert (effect.label, effect.address) == ("Bella's (Gràcia)", BUSINESS["address"])


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        yield server


async def test_whatsapp_sends_the_location_as_a_map_pin(tmp_path: Path, fake: FakeTwilio) -> None:
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    runtime = await open_runtime(settings)
    try:
        chat = await make_chat(runtime)
        place = SendLocation(latitude=41.40363, longitude=2.15678, label="Bella's | Bakery", address=BUSINESS["address"])
        stored = await chat.reply(place.as_text())
        outbound = type(stored)(**{**stored.__dict__, "location": place.as_meta()})
        result = await send(runtime, outbound)
    finally:
        await close_runtime(runtime)
    [created] = fake.sent_messages
    assert created["persistent_action"] == ["geo:41.403630,2.156780|Bella's Bakery"]
    assert created["body"] == "Bella's | Bakery\nCarrer de Verdi 12, Barcelona"
    assert result.provider_message_id == created["sid"]
