"""Setting up a WhatsApp channel for tests: a workspace, its Twilio integration, a chat
agent and the channel, created through the same functions the CLI and API use; plus the
app running in-process (lifespan included) behind an ``httpx`` client, and signed posts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette

from callable_agents.core.store.channels import create_or_update_channel
from callable_agents.core.config import Settings
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.contracts.channels import OutboundMessage
from callable_agents.core.conversation.outbound.send import outbound_message
from callable_agents.core.conversation.inbound.filing import file_queued
from callable_agents.core.models import Agent, Channel, Conversation, Integration, Job, Message, QueuedInbound, Workspace, utcnow
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.plugins.whatsapp import channel_urls
from tests.conftest import make_settings
from callable_agents.testing.settings import migrated_sqlite_file
from callable_agents.testing.twilio_signing import signed_form as form_and_headers  # noqa: F401 - for the tests

ACCOUNT = "AC" + "1f" * 16
TOKEN = "tenant-auth-token-s3cr3t-value"
OTHER_ACCOUNT = "AC" + "2e" * 16
OTHER_TOKEN = "other-tenant-token-s3cr3t"
KEY_SID = "SK" + "3d" * 16
KEY_SECRET = "tenant-key-secret-s3cr3t"
SENDER = "whatsapp:+14155238886"
CUSTOMER = "whatsapp:+15551234567"
SERVICE = "MG" + "5b" * 16
TEMPLATE = "HX" + "4c" * 16
PUBLIC_BASE_URL = "https://bot.example.com"


def sqlite_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings on a fresh, migrated SQLite file of this test's own (a copy of the schema the
    kit migrates once per session: migrating takes about a second)."""
    data_dir = tmp_path / "data"
    migrated_sqlite_file(data_dir)
    return make_settings(data_dir, **{"public_base_url": PUBLIC_BASE_URL, **overrides})


@dataclass
class WhatsAppWorld:
    workspace: Workspace
    integration: Integration
    agent: Agent
    channel: Channel

    def urls(self, runtime: Runtime) -> dict[str, str]:
        return channel_urls(runtime.settings, self.channel)

    def path(self, endpoint: str) -> str:
        return f"/channels/whatsapp/{self.channel.id}/{endpoint}"


async def make_world(
    runtime: Runtime,
    *,
    config: Mapping[str, Any] | None = None,
    account_sid: str = ACCOUNT,
    auth_token: str = TOKEN,
    api_key: tuple[str, str] | None = None,
    model_settings: Mapping[str, Any] | None = None,
    openai: tuple[str, str] | None = None,
    workspace_name: str = "Bella's Bakery",
    system_prompt: str = "You are the assistant of Bella's Bakery.",
    business_info: Mapping[str, Any] | None = None,
) -> WhatsAppWorld:
    """A workspace with a Twilio integration ``twilio``, a chat agent and a WhatsApp channel.

    ``openai=(base_url, api_key)`` also connects an OpenAI integration ``openai``.
    """
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, workspace_name)
        public: dict[str, Any] = {"account_sid": account_sid}
        secrets: dict[str, str | None] = {"auth_token": auth_token}
        if api_key is not None:
            public["api_key_sid"], secrets["api_key_secret"] = api_key
        integration = await connect_integration(
            session, runtime.vault, workspace, provider="twilio", name="twilio", public=public, secrets=secrets
        )
        if openai is not None:
            await connect_integration(
                session, runtime.vault, workspace, provider="openai", name="openai",
                public={"base_url": openai[0]}, secrets={"api_key": openai[1]},
            )
        agent = Agent(
            workspace_id=workspace.id,
            name="assistant",
            kind="chat",
            system_prompt=system_prompt,
            business_info=dict(business_info or {"name": "Bella's Bakery", "hours": "Mon-Sat 7:00-18:00"}),
            model_settings=dict(model_settings or {}),
            fallback_message="Sorry, something went wrong on our side.",
        )
        session.add(agent)
        await session.flush()
        channel, _ = await create_or_update_channel(
            session, runtime, workspace.id, name="whatsapp", kind="whatsapp", agent="assistant",
            integration="twilio", config=dict(config or {"sender": SENDER}),
        )
    return WhatsAppWorld(workspace, integration, agent, channel)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, reached in-process over ASGI (base http://testserver)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@dataclass
class Chat:
    runtime: Runtime
    world: WhatsAppWorld
    conversation: Conversation

    async def reply(
        self, text: str = "We open at 7:00.", media: list[dict[str, Any]] | None = None, *, part: int = 0
    ) -> OutboundMessage:
        """Store an outbound reply part as the pipeline does and return what ``send`` gets."""
        async with self.runtime.db.session() as session:
            message = Message(
                workspace_id=self.world.workspace.id, conversation_id=self.conversation.id,
                channel_id=self.world.channel.id, direction="outbound", author="agent", text=text,
                media=media or [], status="pending", meta={"part": part},
            )
            session.add(message)
            await session.flush()
        return outbound_message(message, self.conversation, self.world.channel)


async def make_chat(
    runtime: Runtime,
    *,
    config: dict[str, Any] | None = None,
    last_inbound_hours_ago: float | None = 0.1,
    opted_out: bool = False,
    **world_kwargs: Any,
) -> Chat:
    world = await make_world(runtime, config=config, **world_kwargs)
    async with runtime.db.session() as session:
        conversation = Conversation(
            workspace_id=world.workspace.id, channel_id=world.channel.id, external_user_id=CUSTOMER,
            profile={"ProfileName": "Ana", "WaId": "15551234567"}, opted_out=opted_out,
            last_inbound_at=None if last_inbound_hours_ago is None else utcnow() - timedelta(hours=last_inbound_hours_ago),
        )
        session.add(conversation)
    return Chat(runtime, world, conversation)


async def file_all_queued(runtime: Runtime) -> None:
    """File what the webhooks queued, as the worker does before it claims jobs."""
    while await file_queued(runtime):
        pass


async def count_rows(runtime: Runtime) -> tuple[int, int]:
    """(messages, jobs) in the database once what was queued is filed; nothing may stay queued."""
    await file_all_queued(runtime)
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(QueuedInbound)) == 0
        messages = await session.scalar(select(func.count()).select_from(Message))
        jobs = await session.scalar(select(func.count()).select_from(Job))
    return int(messages or 0), int(jobs or 0)


async def messages_of(runtime: Runtime, channel_id: str, direction: str | None = None) -> list[Message]:
    await file_all_queued(runtime)
    async with runtime.db.session() as session:
        query = select(Message).where(Message.channel_id == channel_id).order_by(Message.id)
        if direction is not None:
            query = query.where(Message.direction == direction)
        return list((await session.scalars(query)).all())


@asynccontextmanager
async def whatsapp_runtime(tmp_path: Path, fake_base_url: str) -> AsyncIterator[Runtime]:
    """A runtime on a fresh SQLite file whose Twilio clients (REST, messaging, Content API) talk
    to the fake Twilio at ``fake_base_url``."""
    from callable_agents.core.bootstrap import close_runtime, open_runtime

    settings = sqlite_settings(
        tmp_path, twilio_api_base_url=fake_base_url, twilio_messaging_base_url=fake_base_url,
        twilio_content_base_url=fake_base_url,
    )
    runtime = await open_runtime(settings)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)
