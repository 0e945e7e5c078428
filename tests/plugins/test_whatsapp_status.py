"""Status callbacks: signed like inbound webhooks, and a message's status only moves forward,
whatever order and however many times Twilio's callbacks arrive."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import contextlib
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from callable_agents.core.config import Settings
from callable_agents.core.contracts.channels import OutboundMessage
from callable_agents.core.conversation.outbound.send import SEND_JOB, send_lane, send_message
from callable_agents.core.conversation.outbound.status import EARLY_STATUS_LIMIT, EARLY_STATUS_TTL, apply_early_statuses
from callable_agents.core.jobs import enqueue
from callable_agents.core.models import EarlyDeliveryStatus, Message, utcnow
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.send import send
from callable_agents.plugins.whatsapp.status import RANKS, StatusUpdate, apply_status
from callable_agents.server import create_app
from tests.e2e.whatsapp_support import (
    ACCOUNT,
    CUSTOMER,
    OTHER_ACCOUNT,
    OTHER_TOKEN,
    PUBLIC_BASE_URL,
    SENDER,
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
    assert not await apply_status(env.runtime, env.world.channel.id, StatusUpdate("SM" + "0" * 32, "delivered"))
    # A message of another channel with the same SID is not touched.
    assert not await apply_status(env.runtime, "f" * 32, StatusUpdate(sid, "delivered"))
    assert (await env.status_of(message_id))[0] == "queued"
    # Only the report for the id nobody carries yet is kept (not the unknown channel's).
    assert [(r.provider_message_id, r.status) for r in await early_reports(env.runtime)] == [("SM" + "0" * 32, "delivered")]


async def early_reports(runtime: Runtime) -> list[EarlyDeliveryStatus]:
    async with runtime.db.sessions() as session:
        return list((await session.scalars(select(EarlyDeliveryStatus).order_by(EarlyDeliveryStatus.id))).all())


def unknown_sid_params(sid: str, status: str, error_code: int | None = None) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "ChannelPrefix": "whatsapp", "From": SENDER,
        "To": CUSTOMER, "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
    }
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


async def test_a_callback_for_an_unknown_sid_is_answered_at_once_and_kept(env: Env) -> None:
    await env.callback(*(await env.sent_reply())[1:], "sent")  # warm the account cache and the connection
    timings = []
    for n in range(5):
        sid = f"SM{n:032x}"
        params = unknown_sid_params(sid, "delivered")
        started = time.perf_counter()
        response = await env.client.post(env.world.path("status"), **form_and_headers(TOKEN, env.status_url, params))
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.text == ""
    assert sorted(timings)[2] < 0.05, timings  # the median; it used to hold ~1 s
    assert len(await early_reports(env.runtime)) == 5


async def send_through_the_pipeline(runtime: Runtime, chat_reply: OutboundMessage) -> None:
    """Queue the stored reply's send job and run it, as the worker does."""
    async with runtime.db.session() as session:
        job = enqueue(session, chat_reply.workspace_id, SEND_JOB, {"message_id": chat_reply.message_id},
                      lane=send_lane(chat_reply.conversation_id))
    await send_message(runtime, job)


async def wait_for_create(fake: FakeTwilio, count: int) -> str:
    for _ in range(500):
        if len(fake.sent_messages) >= count:
            return str(fake.sent_messages[count - 1]["sid"])
        await asyncio.sleep(0.01)
    raise AssertionError("the fake never received the create")


@pytest.mark.parametrize(
    ("callbacks", "final"),
    [
        ([("sent", None), ("undelivered", 63024), ("delivered", None)], ("undelivered", "63024")),
        ([("delivered", None), ("sent", None)], ("delivered", None)),
        ([("read", None)], ("read", None)),
    ],
)
async def test_callbacks_before_a_slow_create_answer_end_at_the_right_status(
    env: Env, callbacks: list[tuple[str, int | None]], final: tuple[str, str | None]
) -> None:
    chat = await make_chat(env.runtime, workspace_name="Slow answer shop")
    env.world = chat.world
    env.status_url = chat.world.urls(env.runtime)["status"]
    outbound = await chat.reply()
    env.fake.hold_create_answers(2.0)
    sending = asyncio.create_task(send_through_the_pipeline(env.runtime, outbound))
    sid = await wait_for_create(env.fake, 1)
    for status, code in callbacks:
        started = time.perf_counter()
        response = await env.callback(sid, status, code)
        assert response.status_code == 200
        assert time.perf_counter() - started < 0.5  # answered without waiting for the send
    assert not sending.done()  # the callbacks all came before Twilio's answer
    await sending
    assert await env.status_of(outbound.message_id) == final
    assert await early_reports(env.runtime) == []  # applied, then forgotten


async def test_a_kept_callback_survives_a_restart_before_the_sid_is_recorded(tmp_path, fake: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    async with open_env(settings, fake) as first:
        chat = await make_chat(first.runtime, workspace_name="Restart shop")
        outbound = await chat.reply()
        fake.hold_create_answers(1.0)
        sending = asyncio.create_task(send_through_the_pipeline(first.runtime, outbound))
        sid = await wait_for_create(fake, 1)
        first.world, first.status_url = chat.world, chat.world.urls(first.runtime)["status"]
        assert (await first.callback(sid, "failed", 63016)).status_code == 200
        sending.cancel()  # the process stops before Twilio answers: the SID is never recorded here
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    fake.hold_create_answers(0)
    app = create_app(settings)
    async with serving(app):
        runtime: Runtime = app.state.runtime
        assert [r.status for r in await early_reports(runtime)] == ["failed"]
        # The send's rerun finds Twilio's message for the attempt and records its SID.
        async with runtime.db.session() as session:
            await session.execute(
                update(Message).where(Message.id == outbound.message_id).values(status="queued", provider_message_id=sid)
            )
            channel_id = chat.world.channel.id
        applied = await runtime.db.run(lambda s: apply_early_statuses(s, channel_id, sid, RANKS))
        assert [(change.status, change.error_code) for _, _, change in applied] == [("failed", "63016")]
        [row] = [m for m in await messages_of(runtime, channel_id) if m.id == outbound.message_id]
        assert (row.status, row.error_code) == ("failed", "63016")


async def test_kept_callbacks_expire_and_are_bounded_per_channel(env: Env) -> None:
    channel_id = env.world.channel.id
    assert not await apply_status(env.runtime, channel_id, StatusUpdate("SM" + "a" * 32, "sent"))
    async with env.runtime.db.session() as session:
        await session.execute(update(EarlyDeliveryStatus).values(received_at=utcnow() - EARLY_STATUS_TTL - timedelta(seconds=1)))
    assert not await apply_status(env.runtime, channel_id, StatusUpdate("SM" + "b" * 32, "sent"))
    assert [r.provider_message_id for r in await early_reports(env.runtime)] == ["SM" + "b" * 32]  # the old one expired

    workspace_id = env.world.workspace.id
    async with env.runtime.db.session() as session:
        await session.execute(
            insert(EarlyDeliveryStatus),
            [{"workspace_id": workspace_id, "channel_id": channel_id, "provider_message_id": f"SM{n:032x}",
              "status": "sent", "rank": 3, "received_at": utcnow()} for n in range(EARLY_STATUS_LIMIT - 1)],
        )
    params = unknown_sid_params("SM" + "c" * 32, "delivered")
    response = await env.client.post(env.world.path("status"), **form_and_headers(TOKEN, env.status_url, params))
    assert response.status_code == 200  # answered, but not kept: the channel's store is full
    async with env.runtime.db.sessions() as session:
        kept = await session.scalar(select(func.count()).select_from(EarlyDeliveryStatus))
        dropped = await session.scalar(
            select(func.count()).where(EarlyDeliveryStatus.provider_message_id == "SM" + "c" * 32)
        )
    assert (kept, dropped) == (EARLY_STATUS_LIMIT, 0)
