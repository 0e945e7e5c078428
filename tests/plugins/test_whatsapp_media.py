"""Inbound media for the model: images fetched with the account's credentials (size cap) as
image input, voice notes transcribed through the real ``openai`` client against the fake
OpenAI server, and the notes the agent gets when neither is possible."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.models import Conversation, Message
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.media import (
    IMAGE_NOT_SUPPORTED,
    IMAGE_UNAVAILABLE,
    TRANSCRIPT_PREFIX,
    VOICE_NOT_SUPPORTED,
    describe_inbound_media,
    media_content_blocks,
)
from tests.e2e.whatsapp_support import ACCOUNT, CUSTOMER, TOKEN, WhatsAppWorld, make_world, sqlite_settings
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
VOICE = b"OggS" + b"\x00opus-voice-note" * 64
OPENAI_KEY = "sk-test-openai-key-123456"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        yield server


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as server:
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    opened = await open_runtime(settings)
    try:
        yield opened
    finally:
        await close_runtime(opened)


async def inbound_with(runtime: Runtime, world: WhatsAppWorld, media: list[dict[str, str]]) -> Message:
    async with runtime.db.session() as session:
        conversation = Conversation(workspace_id=world.workspace.id, channel_id=world.channel.id, external_user_id=CUSTOMER)
        session.add(conversation)
        await session.flush()
        message = Message(
            workspace_id=world.workspace.id, conversation_id=conversation.id, channel_id=world.channel.id,
            direction="inbound", author="customer", text="", media=media, provider_message_id="MM" + "1" * 32,
        )
        session.add(message)
    return message


async def test_an_image_becomes_image_input_fetched_with_the_account_credentials(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime)
    url = fake.add_media(ACCOUNT, PNG, "image/png")
    message = await inbound_with(runtime, world, [{"url": url, "content_type": "image/png"}])
    [image] = await describe_inbound_media(runtime, message)
    assert image.kind == "image"
    assert image.data_url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    media_requests = [r for r in fake.requests if r.scope == "media"]
    assert media_requests and media_requests[0].auth_username == ACCOUNT
    assert media_content_blocks([image]) == [{"type": "image_url", "image_url": {"url": image.data_url}}]


async def test_an_image_over_the_size_cap_or_missing_becomes_a_note(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime, config={"sender": "whatsapp:+14155238886", "max_media_bytes": 100})
    big = fake.add_media(ACCOUNT, PNG, "image/png", chunked=True)
    gone = big.rsplit("/", 1)[0] + "/ME" + "0" * 32
    message = await inbound_with(
        runtime, world, [{"url": big, "content_type": "image/png"}, {"url": gone, "content_type": "image/jpeg"}]
    )
    described = await describe_inbound_media(runtime, message)
    assert [(d.kind, d.text) for d in described] == [("note", IMAGE_UNAVAILABLE), ("note", IMAGE_UNAVAILABLE)]


async def test_a_model_without_image_input_is_told_an_image_arrived(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime)
    url = fake.add_media(ACCOUNT, PNG, "image/png")
    message = await inbound_with(runtime, world, [{"url": url, "content_type": "image/png"}])
    [note] = await describe_inbound_media(runtime, message, accepts_images=False)
    assert note.text == IMAGE_NOT_SUPPORTED
    assert [r for r in fake.requests if r.scope == "media"] == []


async def test_a_voice_note_is_transcribed_once_with_the_workspaces_openai_integration(
    runtime: Runtime, fake: FakeTwilio, openai_fake: FakeOpenAI
) -> None:
    world = await make_world(runtime, openai=(openai_fake.base_url, OPENAI_KEY))
    openai_fake.queue_transcription("Do you have gluten-free bread on Saturdays?")
    url = fake.add_media(ACCOUNT, VOICE, "audio/ogg")
    message = await inbound_with(runtime, world, [{"url": url, "content_type": "audio/ogg"}])
    [transcript] = await describe_inbound_media(runtime, message)
    assert transcript.kind == "transcript"
    assert transcript.text == f"{TRANSCRIPT_PREFIX} Do you have gluten-free bread on Saturdays?"
    [request] = openai_fake.transcription_requests
    assert request.model == "whisper-1"
    assert request.files["file"].content == VOICE

    async with runtime.db.session() as session:
        stored = await session.get(Message, message.id)
    assert stored is not None and stored.media[0]["note"] == transcript.text
    again = await describe_inbound_media(runtime, stored)
    assert again == [transcript]
    assert len(openai_fake.transcription_requests) == 1  # not transcribed twice


async def test_without_openai_or_when_transcription_fails_the_agent_says_it_cannot_listen(
    runtime: Runtime, fake: FakeTwilio, openai_fake: FakeOpenAI
) -> None:
    without = await make_world(runtime)
    url = fake.add_media(ACCOUNT, VOICE, "audio/ogg")
    message = await inbound_with(runtime, without, [{"url": url, "content_type": "audio/ogg"}])
    [note] = await describe_inbound_media(runtime, message)
    assert note.text == VOICE_NOT_SUPPORTED

    broken = await make_world(runtime, openai=(openai_fake.base_url, "sk-wrong-key-0000000000"), workspace_name="Other")
    message = await inbound_with(runtime, broken, [{"url": url, "content_type": "audio/ogg"}])
    [note] = await describe_inbound_media(runtime, message)
    assert note.text == VOICE_NOT_SUPPORTED

    switched_off = await make_world(
        runtime, openai=(openai_fake.base_url, OPENAI_KEY), workspace_name="Third",
        config={"sender": "whatsapp:+14155238886", "transcribe_voice_notes": False},
    )
    message = await inbound_with(runtime, switched_off, [{"url": url, "content_type": "audio/ogg"}])
    [note] = await describe_inbound_media(runtime, message)
    assert note.text == VOICE_NOT_SUPPORTED
    assert len([r for r in openai_fake.transcription_requests if r.bearer_token == OPENAI_KEY]) == 0


async def test_credentials_are_never_sent_to_a_host_other_than_twilio(
    runtime: Runtime, fake: FakeTwilio, openai_fake: FakeOpenAI
) -> None:
    world = await make_world(runtime)
    elsewhere = f"{openai_fake.url}/2010-04-01/Accounts/{ACCOUNT}/Messages/MM{'2' * 32}/Media/ME{'3' * 32}"
    message = await inbound_with(runtime, world, [{"url": elsewhere, "content_type": "image/png"}])
    [note] = await describe_inbound_media(runtime, message)
    assert note.text == IMAGE_UNAVAILABLE
    assert openai_fake.requests == []


async def test_other_files_are_named_by_type(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime)
    message = await inbound_with(runtime, world, [{"url": "https://api.twilio.com/x", "content_type": "application/pdf"}])
    [note] = await describe_inbound_media(runtime, message)
    assert note.text == "[The customer sent a file (application/pdf).]"
    assert fake.requests == []


async def test_media_blocks_for_the_human_message(runtime: Runtime, fake: FakeTwilio) -> None:
    from callable_agents.plugins.whatsapp.media import inbound_media_blocks

    world = await make_world(runtime)
    url = fake.add_media(ACCOUNT, PNG, "image/png")
    message = await inbound_with(runtime, world, [{"url": url, "content_type": "image/png"}])
    assert await inbound_media_blocks(runtime, message, accepts_images=False) == [
        {"type": "text", "text": IMAGE_NOT_SUPPORTED}
    ]
    [block] = await inbound_media_blocks(runtime, message, accepts_images=True)
    assert block["type"] == "image_url" and block["image_url"]["url"].startswith("data:image/png;base64,")
