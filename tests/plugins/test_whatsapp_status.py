"""Status callbacks: signed like inbound webhooks, and a message's status only moves forward,
whatever order and however many times Twilio's callbacks arrive."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import update

from callable_agents.core.config import Settings
from callable_agents.core.models import Message
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.send import send
from callable_agents.core.conversation.outbound.status import NOT_YET_STORED_WAITS
from callable_agents.plugins.whatsapp.status import StatusUpdate, apply_status
from callable_agents.server import create_app
from tests.e2e.whatsapp_support import (
    ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_TOKEN,
    PUBLIC_BASE_URL,
    TOKEN,
    WhatsAppWorld,
    form_and_headers,
    make_chat,
    make_world,
    messages_of,
    serving,
    sqlite_settings,
)
from callable_agents.testing.twilio_server import FakeTwilio


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        server.add_account(OTHER_ACCOUNT, OTHER_TOKEN)
        yield server


@dataclass
class Env:
    client: httpx.AsyncClient
    runtime: Runtime
    fake: FakeTwilio
    world: WhatsAppWorld
    status_url: str

    async def sent_reply(self) -> tuple[int, str]:
        """A reply sent through Twilio (the fake) and recorded as the pipeline does: (id, sid)."""
        chat = await make_chat(self.runtime, workspace_name=f"Shop {time.monotonic_ns()}")
        self.world = chat.world
        self.status_url = chat.world.urls(self.runtime)["status"]
        outbound = await chat.reply()
        result = await send(self.runtime, outbound)
        async with self.runtime.db.session() as session:
            await session.execute(
                update(Message)
                .where(Message.id == outbound.message_id)
                .values(status=result.status, provider_message_id=result.provider_message_id)
            )
        assert result.provider_message_id is not None
        return outbound.message_id, result.provider_message_id

    async def callback(self, sid: str, status: str, error_code: int | None = None, *, token: str = TOKEN) -> httpx.Response:
        params = self.fake.status_callback_params(sid, status, error_code)
        return await self.client.post(self.world.path("status"), **form_and_headers(token, self.status_url, params))

    async def status_of(self, message_id: int) -> tuple[str, str | None]:
        [row] = [m for m in await messages_of(self.runtime, self.world.channel.id) if m.id == message_id]
        return row.status, row.error_code


@asynccontextmanager
async def open_env(settings: Settings, fake: FakeTwilio) -> AsyncIterator[Env]:
    app = create_app(settings)
    async with serving(app) as client:
        runtime: Runtime = app.state.runtime
        world = await make_world(runtime)
        yield Env(client, runtime, fake, world, world.urls(runtime)["status"])


@pytest.fixture
async def env(tmp_path, fake: FakeTwilio) -> AsyncIterator[Env]:  # type: ignore[no-untyped-def]
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    async with open_env(settings, fake) as value:
        yield value


@pytest.fixture
async def env_on_backend(settings: Settings, fake: FakeTwilio) -> AsyncIterator[Env]:
    configured = settings.model_copy(
        update={"public_base_url": PUBLIC_BASE_URL, "twilio_api_base_url": fake.base_url, "twilio_messaging_base_url": fake.base_url}
    )
    async with open_env(configured, fake) as value:
        yield value


async def test_callbacks_out_of_order_end_at_the_highest_status(env: Env) -> None:
    message_id, sid = await env.sent_reply()
    for status in ("read", "sent", "delivered", "queued", "sent"):
        response = await env.callback(sid, status)
        assert response.status_code == 200
        assert response.text == ""
    assert await env.status_of(message_id) == ("read", None)


async def test_in_order_callbacks_move_the_status_forward(env: Env) -> None:
    message_id, sid = await env.sent_reply()
    for status in ("sent", "delivered"):
        await env.callback(sid, status)
        assert (await env.status_of(message_id))[0] == status


async def test_failed_and_undelivered_are_final_and_keep_the_error_code(env: Env) -> None:
    message_id, sid = await env.sent_reply()
    await env.callback(sid, "sent")
    await env.callback(sid, "undelivered", 63024)
    for late in ("delivered", "read", "sent", "failed"):
        await env.callback(sid, late)
    assert await env.status_of(message_id) == ("undelivered", "63024")
    async with env.runtime.db.session() as session:
        row = await session.get(Message, message_id)
    assert row is not None and row.error_message


async def test_many_concurrent_callbacks_in_random_order_end_at_read(env_on_backend: Env) -> None:
    env = env_on_backend
    message_id, sid = await env.sent_reply()
    statuses = ["sent", "delivered", "read"] * 4 + ["queued", "sending"]
    random.Random(7).shuffle(statuses)
    responses = await asyncio.gather(*(env.callback(sid, status) for status in statuses))
    assert {r.status_code for r in responses} == {200}
    assert await env.status_of(message_id) == ("read", None)


async def test_status_callbacks_are_signature_checked_against_the_status_url(env: Env) -> None:
    message_id, sid = await env.sent_reply()
    params = env.fake.status_callback_params(sid, "delivered")
    unsigned = await env.client.post(env.world.path("status"), data=params)
    assert unsigned.status_code == 403
    inbound_url = env.world.urls(env.runtime)["inbound"]
    wrong_url = await env.client.post(env.world.path("status"), **form_and_headers(TOKEN, inbound_url, params))
    assert wrong_url.status_code == 403
    wrong_token = await env.callback(sid, "delivered", token=OTHER_TOKEN)
    assert wrong_token.status_code == 403
    foreign = {**params, "AccountSid": OTHER_ACCOUNT}
    other_account = await env.client.post(env.world.path("status"), **form_and_headers(TOKEN, env.status_url, foreign))
    assert other_account.status_code == 403
    missing = {k: v for k, v in params.items() if k != "MessageStatus"}
    no_status = await env.client.post(env.world.path("status"), **form_and_headers(TOKEN, env.status_url, missing))
    assert no_status.status_code == 400 and "MessageStatus" in no_status.text
    assert (await env.status_of(message_id))[0] == "queued"


async def test_unknown_message_or_status_changes_nothing(env: Env) -> None:
    message_id, sid = await env.sent_reply()
    assert not await apply_status(env.runtime, env.world.channel.id, StatusUpdate(sid, "receiving"))
    started = time.monotonic()
    assert not await apply_status(env.runtime, env.world.channel.id, StatusUpdate("SM" + "0" * 32, "delivered"))
    assert time.monotonic() - started >= sum(NOT_YET_STORED_WAITS) * 0.9  # it waited for a late write
    # A message of another channel with the same SID is not touched.
    assert not await apply_status(env.runtime, "f" * 32, StatusUpdate(sid, "delivered"))
    assert (await env.status_of(message_id))[0] == "queued"


async def test_a_callback_that_beats_the_sid_write_is_applied_once_the_sid_is_stored(env: Env) -> None:
    chat = await make_chat(env.runtime, workspace_name="Race shop")
    outbound = await chat.reply()
    sid = "SM" + "9" * 32

    async def store_sid_a_little_later() -> None:
        await asyncio.sleep(0.1)
        async with env.runtime.db.session() as session:
            await session.execute(
                update(Message).where(Message.id == outbound.message_id).values(status="queued", provider_message_id=sid)
            )

    applied, _ = await asyncio.gather(
        apply_status(env.runtime, chat.world.channel.id, StatusUpdate(sid, "sent")), store_sid_a_little_later()
    )
    assert applied
    [row] = [m for m in await messages_of(env.runtime, chat.world.channel.id) if m.id == outbound.message_id]
    assert row.status == "sent"
