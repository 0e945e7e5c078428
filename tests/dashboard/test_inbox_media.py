"""The inbox shows a customer's media that the provider serves only with the account's
credentials (Twilio's "HTTP Basic Authentication for media access"): the dashboard downloads
it through the channel and serves it to members of the conversation's workspace only."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from callable_agents.core.models import Message
from tests.dashboard.inbox_support import InboxWorld, inbox_world
from tests.dashboard.support import add_member, signed_in_client
from tests.e2e.whatsapp_support import ACCOUNT, TOKEN

CUSTOMER = "whatsapp:+15550004444"
OTHER_CUSTOMER = "whatsapp:+15550005555"
# A real 1x1 PNG, so a browser can draw it.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0f01f0005000201a7d6e0c30000000049454e44ae426082"
)


async def _media_message(world: InboxWorld, customer: str) -> tuple[str, int]:
    """(conversation id, message id) of the customer's message with media."""
    conversation_id = await world.conversation_id(customer)
    async with world.server.runtime.db.sessions() as session:
        messages = (await session.scalars(select(Message).where(Message.conversation_id == conversation_id))).all()
    return conversation_id, next(m.id for m in messages if m.media)


async def _add_media_message(world: InboxWorld, conversation_id: str, media: list[dict[str, str]]) -> int:
    async with world.server.runtime.db.session() as session:
        message = Message(
            workspace_id=world.owner.workspace_id, conversation_id=conversation_id, channel_id=world.channel_id,
            direction="inbound", author="customer", text="", media=media,
        )
        session.add(message)
        await session.flush()
        return message.id


async def test_a_whatsapp_image_shows_in_the_conversation(tmp_path: Path) -> None:
    async with inbox_world(tmp_path) as world:
        url = world.twilio.add_media(ACCOUNT, PNG, "image/png")
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(url)).status_code == 401  # Twilio wants the account's credentials
        world.openai.queue_reply("What a lovely cake!")
        await world.customer_says("Can you make this?", CUSTOMER, media=[(url, "image/png")])
        await world.sent_to(CUSTOMER, 1)
        conversation_id, message_id = await _media_message(world, CUSTOMER)
        media_path = f"/dashboard/conversations/{conversation_id}/messages/{message_id}/media/0"
        async with signed_in_client(world.server, world.owner) as client:
            page = await client.get(f"/dashboard/conversations/{conversation_id}")
            assert page.status_code == 200
            assert f'<img class="msg-image" src="{media_path}" alt="Image the customer sent"' in page.text
            assert url not in page.text
            served = await client.get(media_path)
            assert served.status_code == 200, served.text
            assert served.content == PNG
            assert served.headers["content-type"] == "image/png"
            assert served.headers["x-content-type-options"] == "nosniff"
            assert served.headers["content-disposition"] == "inline"
            assert served.headers["cache-control"].startswith("private, max-age=")
            assert (await client.get(media_path[:-1] + "1")).status_code == 404  # out of range
            assert (await client.get(media_path[:-1] + "-1")).status_code == 404
            assert (await client.get(media_path[:-1] + "x")).status_code == 404


async def test_media_is_only_for_the_conversations_workspace(tmp_path: Path) -> None:
    async with inbox_world(tmp_path) as world:
        url = world.twilio.add_media(ACCOUNT, PNG, "image/png")
        world.openai.queue_reply("Nice!")
        await world.customer_says("Look", CUSTOMER, media=[(url, "image/png")])
        await world.sent_to(CUSTOMER, 1)
        other_conversation = await world.answered(OTHER_CUSTOMER, "Hi", "Hello")
        conversation_id, message_id = await _media_message(world, CUSTOMER)
        media_path = f"/dashboard/conversations/{conversation_id}/messages/{message_id}/media/0"
        stranger = await add_member(world.server.runtime, "Other Shop", email="eve@example.com")
        async with signed_in_client(world.server, stranger) as client:
            refused = await client.get(media_path)
            assert refused.status_code == 404 and PNG not in refused.content
        async with signed_in_client(world.server, world.owner) as client:
            # The message exists, but not in that conversation.
            wrong = await client.get(f"/dashboard/conversations/{other_conversation}/messages/{message_id}/media/0")
            assert wrong.status_code == 404
        async with httpx.AsyncClient(base_url=world.server.url) as visitor:
            signed_out = await visitor.get(media_path)
            assert signed_out.status_code == 303
            assert signed_out.headers["location"].startswith("/dashboard/sign-in?next=")


async def test_credentials_stay_on_twilios_host_and_failures_answer_502(tmp_path: Path) -> None:
    async with inbox_world(tmp_path) as world:
        conversation_id = await world.answered(CUSTOMER, "Hi", "Hello")
        real = world.twilio.add_media(ACCOUNT, PNG, "image/png")
        elsewhere = real.replace("127.0.0.1", "localhost")  # the fake Twilio, but not the configured host
        gone = real.rsplit("/", 1)[0] + "/ME" + "0" * 32
        pdf = world.twilio.add_media(ACCOUNT, b"%PDF-1.7 menu", "application/pdf")
        message_id = await _add_media_message(
            world, conversation_id,
            [
                {"url": elsewhere, "content_type": "image/png"},
                {"url": gone, "content_type": "audio/ogg"},
                {"url": pdf, "content_type": "application/pdf"},
            ],
        )
        base = f"/dashboard/conversations/{conversation_id}/messages/{message_id}/media/"
        async with signed_in_client(world.server, world.owner) as client:
            before = len(world.twilio.requests)
            off_host = await client.get(base + "0")
            assert off_host.status_code == 502
            assert "not on Twilio's API host" in off_host.text
            assert len(world.twilio.requests) == before  # nothing was sent to the other host
            missing = await client.get(base + "1")
            assert missing.status_code == 502 and "no longer exists" in missing.text
            world.twilio.fail_next(1, 401, scope="media")
            refused = await client.get(base + "2")
            assert refused.status_code == 502 and "refused" in refused.text
            for response in (off_host, missing, refused):
                assert TOKEN not in response.text and response.headers["cache-control"] == "no-store"
            attachment = await client.get(base + "2")
            assert attachment.status_code == 200 and attachment.content == b"%PDF-1.7 menu"
            assert attachment.headers["content-disposition"] == "attachment"
