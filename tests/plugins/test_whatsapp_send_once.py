"""Exactly-once WhatsApp sends: a retry of a send whose earlier create may have reached Twilio
looks it up in Twilio's Messages list (the loopback fake, through the real ``twilio`` client)
before creating anything, and creates only when Twilio has no such message.

An attempt cut short is made the way a crash makes it: the send task is cancelled while the
fake holds the create, which the fake then carries out anyway (as Twilio does for a caller
that went away); or the connection is dropped before Twilio creates anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.contracts.channels import OutboundMessage, SendError
from callable_agents.core.models import Message
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.send import ATTEMPT_KEY, SENT_PARTS_KEY, pieces_of, send
from callable_agents.testing.twilio_server import FakeTwilio
from tests.e2e.whatsapp_support import ACCOUNT, CUSTOMER, SENDER, SERVICE, TEMPLATE, TOKEN, make_chat, sqlite_settings

SETTLE = 1.5  # seconds before a retry trusts Twilio's list; the fake holds creates for 1 s
HOLD = 1.0


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    settings = sqlite_settings(
        tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url,
        twilio_send_settle_seconds=SETTLE,
    )
    opened = await open_runtime(settings)
    try:
        yield opened
    finally:
        await close_runtime(opened)


def creates(fake: FakeTwilio) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path.endswith("/Messages.json"))


def lists(fake: FakeTwilio) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.endswith("/Messages.json"))


async def meta_of(runtime: Runtime, message_id: int) -> dict[str, Any]:
    async with runtime.db.session() as session:
        return dict(await session.scalar(select(Message.meta).where(Message.id == message_id)) or {})


async def crash_during_create(runtime: Runtime, fake: FakeTwilio, outbound: OutboundMessage, *, creates_before: int = 0) -> None:
    """Start ``send`` and cut it short while Twilio holds its create (the create still happens)."""
    fake.answer_creates_after(HOLD)
    task = asyncio.create_task(send(runtime, outbound))
    deadline = time.monotonic() + 10
    while creates(fake) <= creates_before:
        assert time.monotonic() < deadline, "the send never reached Twilio"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.answer_creates_after(0)


async def test_an_attempt_twilio_created_is_found_and_not_sent_again(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    outbound = await chat.reply("We open at 7:00.")
    await crash_during_create(runtime, fake, outbound)
    attempt = (await meta_of(runtime, outbound.message_id))[ATTEMPT_KEY]
    assert attempt["piece"] == 0 and attempt["body"] == "We open at 7:00." and attempt["to"] == CUSTOMER
    await asyncio.sleep(HOLD + 0.3)
    [created] = fake.sent_messages  # the cut-short create went through at Twilio

    started = time.monotonic()
    result = await send(runtime, outbound)
    assert result.provider_message_id == created["sid"]  # recorded as the earlier attempt's
    assert creates(fake) == 1 and lists(fake) == 1
    assert set(fake.create_counts.values()) == {1}
    assert time.monotonic() - started < SETTLE  # the attempt was old enough: no wait


async def test_an_attempt_twilio_never_created_is_sent_once_after_the_settle_time(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    outbound = await chat.reply("Yes, we bake gluten-free bread.")
    fake.fail_next(1, scope="messages", disconnect=True)  # the connection goes before Twilio creates it
    with pytest.raises(SendError) as lost:
        await send(runtime, outbound)
    assert lost.value.transient and lost.value.code == "connection_lost"
    assert fake.sent_messages == [] and ATTEMPT_KEY in await meta_of(runtime, outbound.message_id)

    started = time.monotonic()
    result = await send(runtime, outbound)
    # A young attempt may still be under way at Twilio: the retry waits for it to settle first.
    assert time.monotonic() - started >= SETTLE - 0.5
    [sent] = fake.sent_messages
    assert result.provider_message_id == sent["sid"] and sent["body"] == "Yes, we bake gluten-free bread."
    assert lists(fake) == 1 and creates(fake) == 2  # the lost one and the one that went out


async def test_an_identical_message_sent_before_the_attempt_is_not_taken_for_it(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    await send(runtime, await chat.reply("Thank you!"))
    await asyncio.sleep(2.2)  # more than the clock slack
    again = await chat.reply("Thank you!")
    fake.fail_next(1, scope="messages", disconnect=True)
    with pytest.raises(SendError):
        await send(runtime, again)
    await send(runtime, again)
    assert fake.create_counts[(CUSTOMER, "Thank you!", ())] == 2  # both replies went out, once each


async def test_a_cut_short_middle_piece_is_found_and_the_rest_follow_once(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    text = "\n\n".join(f"Part {n}. " + "word " * 300 for n in range(3))
    pieces = pieces_of(text, [])
    assert len(pieces) == 3
    outbound = await chat.reply(text)
    fake.delay_next(1, 0.0, scope="messages")  # lets the first piece through,
    fake.fail_next(1, 500, scope="messages")  # fails the second
    with pytest.raises(SendError):
        await send(runtime, outbound)
    assert len((await meta_of(runtime, outbound.message_id))[SENT_PARTS_KEY]) == 1
    # Twilio answered 500: nothing was created, so nothing is left to look up.
    assert (await meta_of(runtime, outbound.message_id)).get(ATTEMPT_KEY) is None
    await crash_during_create(runtime, fake, outbound, creates_before=creates(fake))
    await asyncio.sleep(HOLD + 0.3)
    await send(runtime, outbound)
    assert [m["body"] for m in fake.sent_messages] == [p.body for p in pieces]  # each once, in order
    assert lists(fake) == 1


async def test_a_messaging_service_attempt_is_matched_by_its_service(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime, config={"messaging_service_sid": SERVICE})
    outbound = await chat.reply("Your order is ready.")
    await crash_during_create(runtime, fake, outbound)
    await asyncio.sleep(HOLD + 0.3)
    [created] = fake.sent_messages
    assert (await send(runtime, outbound)).provider_message_id == created["sid"]
    assert creates(fake) == 1


async def test_a_cut_short_template_is_found_and_not_sent_again(runtime: Runtime, fake: FakeTwilio) -> None:
    template = {"content_sid": TEMPLATE, "variables": {"1": "{reply}"}}
    chat = await make_chat(runtime, config={"sender": SENDER, "template": template}, last_inbound_hours_ago=30)
    outbound = await chat.reply("Your cake is ready for pickup.")
    await crash_during_create(runtime, fake, outbound)
    assert (await meta_of(runtime, outbound.message_id))[ATTEMPT_KEY]["body"] is None  # Twilio writes a template's text
    await asyncio.sleep(HOLD + 0.3)
    [created] = fake.sent_messages
    assert created["content_sid"] == TEMPLATE
    assert (await send(runtime, outbound)).provider_message_id == created["sid"]
    assert creates(fake) == 1


async def test_when_twilio_cannot_be_asked_nothing_is_sent(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    outbound = await chat.reply("See you tomorrow.")
    fake.fail_next(1, scope="messages", disconnect=True)
    with pytest.raises(SendError):
        await send(runtime, outbound)
    fake.fail_next(1, 503, scope="messages")  # the look-up fails
    with pytest.raises(SendError) as failed:
        await send(runtime, outbound)
    assert failed.value.transient and failed.value.code == "lookup_failed"
    assert "look up earlier sends" in str(failed.value)
    assert fake.sent_messages == [] and creates(fake) == 1
    await send(runtime, outbound)  # Twilio answers again: no such message, so it goes out once
    assert len(fake.sent_messages) == 1


async def test_an_error_answer_leaves_nothing_to_look_up(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    outbound = await chat.reply("We deliver on Sundays.")
    fake.fail_next(1, 503, scope="messages")
    with pytest.raises(SendError):
        await send(runtime, outbound)
    started = time.monotonic()
    await send(runtime, outbound)
    assert lists(fake) == 0 and len(fake.sent_messages) == 1
    assert time.monotonic() - started < SETTLE  # no wait: Twilio had said no


async def test_an_unreadable_attempt_record_is_sent_again_with_a_warning(runtime: Runtime, fake: FakeTwilio, caplog: pytest.LogCaptureFixture) -> None:
    from callable_agents.core.conversation.messages import record_delivery_progress

    chat = await make_chat(runtime)
    outbound = await chat.reply("Hello again.")
    await record_delivery_progress(runtime, outbound.message_id, {ATTEMPT_KEY: {"piece": 0, "at": "yesterday-ish"}})
    await send(runtime, outbound)
    assert len(fake.sent_messages) == 1 and lists(fake) == 0
    assert "unreadable send attempt record" in caplog.text


@pytest.mark.parametrize("value", [-1, "soon", 601])
def test_a_bad_settle_time_is_refused_naming_the_setting(tmp_path: Path, value: object) -> None:
    from callable_agents.core.errors import ConfigError
    from callable_agents.plugins.whatsapp.settings import twilio_settings

    settings = sqlite_settings(tmp_path, twilio_send_settle_seconds=value)
    with pytest.raises(ConfigError, match="twilio_send_settle_seconds|TWILIO_SEND_SETTLE_SECONDS"):
        twilio_settings(settings)
