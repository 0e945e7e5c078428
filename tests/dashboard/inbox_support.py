"""What the inbox tests share: the running server with a WhatsApp channel on the fake
Twilio, an agent on the fake OpenAI with the handoff tool, members who sign in, and the
customer's side (signed webhooks and status callbacks, as Twilio sends them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncio
import httpx
from sqlalchemy import select, update

from callable_agents.core.models import Agent, Conversation, utcnow
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_headers
from tests.dashboard.support import Member, add_member, dashboard_server
from tests.e2e.whatsapp_support import ACCOUNT, PUBLIC_BASE_URL, SENDER, TEMPLATE, TOKEN, WhatsAppWorld, make_world
from tests.plugins.webchat_support import LiveServer

OPENAI_KEY = "sk-inbox-openai-key-0123456789"
MODEL_SETTINGS = {"integration": "openai", "model": "gpt-4o-mini", "max_retries": 0}
HANDOFF_TOOL = {"type": "handoff", "name": "handoff", "config": {"customer_message": "A person will reply here shortly."}}
TEMPLATE_CONFIG = {"content_sid": TEMPLATE, "variables": {"1": "{name}", "2": "{reply}"}}


@dataclass
class InboxWorld:
    server: LiveServer
    twilio: FakeTwilio
    openai: FakeOpenAI
    whatsapp: WhatsAppWorld
    owner: Member
    http: httpx.AsyncClient

    @property
    def channel_id(self) -> str:
        return self.whatsapp.channel.id

    async def customer_says(
        self, body: str, customer: str, *, name: str = "Ana", media: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A signed inbound webhook, as Twilio posts it for a customer's WhatsApp message
        (``media``: ``(MediaUrl, MediaContentType)`` pairs)."""
        path = f"/channels/whatsapp/{self.channel_id}/inbound"
        params = inbound_params(ACCOUNT, customer, SENDER, body, None, profile_name=name, media=media)
        response = await self.http.post(
            self.server.url + path, data=params, headers=signed_headers(TOKEN, PUBLIC_BASE_URL + path, params)
        )
        assert response.status_code == 200, response.text

    async def status_callback(self, message_sid: str, status: str, error_code: int | None = None) -> None:
        """A signed status callback for a message the fake Twilio holds."""
        path = f"/channels/whatsapp/{self.channel_id}/status"
        params = self.twilio.status_callback_params(message_sid, status, error_code)
        response = await self.http.post(
            self.server.url + path, data=params, headers=signed_headers(TOKEN, PUBLIC_BASE_URL + path, params)
        )
        assert response.status_code in (200, 204), response.text

    async def sent_to(self, customer: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """The messages the fake Twilio received for ``customer``, once there are ``count``."""
        for _ in range(int(timeout / 0.05)):
            found = [m for m in self.twilio.sent_messages if m["to"] == customer]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} messages to {customer}, got {[m.get('body') for m in self.twilio.sent_messages]}")

    async def answered(self, customer: str, text: str, reply: str) -> str:
        """The customer writes ``text``, the agent answers ``reply``; the conversation's id once it went out."""
        self.openai.queue_reply(reply)
        await self.customer_says(text, customer, name="Ana")
        await self.sent_to(customer, 1)
        return await self.conversation_id(customer)

    async def conversation_id(self, customer: str, timeout: float = 10) -> str:
        for _ in range(int(timeout / 0.05)):
            async with self.server.runtime.db.sessions() as session:
                found = await session.scalar(select(Conversation.id).where(Conversation.external_user_id == customer))
            if found:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no conversation with {customer}")

    async def age_window(self, conversation_id: str, hours: float = 30) -> None:
        """The customer's last message was ``hours`` ago (WhatsApp's window closed)."""
        async with self.server.runtime.db.session() as session:
            await session.execute(
                update(Conversation).where(Conversation.id == conversation_id).values(last_inbound_at=utcnow() - timedelta(hours=hours))
            )


@asynccontextmanager
async def inbox_world(tmp_path: Path, *, template: bool = True) -> AsyncIterator[InboxWorld]:
    with FakeTwilio() as twilio, FakeOpenAI(api_key=OPENAI_KEY) as openai:
        twilio.add_account(ACCOUNT, TOKEN)
        async with dashboard_server(
            tmp_path,
            twilio_api_base_url=twilio.base_url,
            twilio_messaging_base_url=twilio.base_url,
            twilio_content_base_url=twilio.base_url,
            public_base_url=PUBLIC_BASE_URL,
        ) as server:
            config: dict[str, Any] = {"sender": SENDER}
            if template:
                config["template"] = TEMPLATE_CONFIG
            whatsapp = await make_world(server.runtime, config=config, model_settings=MODEL_SETTINGS, openai=(openai.base_url, OPENAI_KEY))
            async with server.runtime.db.session() as session:
                await session.execute(update(Agent).where(Agent.id == whatsapp.agent.id).values(tools=[HANDOFF_TOOL]))
            owner = await add_member(server.runtime, "Bella's Bakery", email="maria@example.com", name="Maria")
            assert owner.workspace_id == whatsapp.workspace.id
            async with httpx.AsyncClient(timeout=20) as http:
                yield InboxWorld(server, twilio, openai, whatsapp, owner, http)
