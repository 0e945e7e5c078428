"""The inbound queue: one durable append per batch of webhooks, filed by the worker in order."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select

from callable_agents.core.conversation.inbound import queue as inbound_queue
from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings
from callable_agents.core.conversation.inbound.filing import file_queued
from callable_agents.core.conversation.inbound.queue import InboundQueue
from callable_agents.core.jobs import Worker, complete, register_handler, register_intake
from callable_agents.core.models import Channel, Conversation, Job, Message, QueuedInbound, utcnow
from callable_agents.core.conversation.inbound import InboundMessage, queue_inbound
from callable_agents.core.runtime import Runtime
from tests.core.pipeline_helpers import make_agent_channel


def whatsapp_message(n: int, customer: int = 0, **extra: object) -> InboundMessage:
    return InboundMessage(
        external_user_id=f"whatsapp:+1555000{customer:04d}", text=f"message {n}", provider_message_id=f"SM{n:032d}",
        profile={"ProfileName": f"Customer {customer}"}, meta={"Body": f"message {n}", "NumMedia": "0"}, **extra,  # type: ignore[arg-type]
    )


async def queued_rows(runtime: Runtime) -> list[QueuedInbound]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(QueuedInbound).order_by(QueuedInbound.id))).all())


async def inbound_texts(runtime: Runtime) -> list[str]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(Message.text).order_by(Message.id))).all())


async def test_a_queued_message_is_durable_at_once_and_filed_with_its_turn(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, whatsapp_message(1, opted_out=None))

    [row] = await queued_rows(runtime)
    assert (row.workspace_id, row.channel_id, row.error) == (channel.workspace_id, channel.id, None)
    assert row.payload["text"] == "message 1" and row.payload["meta"] == {"Body": "message 1", "NumMedia": "0"}
    assert await inbound_texts(runtime) == []  # filing is the worker's

    assert await file_queued(runtime) == 1
    assert await queued_rows(runtime) == []
    async with runtime.db.session() as session:
        [message] = (await session.scalars(select(Message))).all()
        conversation = await session.get(Conversation, message.conversation_id)
        [turn] = (await session.scalars(select(Job))).all()
    assert message.provider_message_id == f"SM{1:032d}" and message.meta == {"Body": "message 1", "NumMedia": "0"}
    assert message.created_at == row.received_at  # the time the webhook arrived, not the filing
    assert conversation is not None and conversation.profile == {"ProfileName": "Customer 0"}
    assert conversation.last_inbound_at == row.received_at
    assert (turn.kind, turn.lane, turn.status) == ("turn", conversation.id, "pending")
    assert await file_queued(runtime) == 0


async def test_text_that_needs_escaping_and_the_arrival_time_are_kept_exactly(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    awkward = 'a "quoted" \\ back\\slash, {"json": [1]}, \'single\', tab\tnew\nline, ñ, 漢字, 👩‍👩‍👧 \u2028 end'
    arrived = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    message = dataclasses.replace(
        whatsapp_message(1), text=awkward, profile={"ProfileName": 'Zoë "Z" \\'}, received_at=arrived
    )
    await asyncio.gather(queue_inbound(runtime, channel, message), queue_inbound(runtime, channel, whatsapp_message(2)))
    first, second = sorted(await queued_rows(runtime), key=lambda row: row.payload["provider_message_id"])
    assert first.payload["text"] == awkward and first.payload["profile"] == {"ProfileName": 'Zoë "Z" \\'}
    assert first.received_at == arrived and first.received_at.utcoffset() == timedelta(0)
    assert second.payload["text"] == "message 2"


async def test_a_naive_arrival_time_is_refused_alone_with_the_field_named(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    naive = dataclasses.replace(whatsapp_message(1), received_at=datetime(2026, 12, 7, 9, 30, 15))
    outcomes = await asyncio.gather(
        queue_inbound(runtime, channel, naive), queue_inbound(runtime, channel, whatsapp_message(2)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], ValueError) and "InboundMessage.received_at" in str(outcomes[0])
    assert outcomes[1] is None
    assert [row.payload["text"] for row in await queued_rows(runtime)] == ["message 2"]


async def test_filing_keeps_the_order_and_files_a_replay_as_nothing(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    for n in (1, 2, 1, 3):  # 1 is delivered twice, as Twilio retries
        await queue_inbound(runtime, channel, whatsapp_message(n))
    assert await file_queued(runtime, limit=2) == 2
    assert await file_queued(runtime) == 2
    await queue_inbound(runtime, channel, whatsapp_message(2))  # a retry after its original was filed
    assert await file_queued(runtime) == 1
    assert await inbound_texts(runtime) == ["message 1", "message 2", "message 3"]
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 1  # one turn for the burst


async def test_opt_out_keywords_are_applied_when_filed(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)

    async def opted_out_after(*messages: InboundMessage) -> bool:
        for message in messages:
            await queue_inbound(runtime, channel, message)
        await file_queued(runtime)
        async with runtime.db.session() as session:
            return bool(await session.scalar(select(Conversation.opted_out)))

    assert await opted_out_after(whatsapp_message(1, opted_out=True))
    assert await opted_out_after(whatsapp_message(2))  # an ordinary message changes nothing
    assert not await opted_out_after(whatsapp_message(3, opted_out=True), whatsapp_message(4, opted_out=False))
    assert not await opted_out_after(whatsapp_message(4, opted_out=True))  # a replay: filed as nothing
    assert await opted_out_after(whatsapp_message(5, opted_out=True), whatsapp_message(6))


async def test_concurrent_webhooks_share_an_append_and_each_message_is_kept(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    await asyncio.gather(*(queue_inbound(runtime, channel, whatsapp_message(n, customer=n % 5)) for n in range(60)))
    rows = await queued_rows(runtime)
    assert sorted(row.payload["text"] for row in rows) == sorted(f"message {n}" for n in range(60))
    while await file_queued(runtime, limit=16):
        pass
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 60
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 5
        assert await session.scalar(select(func.count()).select_from(Job)) == 5


async def test_a_message_that_cannot_be_serialised_fails_alone(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    bad = InboundMessage(external_user_id="whatsapp:+15550009999", text="x", meta={"not json": object()})
    outcomes = await asyncio.gather(
        queue_inbound(runtime, channel, whatsapp_message(1)), queue_inbound(runtime, channel, bad),
        return_exceptions=True,
    )
    assert outcomes[0] is None and isinstance(outcomes[1], TypeError)
    assert [row.payload["text"] for row in await queued_rows(runtime)] == ["message 1"]


async def test_a_payload_key_that_is_not_a_string_is_kept_as_one(runtime: Runtime) -> None:
    """As ``json.dumps`` would write it: a plugin's int key in ``meta`` does not refuse the message."""
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, dataclasses.replace(whatsapp_message(1), meta={1: "one", "MessageSid": "SM1"}))
    [row] = await queued_rows(runtime)
    assert row.payload["meta"] == {"1": "one", "MessageSid": "SM1"}


async def test_a_row_that_cannot_be_filed_stays_with_its_error_and_the_rest_are_filed(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, whatsapp_message(1))
    async with runtime.db.session() as session:  # a row this version cannot read
        await session.execute(
            insert(QueuedInbound).values(
                workspace_id=channel.workspace_id, channel_id=channel.id, payload={"unknown": 1}, received_at=utcnow()
            )
        )
    await queue_inbound(runtime, channel, whatsapp_message(2))
    assert await file_queued(runtime) == 3
    assert await inbound_texts(runtime) == ["message 1", "message 2"]
    [kept] = await queued_rows(runtime)
    assert kept.payload == {"unknown": 1} and kept.error is not None and "unknown" in kept.error
    assert await file_queued(runtime) == 0  # skipped from then on, not retried forever


async def test_a_batch_that_fails_is_filed_one_by_one(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, whatsapp_message(1))
    # A sender too long for conversations.external_user_id: PostgreSQL refuses that row,
    # mid-batch; SQLite stores it (it does not enforce lengths).
    await queue_inbound(runtime, channel, InboundMessage(external_user_id="x" * 300, text="too long", provider_message_id="SM" + "9" * 32))
    await queue_inbound(runtime, channel, whatsapp_message(2))
    assert await file_queued(runtime) == 3
    texts = await inbound_texts(runtime)
    if runtime.db.is_sqlite:
        assert texts == ["message 1", "too long", "message 2"]
    else:
        assert texts == ["message 1", "message 2"]
        [kept] = await queued_rows(runtime)
        assert kept.payload["text"] == "too long" and kept.error is not None


async def test_rows_of_a_deleted_channel_go_with_it(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, whatsapp_message(1))
    async with runtime.db.session() as session:
        await session.execute(delete(Channel).where(Channel.id == channel.id))
    assert await queued_rows(runtime) == []
    assert await file_queued(runtime) == 0


async def test_the_worker_files_before_it_claims(sqlite_settings: Settings) -> None:
    """A worker's pass files what is queued, then claims the turn that filing scheduled."""
    runtime = await open_runtime(sqlite_settings)
    try:
        _agent, channel = await make_agent_channel(runtime)
        turns: list[str | None] = []

        async def record_turn(runtime: Runtime, job: Job) -> None:
            turns.append(job.lane)
            await complete(runtime, job)

        register_intake(runtime, "inbound_queue", file_queued)
        register_handler(runtime, "turn", record_turn)
        await queue_inbound(runtime, channel, whatsapp_message(1))
        await Worker(runtime).drain(timeout=10)
        assert await queued_rows(runtime) == []
        async with runtime.db.session() as session:
            conversation_id = await session.scalar(select(Conversation.id))
        assert turns == [conversation_id]
    finally:
        await close_runtime(runtime)


# --- SQLite: the event loop's own append --------------------------------------------------


async def test_the_event_loop_never_waits_for_the_write_lock(sqlite_runtime: Runtime) -> None:
    """Another connection holds the write lock: queueing goes through the database thread,
    the event loop keeps running, and the message is stored once the lock is free."""
    runtime = sqlite_runtime
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, whatsapp_message(0))  # the loop's connection is open
    holder = sqlite3.connect(runtime.db.sqlite_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        queued = asyncio.create_task(queue_inbound(runtime, channel, whatsapp_message(1)))
        ticks = 0
        for _ in range(30):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not queued.done()
        assert ticks == 30
    finally:
        holder.execute("COMMIT")
        holder.close()
    await asyncio.wait_for(queued, 10)
    assert [row.payload["text"] for row in await queued_rows(runtime)] == ["message 0", "message 1"]


async def test_batches_queued_behind_a_waiting_one_keep_their_order(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    _agent, channel = await make_agent_channel(runtime)
    await queue_inbound(runtime, channel, whatsapp_message(0))
    holder = sqlite3.connect(runtime.db.sqlite_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    first = asyncio.create_task(queue_inbound(runtime, channel, whatsapp_message(1)))
    await asyncio.sleep(0.08)  # the database thread is now backing off between lock attempts
    holder.execute("COMMIT")
    holder.close()
    # The lock is free, but message 1 is still on its way: message 2 must not overtake it.
    await queue_inbound(runtime, channel, whatsapp_message(2))
    await first
    assert [row.payload["text"] for row in await queued_rows(runtime)] == ["message 0", "message 1", "message 2"]


async def test_the_write_ahead_log_is_checkpointed(sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's connection never checkpoints; the database thread does, regularly, or the
    log would grow with every append."""
    runtime = sqlite_runtime
    monkeypatch.setattr(inbound_queue, "CHECKPOINT_EVERY", 20)
    _agent, channel = await make_agent_channel(runtime)
    wal = Path(runtime.db.sqlite_path + "-wal")
    for n in range(200):
        await queue_inbound(runtime, channel, whatsapp_message(n))
        if n % 10 == 9:  # let the database thread run what was handed to it (a busy server idles now and then)
            await runtime.db.call_on_thread(lambda: None)
    page = sqlite3.connect(runtime.db.sqlite_path).execute("PRAGMA page_size").fetchone()[0]
    # Each append writes at least one page to the log; checkpointed every 20 appends, the
    # log is reused from its start instead of growing past ~2 x 20 commits' worth.
    assert wal.stat().st_size < 120 * page
    assert len(await queued_rows(runtime)) == 200


async def test_closing_writes_what_is_waiting(sqlite_settings: Settings) -> None:
    runtime = await open_runtime(sqlite_settings)
    _agent, channel = await make_agent_channel(runtime)
    queued = [asyncio.create_task(queue_inbound(runtime, channel, whatsapp_message(n))) for n in range(5)]
    await asyncio.sleep(0)  # queued, not yet appended
    await InboundQueue.of(runtime).aclose()
    assert all(task.done() and task.exception() is None for task in queued)
    await close_runtime(runtime)
    runtime = await open_runtime(sqlite_settings)
    try:
        assert len(await queued_rows(runtime)) == 5
    finally:
        await close_runtime(runtime)


# --- PostgreSQL: several processes ----------------------------------------------------------


async def test_processes_filing_at_once_file_each_message_once_in_order(
    settings: Settings, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("several filing processes: PostgreSQL (SQLite has one writer at a time anyway)")
    first, second = await open_runtime(settings), await open_runtime(settings)
    try:
        _agent, channel = await make_agent_channel(first)
        for n in range(200):  # 20 customers, each with 10 messages, queued through both
            await queue_inbound((first, second)[n % 2], channel, whatsapp_message(n, customer=n % 20))

        async def file_everything(runtime: Runtime) -> None:
            while await file_queued(runtime, limit=7) or await queued_rows(runtime):
                await asyncio.sleep(0)

        await asyncio.gather(file_everything(first), file_everything(second))
        async with first.db.session() as session:
            rows = (await session.execute(select(Message.conversation_id, Message.text).order_by(Message.id))).all()
            turns = (await session.scalars(select(Job.lane).where(Job.kind == "turn"))).all()
        assert len(turns) == len(set(turns)) == 20  # one pending turn per conversation, none twice
        assert len(rows) == 200 and len({text for _, text in rows}) == 200
        by_conversation: dict[str, list[int]] = {}
        for conversation_id, text in rows:
            by_conversation.setdefault(conversation_id, []).append(int(text.split()[1]))
        assert len(by_conversation) == 20
        assert all(numbers == sorted(numbers) for numbers in by_conversation.values())
    finally:
        await close_runtime(first)
        await close_runtime(second)


def test_every_field_of_a_message_is_queued() -> None:
    """A field added to InboundMessage must be carried through the queue (or deliberately not)."""
    channel = Channel(id="c" * 32, workspace_id="w" * 32, kind="whatsapp", name="x")
    payload = json.loads(inbound_queue._payload(channel, whatsapp_message(1)))
    carried = {field.name for field in dataclasses.fields(InboundMessage)} - {"received_at"}  # a column of its own
    assert set(payload) == carried | {"channel_kind"}
