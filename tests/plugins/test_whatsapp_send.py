"""Sending WhatsApp replies through the real ``twilio`` client to the loopback fake Twilio:
addresses, credentials, splitting, media, failure classification, the 24-hour window and
templates, opted-out contacts, the typing indicator, and checking an integration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.store.channels import create_or_update_channel
from callable_agents.core.contracts.channels import SendError, TurnStarted
from callable_agents.core.errors import InvalidInput
from callable_agents.core.store.integrations import connect_integration, stored_integration
from callable_agents.core.models import Agent, Integration, Message
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp import channel_urls, verify_twilio_integration
from callable_agents.plugins.whatsapp.send import SENT_PARTS_KEY, on_turn_started, pieces_of, send
from tests.e2e.whatsapp_support import (
    ACCOUNT,
    CUSTOMER,
    KEY_SECRET,
    KEY_SID,
    OTHER_ACCOUNT,
    PUBLIC_BASE_URL,
    SENDER,
    SERVICE,
    TEMPLATE,
    TOKEN,
    make_chat,
    make_world,
    sqlite_settings,
)
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import new_message_sid


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        server.add_account(OTHER_ACCOUNT, "other-token")
        server.add_api_key(ACCOUNT, KEY_SID, KEY_SECRET)
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    opened = await open_runtime(settings)
    try:
        yield opened
    finally:
        await close_runtime(opened)


# --- the happy path ------------------------------------------------------------------------------


async def test_reply_goes_to_the_customer_from_the_sender_with_the_tenants_credentials(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    result = await send(runtime, await chat.reply("We open at *7:00* every day."))
    [sent] = fake.sent_messages
    assert sent["to"] == CUSTOMER and sent["from_"] == SENDER
    assert sent["body"] == "We open at *7:00* every day."
    assert sent["account_sid"] == ACCOUNT and sent["auth_username"] == ACCOUNT
    assert sent["status_callback"] == f"{PUBLIC_BASE_URL}/channels/whatsapp/{chat.world.channel.id}/status"
    assert result.provider_message_id == sent["sid"] and result.status == "queued"


async def test_messaging_service_and_api_key(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime, config={"messaging_service_sid": SERVICE}, api_key=(KEY_SID, KEY_SECRET))
    result = await send(runtime, await chat.reply())
    [sent] = fake.sent_messages
    assert sent["messaging_service_sid"] == SERVICE and sent["from_"] is None
    assert sent["auth_username"] == KEY_SID  # replies use the API key when there is one
    assert result.status == "accepted"


async def test_an_emoji_heavy_part_goes_out_within_1600_utf16_units(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    text = " ".join(["Fresh 🥐🥖🍰 today 🎉🎉"] * 200)[:1600]  # 1,600 code points, far more UTF-16 units
    assert len(text) == 1600 and len(text.encode("utf-16-le")) // 2 > 2000
    await send(runtime, await chat.reply(text))  # the fake refuses a body over 1,600 UTF-16 units (21617)
    bodies = [m["body"] for m in fake.sent_messages]
    assert len(bodies) >= 2 and all(len(body.encode("utf-16-le")) // 2 <= 1600 for body in bodies)
    assert " ".join(bodies).split() == text.split()


async def test_long_text_is_split_in_order_and_media_go_one_per_message(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    paragraphs = [f"Paragraph {n}: " + "fresh bread and pastries every morning. " * 12 for n in range(8)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 3200
    media = [
        {"url": "https://cdn.example.com/menu.pdf", "content_type": "application/pdf"},
        {"url": "https://cdn.example.com/shop.jpg", "content_type": "image/jpeg"},
    ]
    result = await send(runtime, await chat.reply(text, media))
    sent = fake.sent_messages
    bodies = [m["body"] for m in sent if m["body"]]
    assert all(len(body) <= 1600 for body in bodies)
    assert " ".join(" ".join(bodies).split()) == " ".join(text.split())
    assert sent[0]["media_urls"] == ["https://cdn.example.com/menu.pdf"]  # the first text carries the first file
    assert sent[-1]["media_urls"] == ["https://cdn.example.com/shop.jpg"] and sent[-1]["body"] is None
    # Only the last piece reports delivery (it stands for the whole message).
    assert [m["status_callback"] is not None for m in sent] == [False] * (len(sent) - 1) + [True]
    assert result.provider_message_id == sent[-1]["sid"]


def test_pieces_of_a_short_text_with_one_image_is_one_message() -> None:
    [piece] = pieces_of("Here is our menu.", [{"url": "https://x.example/m.jpg", "content_type": "image/jpeg"}])
    assert piece.body == "Here is our menu." and piece.media_url == "https://x.example/m.jpg"
    assert pieces_of("   ", []) == []


async def test_a_retry_after_a_failure_midway_does_not_resend_earlier_pieces(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    text = "\n\n".join(f"Part {n}. " + "word " * 300 for n in range(3))
    outbound = await chat.reply(text)
    fake_calls_before = len(fake.requests)
    # The first piece goes through; the second fails with a 500.
    original_pieces = pieces_of(text, [])
    assert len(original_pieces) >= 3
    fake.delay_next(1, 0.0, scope="messages")
    fake.fail_next(1, 500, scope="messages")
    with pytest.raises(SendError) as failed:
        await send(runtime, outbound)
    assert failed.value.transient
    assert len(fake.sent_messages) == 1
    async with runtime.db.session() as session:
        meta = await session.scalar(select(Message.meta).where(Message.id == outbound.message_id))
    assert meta[SENT_PARTS_KEY] == [fake.sent_messages[0]["sid"]]
    await send(runtime, outbound)
    bodies = [m["body"] for m in fake.sent_messages]
    assert bodies == [piece.body for piece in original_pieces]  # each exactly once, in order
    assert len(fake.requests) - fake_calls_before == len(original_pieces) + 1


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "transient", "retry_after"),
    [
        (500, None, True, None),
        (503, None, True, None),
        (429, 20429, True, 1.0),
        (429, 63018, True, 1.0),
        (400, 63018, True, None),
        (400, 21211, False, None),
        (400, 63015, False, None),
    ],
)
async def test_failures_are_classified(
    runtime: Runtime, fake: FakeTwilio, status: int, code: int | None, transient: bool, retry_after: float | None
) -> None:
    chat = await make_chat(runtime)
    fake.fail_next(1, status, code=code, scope="messages")
    with pytest.raises(SendError) as info:
        await send(runtime, await chat.reply())
    assert info.value.transient is transient
    assert info.value.code == str(code or {500: 20500, 503: 20503}[status])
    assert info.value.retry_after == retry_after
    assert not info.value.opted_out
    assert TOKEN not in str(info.value)


async def test_opt_out_from_twilio_is_reported_and_an_opted_out_contact_gets_nothing_more(
    runtime: Runtime, fake: FakeTwilio
) -> None:
    chat = await make_chat(runtime)
    fake.fail_next(1, 400, code=21610, scope="messages")
    with pytest.raises(SendError) as info:
        await send(runtime, await chat.reply())
    assert info.value.opted_out and not info.value.transient and info.value.code == "21610"

    opted_out = await make_chat(runtime, opted_out=True, workspace_name="Other shop")
    requests_before = len(fake.requests)
    with pytest.raises(SendError) as refused:
        await send(runtime, await opted_out.reply())
    assert refused.value.opted_out and refused.value.code == "21610" and not refused.value.transient
    assert len(fake.requests) == requests_before  # Twilio was not even asked


# --- the 24-hour window -----------------------------------------------------------------------------


async def test_outside_the_window_without_a_template_fails_clearly_without_calling_twilio(
    runtime: Runtime, fake: FakeTwilio
) -> None:
    chat = await make_chat(runtime, last_inbound_hours_ago=25)
    with pytest.raises(SendError) as info:
        await send(runtime, await chat.reply())
    assert info.value.code == "63016" and not info.value.transient
    assert "outside WhatsApp's 24-hour window" in str(info.value)
    assert "template (Content SID)" in str(info.value)
    assert fake.requests == []


async def test_outside_the_window_the_template_is_sent_instead(runtime: Runtime, fake: FakeTwilio) -> None:
    template = {"content_sid": TEMPLATE, "variables": {"1": "{name}", "2": "{reply}"}}
    chat = await make_chat(runtime, config={"sender": SENDER, "template": template}, last_inbound_hours_ago=30)
    result = await send(runtime, await chat.reply("Your cake is ready for pickup."))
    [sent] = fake.sent_messages
    assert sent["content_sid"] == TEMPLATE and sent["body"] is None
    assert json.loads(sent["content_variables"]) == {"1": "Ana", "2": "Your cake is ready for pickup."}
    assert result.provider_message_id == sent["sid"]


async def test_outside_the_window_a_template_without_the_reply_goes_out_once_per_reply(
    runtime: Runtime, fake: FakeTwilio
) -> None:
    template = {"content_sid": TEMPLATE, "variables": {"1": "{name}"}}
    chat = await make_chat(runtime, config={"sender": SENDER, "template": template}, last_inbound_hours_ago=30)
    await send(runtime, await chat.reply("First part.", part=0))
    with pytest.raises(SendError) as info:
        await send(runtime, await chat.reply("Second part.", part=1))
    assert info.value.code == "63016" and "went out with the first part" in str(info.value)
    assert len(fake.sent_messages) == 1

    with_reply = {"content_sid": TEMPLATE, "variables": {"1": "{reply}"}}
    other = await make_chat(
        runtime, config={"sender": SENDER, "template": with_reply}, last_inbound_hours_ago=30, workspace_name="Other"
    )
    await send(runtime, await other.reply("First part.", part=0))
    await send(runtime, await other.reply("Second part.", part=1))
    assert [json.loads(m["content_variables"]) for m in fake.sent_messages[1:]] == [
        {"1": "First part."}, {"1": "Second part."}
    ]


async def test_twilio_63016_inside_our_window_uses_the_template_or_a_clear_error(runtime: Runtime, fake: FakeTwilio) -> None:
    without = await make_chat(runtime)
    fake.fail_next(1, 400, code=63016, scope="messages")
    with pytest.raises(SendError) as info:
        await send(runtime, await without.reply())
    assert info.value.code == "63016" and "outside WhatsApp's 24-hour window" in str(info.value)

    with_template = await make_chat(
        runtime, config={"sender": SENDER, "template": {"content_sid": TEMPLATE}}, workspace_name="Second shop"
    )
    fake.fail_next(1, 400, code=63016, scope="messages")
    result = await send(runtime, await with_template.reply())
    assert fake.sent_messages[-1]["content_sid"] == TEMPLATE
    assert result.provider_message_id == fake.sent_messages[-1]["sid"]


# --- typing indicator, verification, URLs ---------------------------------------------------------


async def test_turn_start_shows_typing_on_the_newest_message(runtime: Runtime, fake: FakeTwilio) -> None:
    chat = await make_chat(runtime)
    older, newest = new_message_sid(), new_message_sid()
    await on_turn_started(
        runtime,
        TurnStarted(
            workspace_id=chat.world.workspace.id, channel_id=chat.world.channel.id, conversation_id=chat.conversation.id,
            external_user_id=CUSTOMER, provider_message_ids=[older, newest],
        ),
    )
    [typing] = fake.typing_indicators
    assert typing["message_id"] == newest and typing["account_sid"] == ACCOUNT
    # Best effort: a failing indicator does not raise.
    fake.fail_next(1, 500, scope="typing")
    await on_turn_started(
        runtime,
        TurnStarted(chat.world.workspace.id, chat.world.channel.id, chat.conversation.id, CUSTOMER, [newest]),
    )


async def test_verify_twilio_integration(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime, api_key=(KEY_SID, KEY_SECRET))
    def verify(integration: Integration) -> Any:
        return verify_twilio_integration(runtime, stored_integration(integration, world.workspace))

    facts = await verify(world.integration)
    assert facts["sid"] == ACCOUNT and facts["status"] == "active"
    assert TOKEN not in json.dumps(facts)

    async with runtime.db.session() as session:
        wrong_token = await connect_integration(
            session, runtime.vault, world.workspace, provider="twilio", name="wrong",
            public={"account_sid": ACCOUNT}, secrets={"auth_token": "definitely-not-the-token"},
        )
        unknown = await connect_integration(
            session, runtime.vault, world.workspace, provider="twilio", name="unknown",
            public={"account_sid": "AC" + "7" * 32}, secrets={"auth_token": TOKEN},
        )
        bad_key = await connect_integration(
            session, runtime.vault, world.workspace, provider="twilio", name="badkey",
            public={"account_sid": ACCOUNT, "api_key_sid": KEY_SID}, secrets={"auth_token": TOKEN, "api_key_secret": "nope-nope-nope"},
        )
    with pytest.raises(InvalidInput, match="rejected the credentials"):
        await verify(wrong_token)
    with pytest.raises(InvalidInput, match="check the Account SID|no account"):
        await verify(unknown)
    with pytest.raises(InvalidInput, match=f"API key {KEY_SID}"):
        await verify(bad_key)


async def test_channel_urls_come_from_the_public_base_url_or_the_override(runtime: Runtime) -> None:
    world = await make_world(runtime)
    urls = channel_urls(runtime.settings, world.channel)
    assert urls == {
        "inbound": f"{PUBLIC_BASE_URL}/channels/whatsapp/{world.channel.id}/inbound",
        "status": f"{PUBLIC_BASE_URL}/channels/whatsapp/{world.channel.id}/status",
    }
    world.channel.config = {**world.channel.config, "public_status_url": "https://hooks.example.org/s"}
    assert channel_urls(runtime.settings, world.channel)["status"] == "https://hooks.example.org/s"


# --- channel configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "exactly one of sender"),
        ({"sender": SENDER, "messaging_service_sid": SERVICE}, "exactly one of sender"),
        ({"sender": "+14155238886"}, "whatsapp:+14155238886"),
        ({"messaging_service_sid": "MG123"}, "'MG' followed by 32 hex"),
        ({"sender": SENDER, "template": {"content_sid": "HX1"}}, "'HX' followed by 32 hex"),
        ({"sender": SENDER, "template": {"content_sid": TEMPLATE, "name": "order_update"}}, "either content_sid"),
        ({"sender": SENDER, "template": {"variables": {"1": "x"}}}, "either content_sid"),
        ({"sender": SENDER, "template": {"name": "Order Update"}}, "lowercase letters"),
        ({"sender": SENDER, "template": {"name": "order_update", "language": "english"}}, "'en' or 'pt_BR'"),
        ({"sender": SENDER, "public_inbound_url": "ftp://x"}, "http:// or https://"),
        ({"sender": SENDER, "public_inbound_url": "https://my_host.example.com/in"}, "underscores"),
        ({"sender": SENDER, "max_media_bytes": 0}, "max_media_bytes"),
        ({"sender": SENDER, "colour": "blue"}, "colour"),
    ],
)
async def test_bad_channel_config_is_refused_naming_the_field(runtime: Runtime, config: dict[str, Any], message: str) -> None:
    from callable_agents.core.store.agent_spec import SpecError

    world = await make_world(runtime)
    async with runtime.db.session() as session:
        with pytest.raises(SpecError) as info:
            await create_or_update_channel(
                session, runtime, world.workspace.id, name="second", kind="whatsapp", agent="assistant",
                integration="twilio", config=config,
            )
    assert message in str(info.value)
    assert "config" in str(info.value)


async def test_a_voice_agent_is_refused_with_a_hint_to_attach_a_chat_agent(runtime: Runtime) -> None:
    from callable_agents.core.store.agent_spec import SpecError

    world = await make_world(runtime)
    async with runtime.db.session() as session:
        session.add(Agent(workspace_id=world.workspace.id, name="caller", kind="voice"))
        await session.flush()
        with pytest.raises(SpecError, match="attach a chat agent"):
            await create_or_update_channel(
                session, runtime, world.workspace.id, name="voice-wa", kind="whatsapp", agent="caller",
                integration="twilio", config={"sender": SENDER},
            )


async def test_undecryptable_credentials_fail_permanently_without_calling_twilio(runtime: Runtime, fake: FakeTwilio) -> None:
    from sqlalchemy import update

    from callable_agents.core.models import Integration

    chat = await make_chat(runtime)
    other = await make_world(runtime, workspace_name="Another shop")
    async with runtime.db.session() as session:
        # A token copied from another workspace's row does not decrypt here (AAD-bound).
        await session.execute(
            update(Integration).where(Integration.id == chat.world.integration.id).values(secrets=other.integration.secrets)
        )
    with pytest.raises(SendError) as info:
        await send(runtime, await chat.reply())
    assert info.value.code == "credentials" and not info.value.transient
    assert TOKEN not in str(info.value)
    assert fake.requests == []
