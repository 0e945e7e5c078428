"""Persisting a turn's result, in one transaction, then delivering its replies.

The reply parts, the sent items, the handoff notice, their send jobs, the plugins' queued
jobs, the handoff status, the trace, the answered marks and the turn job's completion
commit together: a crash before it reruns the turn (the checkpointed history dedupes
messages by id, and the graph drops a reply left there unstored), a crash after it cannot
answer twice. A withdrawable turn (:mod:`.superseding`) stores nothing when a newer
customer message is there at commit. Nothing is decided here: the
:class:`~.result.TurnResult` says what the turn did.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from callable_agents.core.contracts.effects import OfferChoices, QueueJob, SendItem, SendLocation
from callable_agents.core.contracts.events import HandoffEvent
from callable_agents.core.conversation.outbound.send import (
    SEND_JOB,
    deliver,
    emit_reply_sent,
    insert_outbound,
    new_outbound,
    send_lane,
)
from callable_agents.core.conversation.inbound.sql import TURN_JOB, TURN_MAX_ATTEMPTS
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.conversation.turn.load import TurnInputs
from callable_agents.core.conversation.turn.memory import Memory
from callable_agents.core.conversation.turn.result import TurnResult
from callable_agents.core.conversation.turn.superseding import Superseded, stopped_since
from callable_agents.core.jobs import enqueue, enqueue_many, mark_done, run_job, wake_worker
from callable_agents.core.models import Conversation, Job, Message, Trace, utcnow
from callable_agents.core.observability.metrics import count_handoff
from callable_agents.core.runtime import Runtime

DEFAULT_HANDOFF_NOTICE = "Thanks for your patience. A person from our team will reply here shortly."

_ANSWERED = (
    update(Message.__table__)
    .where(Message.__table__.c.id.in_(bindparam("message_ids", expanding=True)))
    .values(turn_id=bindparam("turn_id"))
)
_INSERT_TRACE = insert(Trace.__table__)


def _messages_of(result: TurnResult, loaded: TurnInputs, turn_id: int) -> list[Message]:
    """The turn's outbound messages, in order: reply parts, sent items, the handoff notice."""
    channel, conversation_id = loaded.channel, loaded.conversation.id
    stored: list[Message] = []
    parts = result.parts
    for index, part in enumerate(parts):
        meta = {"part": index, "citations": result.citations if index == len(parts) - 1 else [], "outcome": result.outcome}
        stored.append(new_outbound(channel, conversation_id, "agent", part, turn_id=turn_id, meta=meta))
    for effect in result.effects:
        if isinstance(effect, SendItem):
            stored.append(
                new_outbound(channel, conversation_id, "agent", effect.text, turn_id=turn_id, media=list(effect.media), meta={"effect": effect.name})
            )
        elif isinstance(effect, SendLocation):  # text for every channel; the place for one that shows it
            meta = {"effect": effect.name, "location": effect.as_meta()}
            stored.append(new_outbound(channel, conversation_id, "agent", effect.as_text(), turn_id=turn_id, meta=meta))
        elif isinstance(effect, OfferChoices):  # numbered for every channel; buttons for one that shows them
            meta = {"effect": effect.name, "choices": effect.as_meta()}
            stored.append(new_outbound(channel, conversation_id, "agent", effect.as_text(), turn_id=turn_id, meta=meta))
    handed_off = result.hand_off
    if handed_off is not None:
        notice = handed_off.customer_message or DEFAULT_HANDOFF_NOTICE
        stored.append(new_outbound(channel, conversation_id, "system", notice, turn_id=turn_id, meta={"effect": handed_off.name}))
    return stored


def _model_trace(result: TurnResult) -> dict[str, Any]:
    """The trace's model, token usage and tool calls (absent when the turn had none)."""
    found: dict[str, Any] = {}
    if result.model:
        found["model"] = result.model
    if result.usage:
        found["tokens"] = dict(result.usage)
    if result.tool_calls:
        found["tool_calls"] = [dict(call) for call in result.tool_calls]
    return found


async def persist_turn(
    runtime: Runtime,
    job: Job,
    loaded: TurnInputs,
    state: dict[str, Any],
    *,
    withdrawable: bool = False,
    follow_up: bool = False,
) -> None:
    """Store the graph's result (``state["result"]``) with the job's completion, publish it,
    then run the turn's own sends.

    ``withdrawable``: raise :class:`~.superseding.Superseded`, storing nothing, when the
    conversation has a customer message newer than those the turn answers (filed by any
    process). ``follow_up``: queue another turn for the messages this one left (the
    ``queue`` reply policy).
    """
    result: TurnResult = state["result"]
    conversation, channel, pending = loaded.conversation, loaded.channel, loaded.pending
    conversation_id = conversation.id
    channel_type = runtime.plugins.channels.get(channel.kind)
    memory = await Memory.of(runtime)
    handed_off = result.hand_off
    queued = [effect for effect in result.effects if isinstance(effect, QueueJob)]
    delivered_by_storing = channel_type.send is None
    stored = _messages_of(result, loaded, job.id)
    if delivered_by_storing:
        for message in stored:
            message.status = "delivered"
    passages = state.get("passages") or []
    trace = dict(
        workspace_id=channel.workspace_id,
        conversation_id=conversation_id,
        step="turn",
        created_at=utcnow(),
        data={
            "job_id": job.id,
            "answered": [m.id for m in pending],
            "outcome": result.outcome,
            "passages": [{k: p.get(k) for k in ("title", "url", "score")} for p in passages],
            "tool_rounds": state.get("tool_rounds", 0),
            "effects": [effect.name for effect in result.effects],
            "parts": len(result.parts),
            **_model_trace(result),
        },
    )
    sends: list[Job] = []

    def store_result(session: Session) -> None:
        lane = send_lane(conversation_id)
        stopped, lane_busy = stopped_since(session, conversation_id, pending[-1].id if withdrawable else None, lane)
        if stopped is not None:
            raise Superseded(stopped)
        if handed_off is not None:
            session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(status="human", handoff_reason=handed_off.reason[:2000], updated_at=utcnow())
            )
        for effect in queued:
            enqueue(session, channel.workspace_id, effect.kind, effect.payload, lane=effect.lane)
            lane_busy = lane_busy or effect.lane == lane  # a plugin's job queued in the send lane
        insert_outbound(session, stored)
        session.execute(_INSERT_TRACE, trace)
        if not delivered_by_storing:
            # Claimed by this worker when the send lane is free: the replies go out right after
            # the commit, in order, without waiting for a claim.
            sends.extend(
                enqueue_many(
                    session, channel.workspace_id, SEND_JOB, [{"message_id": m.id} for m in stored],
                    lane=lane,
                    claim_for=(job.locked_by, runtime.settings.job_lease_seconds) if job.locked_by else None,
                    lane_busy=lane_busy,
                )
            )
        session.execute(_ANSWERED, {"turn_id": job.id, "message_ids": [m.id for m in pending]})
        if follow_up:
            enqueue(session, channel.workspace_id, TURN_JOB, {"conversation_id": conversation_id}, lane=conversation_id, max_attempts=TURN_MAX_ATTEMPTS)
        mark_done(session, job)
        memory.prune_in(session, conversation_id)

    await runtime.db.run(store_result)
    hub = StreamHub.of(runtime)
    for message in stored:
        hub.publish(conversation_id, {"type": "message", "id": message.id, "author": message.author, "text": message.text, "media": message.media, "meta": message.meta})
    if delivered_by_storing:
        for message in stored:
            await emit_reply_sent(runtime, channel, message)
    elif not sends:
        wake_worker(runtime)
    if queued or follow_up:
        wake_worker(runtime)
    if handed_off is not None:
        count_handoff("agent")
        hub.publish(conversation_id, {"type": "status", "status": "human"})
        await runtime.plugins.emit(
            "conversation_handed_off",
            event=HandoffEvent(
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                conversation_id=conversation_id,
                reason=handed_off.reason,
            ),
        )
    # The turn's own sends: it holds their messages, conversation and channel already.
    by_id = {message.id: message for message in stored}
    for send in sends:
        message = by_id[send.payload["message_id"]]
        await run_job(runtime, send, handler=functools.partial(deliver, message=message, conversation=conversation, channel=channel))



async def store_superseded(runtime: Runtime, job: Job, loaded: TurnInputs, *, reason: str = "superseded") -> None:
    """A superseded turn: its job done and a trace saying so, nothing else. The turn job the
    newer message brought answers every unanswered message, this turn's included (taken
    over: the person answers them)."""
    trace = dict(
        workspace_id=loaded.channel.workspace_id,
        conversation_id=loaded.conversation.id,
        step="turn",
        created_at=utcnow(),
        data={"job_id": job.id, "answered": [], "superseded": [m.id for m in loaded.pending], "outcome": reason},
    )

    def store(session: Session) -> None:
        session.execute(_INSERT_TRACE, trace)
        mark_done(session, job)

    await runtime.db.run(store)
