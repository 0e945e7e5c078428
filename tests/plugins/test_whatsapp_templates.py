"""Templates by name: the channel names one of the account's approved templates (listed from
the Content API); outside the 24-hour window it goes out with its variables filled from the
conversation, and a missing or empty variable is a clear error, not a refused send."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callable_agents.core.contracts.channels import SendError
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.send import send
from callable_agents.testing.twilio_server import FakeTwilio
from tests.e2e.whatsapp_support import ACCOUNT, SENDER, TOKEN, make_chat, whatsapp_runtime


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    async with whatsapp_runtime(tmp_path, fake.base_url) as opened:
        yield opened


def seed(fake: FakeTwilio) -> tuple[str, str]:
    english = fake.add_content(
        ACCOUNT, "reply_later", {"twilio/text": {"body": "Hi {{1}}, about your question: {{2}}"}},
        variables={"1": "Ana", "2": "We open at 7."}, approval=("reply_later", "UTILITY", "approved"),
    )
    spanish = fake.add_content(
        ACCOUNT, "reply_later", {"twilio/text": {"body": "Hola {{1}}: {{2}}"}}, language="es",
        variables={"1": "Ana", "2": "Abrimos a las 7."}, approval=("reply_later", "UTILITY", "approved"),
    )
    fake.add_content(ACCOUNT, "promo", {"twilio/text": {"body": "Sale"}}, approval=("promo", "MARKETING", "rejected"))
    return english, spanish


async def outside_window_send(runtime: Runtime, template: dict[str, object], text: str = "We open at 7:00.") -> None:
    chat = await make_chat(
        runtime, config={"sender": SENDER, "template": template}, last_inbound_hours_ago=30,
        workspace_name=f"Shop {time.monotonic_ns()}",
    )
    await send(runtime, await chat.reply(text))


async def test_a_template_chosen_by_name_goes_out_with_its_variables(runtime: Runtime, fake: FakeTwilio) -> None:
    english, spanish = seed(fake)
    await outside_window_send(runtime, {"name": "reply_later", "language": "es", "variables": {"1": "{name}", "2": "{reply}"}})
    [created] = fake.sent_messages
    assert created["content_sid"] == spanish and created["body"] is None
    assert created["content_variables"] == '{"1": "Ana", "2": "We open at 7:00."}'
    await outside_window_send(runtime, {"name": "reply_later", "variables": {"1": "{name}", "2": "{reply}"}})
    assert fake.sent_messages[-1]["content_sid"] in (english, spanish)


async def test_an_unknown_or_unapproved_template_is_a_clear_error(runtime: Runtime, fake: FakeTwilio) -> None:
    seed(fake)
    for name in ("promo", "nothing_like_it"):
        with pytest.raises(SendError) as info:
            await outside_window_send(runtime, {"name": name})
        assert not info.value.transient and info.value.code == "template_not_found"
        assert f"'{name}'" in str(info.value) and "reply_later (en)" in str(info.value)
    assert fake.sent_messages == []


async def test_missing_or_empty_variables_are_named(runtime: Runtime, fake: FakeTwilio) -> None:
    seed(fake)
    with pytest.raises(SendError) as info:
        await outside_window_send(runtime, {"name": "reply_later", "variables": {"1": "{name}"}})
    assert info.value.code == "template_variables" and "needs the variables 2" in str(info.value)
    with pytest.raises(SendError) as info:
        await outside_window_send(runtime, {"name": "reply_later", "variables": {"1": "{name}", "2": "{reply}"}}, text=" ")
    assert "variable 2 ('{reply}') came out empty" in str(info.value)
    assert fake.sent_messages == []


async def test_the_approved_list_is_read_once_for_a_few_minutes(runtime: Runtime, fake: FakeTwilio) -> None:
    seed(fake)
    for _ in range(3):
        await outside_window_send(runtime, {"name": "reply_later", "variables": {"1": "{name}", "2": "{reply}"}})
    listed = [r for r in fake.requests if r.path == "/v1/ContentAndApprovals"]
    assert len(listed) == 1 and len(fake.sent_messages) == 3


async def test_the_business_name_comes_from_the_agents_business_info(runtime: Runtime, fake: FakeTwilio) -> None:
    seed(fake)
    await outside_window_send(runtime, {"name": "reply_later", "language": "en", "variables": {"1": "{name}", "2": "{business}"}})
    assert fake.sent_messages[-1]["content_variables"] == '{"1": "Ana", "2": "Bella\'s Bakery"}'
    chat = await make_chat(
        runtime, config={"sender": SENDER, "template": {"name": "reply_later", "variables": {"1": "{name}", "2": "{business}"}}},
        last_inbound_hours_ago=30, workspace_name="Nameless", business_info={"hours": "9-5"},
    )
    with pytest.raises(SendError) as info:
        await send(runtime, await chat.reply("Hello"))
    assert "variable 2 ('{business}') came out empty" in str(info.value)
