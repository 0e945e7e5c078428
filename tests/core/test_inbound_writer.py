"""Group commit of inbound messages: concurrent, deduplicated, one pending turn per conversation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, func, select

from callable_agents.core.models import Conversation, Job, Message
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
from callable_agents.core.runtime import Runtime
from tests.core.pipeline_helpers import make_agent_channel


async def test_concurrent_messages_are_stored_once_each(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)

    def message(n: int) -> InboundMessage:
        return InboundMessage(
            external_user_id=f"user-{n % 8}", text=f"message {n}", provider_message_id=f"SM{n:032d}",
            profile={"name": f"User {n % 8}"},
        )

    first = await asyncio.gather(*(accept_inbound(runtime, channel, message(n)) for n in range(40)))
    # Retries of 10 of them, and a repeat inside the same burst, arrive concurrently with 8 new ones.
    second = await asyncio.gather(
        *(accept_inbound(runtime, channel, message(n)) for n in [*range(10), *range(40, 48), 40])
    )
    assert not any(a.duplicate for a in first)
    assert [a.duplicate for a in second[:10]] == [True] * 10
    assert [a.message_id for a in second[:10]] == [a.message_id for a in first[:10]]
    new = second[10:18]
    repeat = second[18]
    assert sum(not a.duplicate for a in [*new, repeat]) == 8 and repeat.message_id == new[0].message_id

    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 48
        conversations = (await session.scalars(select(Conversation))).all()
        assert len(conversations) == 8
        assert all(c.last_inbound_at is not None and c.profile["name"].startswith("User") for c in conversations)
        lanes = (await session.scalars(select(Job.lane).where(Job.kind == "turn", Job.status == "pending"))).all()
        assert sorted(lanes) == sorted(c.id for c in conversations)  # one pending turn each


async def test_the_lookups_are_one_statement_whatever_the_batch_size(runtime: Runtime) -> None:
    """PostgreSQL: the conversation and dedupe lookups go as one text (the keys as arrays), so
    the driver prepares them once; a row-value IN list was a new text per batch size, planned
    anew each time (2 ms for 24 keys)."""
    if runtime.db.is_sqlite:
        pytest.skip("SQLite: the writer's own SQL, per channel (see test_inbound_sql)")
    _agent, channel = await make_agent_channel(runtime)
    lookups: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith(("SELECT conversations.id", "SELECT messages.id")):
            lookups.append(statement)

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        for size in (1, 5, 24):
            burst = [
                InboundMessage(external_user_id=f"user-{size}-{n}", text="hi", provider_message_id=f"SM{size:04d}{n:028d}")
                for n in range(size)
            ]
            await asyncio.gather(*(accept_inbound(runtime, channel, m) for m in burst))
            retried = await asyncio.gather(*(accept_inbound(runtime, channel, m) for m in burst))  # the dedupe lookup
            assert all(r.duplicate for r in retried)
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    assert len({s for s in lookups if s.startswith("SELECT conversations.id")}) == 1
    assert len({s for s in lookups if s.startswith("SELECT messages.id")}) == 1
    assert len(lookups) >= 6


async def test_messages_without_provider_ids_are_all_kept(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    results = await asyncio.gather(
        *(accept_inbound(runtime, channel, InboundMessage(external_user_id="web:a", text=f"hi {n}")) for n in range(12))
    )
    assert len({r.message_id for r in results}) == 12 and not any(r.duplicate for r in results)
    async with runtime.db.session() as session:
        texts = (await session.scalars(select(Message.text).order_by(Message.id))).all()
    assert sorted(texts) == sorted(f"hi {n}" for n in range(12))


async def test_a_closed_conversation_reopens(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    first = await accept_inbound(runtime, channel, InboundMessage(external_user_id="u", text="one"))
    async with runtime.db.session() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        conversation.status = "closed"
        await session.execute(Job.__table__.delete())
    await accept_inbound(runtime, channel, InboundMessage(external_user_id="u", text="two"))
    async with runtime.db.session() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None and conversation.status == "bot"
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "turn")) == 1


async def test_stored_rows_read_back_as_sent(runtime: Runtime) -> None:
    """Every column the writer stores (plain SQL on SQLite, Core elsewhere) reads back through the ORM."""
    _agent, channel = await make_agent_channel(runtime)
    received_at = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=timezone.utc)
    inbound = InboundMessage(
        external_user_id="whatsapp:+15550001111",
        text="Photo of the cake 🎂",
        provider_message_id="SM" + "ab" * 16,
        media=[{"url": "https://api.twilio.com/media/1", "content_type": "image/jpeg"}],
        profile={"ProfileName": "Ana", "WaId": "15550001111"},
        meta={"Body": "Photo of the cake 🎂", "NumMedia": "1", "ButtonPayload": None},
        received_at=received_at,
    )
    accepted = await accept_inbound(runtime, channel, inbound)
    async with runtime.db.session() as session:
        message = await session.get(Message, accepted.message_id)
        conversation = await session.get(Conversation, accepted.conversation_id)
        job = await session.scalar(select(Job).where(Job.lane == accepted.conversation_id))
    assert message is not None and conversation is not None and job is not None
    assert (message.text, message.media, message.meta) == (inbound.text, inbound.media, inbound.meta)
    assert (message.direction, message.author, message.status) == ("inbound", "customer", "received")
    assert message.created_at == received_at and message.updated_at.tzinfo is not None
    assert conversation.profile == inbound.profile and conversation.last_inbound_at == received_at
    assert conversation.opted_out is False and conversation.status == "bot"
    assert (job.kind, job.status, job.payload) == ("turn", "pending", {"conversation_id": accepted.conversation_id})
    assert job.run_after.tzinfo is not None and job.attempts == 0


async def test_a_caller_that_goes_away_does_not_lose_its_message(runtime: Runtime) -> None:
    _agent, channel = await make_agent_channel(runtime)
    waiting = [
        asyncio.create_task(
            accept_inbound(runtime, channel, InboundMessage(external_user_id="u", text=f"m{n}", provider_message_id=f"SM{n:032d}"))
        )
        for n in range(6)
    ]
    await asyncio.sleep(0)  # submitted
    for task in waiting[:3]:  # e.g. Twilio's connection closed while the batch was written
        task.cancel()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[:3])

    retried = await accept_inbound(
        runtime, channel, InboundMessage(external_user_id="u", text="m0", provider_message_id=f"SM{0:032d}")
    )
    assert retried.duplicate  # stored the first time, although its caller was gone
    async with runtime.db.session() as session:
        texts = (await session.scalars(select(Message.text).order_by(Message.id))).all()
    assert sorted(texts) == [f"m{n}" for n in range(6)]


async def test_a_message_that_cannot_be_stored_fails_alone(runtime: Runtime) -> None:
    """A batch that fails is stored again message by message: the others are kept."""
    _agent, channel = await make_agent_channel(runtime)

    def message(n: int, meta: dict[str, object]) -> InboundMessage:
        return InboundMessage(external_user_id=f"u{n}", text=f"m{n}", provider_message_id=f"SM{n:032d}", meta=meta)

    unstorable = {"Body": object()}  # not JSON: its row cannot be written
    outcomes = await asyncio.gather(
        *(accept_inbound(runtime, channel, message(n, unstorable if n == 2 else {})) for n in range(5)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], TypeError)
    assert all(not isinstance(outcome, BaseException) for n, outcome in enumerate(outcomes) if n != 2)
    async with runtime.db.session() as session:
        texts = (await session.scalars(select(Message.text).order_by(Message.id))).all()
        lanes = (await session.scalars(select(Job.lane).where(Job.kind == "turn"))).all()
    assert sorted(texts) == ["m0", "m1", "m3", "m4"]
    assert len(lanes) == 4  # a turn for each stored message's conversation, none for the failed one


async def test_a_message_the_database_refuses_fails_alone(runtime: Runtime) -> None:
    """PostgreSQL refuses an over-long sender mid-transaction; the batch's savepoint keeps the rest."""
    if runtime.db.is_sqlite:
        pytest.skip("SQLite does not enforce VARCHAR lengths: nothing to refuse")
    _agent, channel = await make_agent_channel(runtime)
    outcomes = await asyncio.gather(
        *(
            accept_inbound(
                runtime, channel,
                InboundMessage(external_user_id="u" * 300 if n == 1 else f"u{n}", text=f"m{n}", provider_message_id=f"SM{n:032d}"),
            )
            for n in range(4)
        ),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Exception)
    assert all(not isinstance(outcome, BaseException) for n, outcome in enumerate(outcomes) if n != 1)
    async with runtime.db.session() as session:
        texts = (await session.scalars(select(Message.text).order_by(Message.id))).all()
    assert sorted(texts) == ["m0", "m2", "m3"]


async def test_closing_writes_what_is_waiting_first(runtime: Runtime) -> None:
    from callable_agents.core.conversation.inbound.writer import InboundWriter

    _agent, channel = await make_agent_channel(runtime)
    waiting = [
        asyncio.create_task(accept_inbound(runtime, channel, InboundMessage(external_user_id=f"u{n}", text=f"m{n}")))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # submitted, not yet written
    await InboundWriter.of(runtime).aclose()
    assert all(task.done() for task in waiting)
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 20
