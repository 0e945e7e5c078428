"""How replies leave: pushed through a channel's ``send`` by the turn that wrote them, or
delivered by storing (``send=None``). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType, ConversationInfo, OutboundMessage, SendResult
from callable_agents.core.contracts.events import MessageEvent
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.jobs import Worker, enqueue
from callable_agents.core.conversation.messages import delivery_progress, record_delivery_progress
from callable_agents.core.conversation.people import send_human_reply
from callable_agents.core.models import Conversation, Job, Message, utcnow
from callable_agents.core.runtime import Runtime
from tests.conftest import make_settings
from tests.core.pipeline_helpers import make_agent_channel, outbound, say

SHORT = 60  # the recording channel's message limit: the offline "don't know" reply splits


class RecordingChannel:
    """A channel plugin that pushes replies (records them) and notes every reply_sent."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.reply_events: list[MessageEvent] = []

    async def send(self, runtime: Runtime, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"rec-{message.message_id}", status="sent")

    @hookimpl
    def register_channels(self) -> list[ChannelType]:
        return [
            ChannelType(
                name="recording", description="records what it sends", config_schema=BaseModel,
                capabilities=ChannelCapabilities(max_message_length=SHORT, formatting="plain"), send=self.send,
            )
        ]

    @hookimpl
    def reply_sent(self, event: MessageEvent) -> None:
        self.reply_events.append(event)


@pytest.fixture
def recording() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
async def runtime(tmp_path: Path, database_url: str, recording: RecordingChannel) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path / "data", database_url)
    runtime = await open_runtime(settings, extra_plugins=[("recording", recording)])
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def _send_jobs(runtime: Runtime, conversation_id: str) -> list[Job]:
    async with runtime.db.sessions() as session:
        rows = await session.scalars(select(Job).where(Job.lane == f"send:{conversation_id}").order_by(Job.id))
        return list(rows.all())


async def test_the_turn_sends_its_replies_in_order_without_a_claim(runtime: Runtime, recording: RecordingChannel) -> None:
    _agent, channel = await make_agent_channel(runtime, kind="recording")
    accepted = await say(runtime, channel, "Do you deliver to the moon on Sundays?")
    worker = Worker(runtime)

    await worker.drain(lanes=[accepted.conversation_id])  # the turn's lane only

    replies = await outbound(runtime, accepted.conversation_id)
    assert len(replies) >= 2 and all(len(m.text) <= SHORT for m in replies)
    assert [m.message_id for m in recording.sent] == [m.id for m in replies]  # all of them, in order
    assert all(m.status == "sent" and m.provider_message_id == f"rec-{m.id}" for m in replies)
    jobs = await _send_jobs(runtime, accepted.conversation_id)
    assert [(j.status, j.attempts, j.locked_by) for j in jobs] == [("done", 1, worker.worker_id)] * len(replies)
    assert [e.message_id for e in recording.reply_events] == [m.id for m in replies]


async def test_sends_wait_behind_an_earlier_send_of_the_conversation(runtime: Runtime, recording: RecordingChannel) -> None:
    _agent, channel = await make_agent_channel(runtime, kind="recording")
    first = await say(runtime, channel, "Hello?", sid="SM" + "1" * 32)
    # An earlier reply still waiting for its retry holds the conversation's send lane.
    async with runtime.db.session() as session:
        earlier = Message(
            workspace_id=channel.workspace_id, conversation_id=first.conversation_id, channel_id=channel.id,
            direction="outbound", author="human", text="An earlier reply", status="pending",
        )
        session.add(earlier)
        await session.flush()
        enqueue(
            session, channel.workspace_id, "send", {"message_id": earlier.id},
            lane=f"send:{first.conversation_id}", run_after=utcnow() + timedelta(seconds=0.5),
        )
    worker = Worker(runtime)

    await worker.drain(lanes=[first.conversation_id])
    assert recording.sent == []  # the turn's replies were queued behind it, not sent out of order
    await worker.drain(lanes=[f"send:{first.conversation_id}"])

    replies = await outbound(runtime, first.conversation_id)
    assert replies[0].id == earlier.id
    assert [m.message_id for m in recording.sent] == [m.id for m in replies]
    assert all(j.status == "done" for j in await _send_jobs(runtime, first.conversation_id))


async def test_a_channel_that_delivers_by_storing_gets_no_send_job(runtime: Runtime, recording: RecordingChannel) -> None:
    _agent, channel = await make_agent_channel(runtime, kind="terminal")  # send=None
    accepted = await say(runtime, channel, "Do you deliver to the moon on Sundays?")

    await Worker(runtime).drain()

    replies = await outbound(runtime, accepted.conversation_id)
    assert replies and all(m.status == "delivered" for m in replies)
    assert await _send_jobs(runtime, accepted.conversation_id) == []
    assert [e.message_id for e in recording.reply_events] == [m.id for m in replies]


async def test_send_gets_the_conversation_it_needs_on_both_paths(runtime: Runtime, recording: RecordingChannel) -> None:
    """``send`` is told about the conversation (no channel reads the ORM for it): by the turn
    from what it holds, and by a queued send job from its one read."""
    _agent, channel = await make_agent_channel(runtime, kind="recording")
    accepted = await say(runtime, channel, "Hello?", user="visitor-42")
    await Worker(runtime).drain(lanes=[accepted.conversation_id, f"send:{accepted.conversation_id}"])
    async with runtime.db.session() as session:
        conversation = await session.get(Conversation, accepted.conversation_id)
        assert conversation is not None
        expected = ConversationInfo(
            external_user_id="visitor-42",
            channel_kind="recording",
            integration_id=channel.integration_id,
            profile=dict(conversation.profile or {}),
            last_inbound_at=conversation.last_inbound_at,
            opted_out=False,
            status="bot",
        )
    assert recording.sent and all(sent.conversation == expected for sent in recording.sent)  # the turn's own sends
    assert [sent.part for sent in recording.sent] == list(range(len(recording.sent)))

    recording.sent.clear()
    await send_human_reply(runtime, channel.workspace_id, accepted.conversation_id, "A person here.")
    await Worker(runtime).drain(lanes=[f"send:{accepted.conversation_id}"])
    [sent] = recording.sent  # through the send job
    assert sent.conversation == expected and sent.part == 0 and sent.text == "A person here."


async def test_delivery_progress_merges_into_what_the_message_records(runtime: Runtime, recording: RecordingChannel) -> None:
    """A channel's progress notes replace the keys they name and keep the others (on
    PostgreSQL one ``jsonb`` merge in the database, on SQLite a read and a write)."""
    _agent, channel = await make_agent_channel(runtime, kind="recording")
    accepted = await say(runtime, channel, "Do you deliver?")
    await Worker(runtime).drain()
    reply = (await outbound(runtime, accepted.conversation_id))[0]
    recorded = dict(reply.meta)
    assert recorded  # the reply's own: part, citations, outcome
    await record_delivery_progress(runtime, reply.id, {"pieces": ["a"], "attempt": {"piece": 1, "body": "é \"quoted\""}})
    await record_delivery_progress(runtime, reply.id, {"pieces": ["a", "b"], "attempt": None})
    assert await delivery_progress(runtime, reply.id) == {**recorded, "pieces": ["a", "b"], "attempt": None}
    assert await delivery_progress(runtime, reply.id + 1000) == {}  # a message that is gone
