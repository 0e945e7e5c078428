"""The conversation page shows media (images, voice notes with their transcript) and escapes
what customers and models wrote."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from callable_agents.core.models import Message
from tests.dashboard.inbox_support import inbox_world
from tests.dashboard.support import signed_in_client

CUSTOMER = "whatsapp:+15550003333"


async def test_media_and_hostile_text_on_the_conversation_page(tmp_path: Path) -> None:
    async with inbox_world(tmp_path) as world:
        conversation_id = await world.answered(CUSTOMER, "Hi", "Hello <b>there</b>")
        async with world.server.runtime.db.session() as session:
            session.add(
                Message(
                    workspace_id=world.owner.workspace_id, conversation_id=conversation_id, channel_id=world.channel_id,
                    direction="inbound", author="customer", text="<script>alert(1)</script>",
                    media=[
                        {"url": "https://media.example/cake.jpg", "content_type": "image/jpeg"},
                        {"url": "https://media.example/note.ogg", "content_type": "audio/ogg", "note": "I'd like a chocolate cake"},
                        {"url": "https://media.example/menu.pdf", "content_type": "application/pdf"},
                    ],
                )
            )
        async with signed_in_client(world.server, world.owner) as client:
            page = await client.get(f"/dashboard/conversations/{conversation_id}")
            assert page.status_code == 200
            assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert "Hello &lt;b&gt;there&lt;/b&gt;" in page.text
            async with world.server.runtime.db.sessions() as session:
                message_id = await session.scalar(select(Message.id).where(Message.text == "<script>alert(1)</script>"))
            media = f"/dashboard/conversations/{conversation_id}/messages/{message_id}/media/"
            assert f'<img class="msg-image" src="{media}0"' in page.text and "media.example/cake.jpg" not in page.text
            assert f'<audio controls preload="none" src="{media}1">' in page.text
            assert "Voice note, transcript: <q>I&#39;d like a chocolate cake</q>" in page.text
            assert f'href="{media}2"' in page.text and "Attachment (application/pdf)" in page.text
            listing = await client.get("/dashboard/conversations")
            assert "&lt;script&gt;" in listing.text and "<script>alert" not in listing.text
