"""The chat pipeline, the same for every channel.

    inbound message → conversation (found or created) → stored message + turn job (one
    transaction) → worker: graph (or the human queue) → stored reply parts + send jobs (one
    transaction) → worker: the channel's ``send`` with retries.

A channel plugin calls :func:`accept_inbound` and answers its provider at once; nothing on
the request path waits for the model. A channel that needs no more than an acknowledgement
(WhatsApp) calls :func:`queue_inbound` instead: the message is made durable with one
append, and the worker files it into its conversation before claiming jobs
(:mod:`.inbound_queue`). Dedupe is a unique constraint on (channel, provider
message id), so a retried webhook is recognised atomically and never answered twice.

**Burst coalescing**: a turn job waits ``coalesce_seconds`` after the latest message; a
message arriving while a turn is still pending joins it (its start moves later), and one
arriving while a turn runs gets one new turn after it (see :mod:`.inbound_writer`). A turn
answers every customer message of the conversation not yet answered, together.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from callable_agents.core.contracts.channels import TurnStarted
from callable_agents.core.contracts.events import HandoffEvent, MessageEvent
from callable_agents.core.conversation.inbound.queue import file_queued, queue_inbound  # noqa: F401 - queue_inbound: for channel plugins
from callable_agents.core.conversation.inbound.writer import TURN_JOB, InboundMessage, InboundWriter, announce_received
from callable_agents.core.jobs import enqueue, enqueue_many, mark_done, run_job, wake_worker
from callable_agents.core.models import Agent, Channel, Conversation, Job, Message, Trace, utcnow
from callable_agents.core.runtime import Runtime
from callable_agents.core.conversation.streams import StreamHub

log = logging.getLogger(__name__)

SEND_JOB = "send"
WEBHOOK_JOB = "webhook"


@dataclass(frozen=True)
class Accepted:
    message_id: int
    conversation_id: str
    duplicate: bool  # True: this provider message id was accepted before; nothing was added


async def accept_inbound(runtime: Runtime, channel: Channel, inbound: InboundMessage) -> Accepted:
    """Store a customer's message and its turn job, committed before this returns.

    Returns ``duplicate=True`` (and stores nothing) when this provider message id was
    accepted before on this channel. Concurrent calls are written together in one
    transaction by the process's :class:`InboundWriter` (group commit).
    """
    stored = await InboundWriter.of(runtime).submit(channel, inbound)
    if not stored.duplicate:
        await announce_received(runtime, channel, stored, inbound)
    return Accepted(stored.message_id, stored.conversation_id, duplicate=stored.duplicate)


# --------------------------------------------------------------------------- turns

HANDLED_BY_PERSON = 0  # Message.turn_id of customer messages a person answered during a handoff
DEFAULT_HANDOFF_NOTICE = "Thanks for your patience. A person from our team will reply here shortly."


async def compiled_graph(runtime: Runtime) -> Any:
    """The agent graph compiled with the database checkpointer (one per process)."""
    graph = runtime.services.graph
    if graph is None:
        from callable_agents.core.conversation.turn.graph import build_graph
        from callable_agents.core.conversation.turn.memory import Memory

        memory = await Memory.of(runtime)
        graph = runtime.services.graph = build_graph().compile(checkpointer=memory.saver)
    return graph


async def _as_graph_message(runtime: Runtime, message: Message, channel_type: Any, accepts_images: bool) -> Any:
    """A stored message as the model sees it; a customer's media through the channel's
    ``media_input`` (image input, transcripts) or, without one, as a short note."""
    from langchain_core.messages import AIMessage, HumanMessage

    text = message.text or ""
    if message.author != "customer":
        return AIMessage(content=f"(A person from the team replied to the customer:) {text}", id=f"msg-{message.id}")
    if message.media and channel_type.media_input is not None:
        try:
            blocks = await channel_type.media_input(runtime, message, accepts_images)
        except Exception:  # the words still get answered if the media can't be read
            log.warning("channel %s: media_input failed for message %s", channel_type.name, message.id, exc_info=True)
            blocks = [{"type": "text", "text": _media_note(item)} for item in message.media]
        return HumanMessage(content=[{"type": "text", "text": text or "(no text)"}, *blocks], id=f"msg-{message.id}")
    notes = [_media_note(item) for item in message.media or []]
    content = "\n".join([text, *notes]).strip() or "(empty message)"
    return HumanMessage(content=content, id=f"msg-{message.id}")


def _media_note(item: dict[str, Any]) -> str:
    if item.get("note"):  # a channel may have described it already (transcript, caption)
        return str(item["note"])
    kind = str(item.get("content_type") or "").split("/")[0]
    if kind == "image":
        return "[The customer sent an image.]"
    if kind == "audio":
        return "[The customer sent a voice note; you can't listen to voice notes yet, say so politely.]"
    return f"[The customer sent a file ({item.get('content_type') or 'unknown type'}).]"


@dataclass
class _TurnInputs:
    """What a turn reads before it runs, in one read."""

    conversation: Conversation
    channel: Channel
    agent: Agent
    pending: list[Message]  # the customer's unanswered messages
    context: list[Message]  # a person's replies (and what they answered) since the last turn


@functools.cache
def _turn_statements() -> tuple[Any, Any]:
    """The two reads of :func:`_load_turn`, built once (building costs more than running them)."""
    conversation_id = bindparam("conversation_id", type_=Message.conversation_id.type)
    header = (
        select(Conversation, Channel, Agent)
        .join(Channel, Channel.id == Conversation.channel_id)
        .join(Agent, Agent.id == Channel.agent_id)
        .where(Conversation.id == conversation_id)
    )
    last_turn_message = (
        select(func.max(Message.id))
        .where(Message.conversation_id == conversation_id, Message.turn_id > 0)
        .scalar_subquery()
    )
    unanswered = and_(Message.author == "customer", Message.turn_id.is_(None))
    from_a_person = and_(
        Message.id > func.coalesce(last_turn_message, 0),
        or_(Message.author == "human", and_(Message.author == "customer", Message.turn_id == HANDLED_BY_PERSON)),
    )
    messages = (
        select(Message)
        .where(Message.conversation_id == conversation_id, or_(unanswered, from_a_person))
        .order_by(Message.id)
    )
    return header, messages


def _load_turn(session: Session, conversation_id: str) -> _TurnInputs | None:
    """The conversation with its channel and agent, and the messages the turn answers.

    None when the conversation is gone or handed off (the inbox has its messages).
    """
    header, messages_statement = _turn_statements()
    parameters = {"conversation_id": conversation_id}
    row = session.execute(header, parameters).first()
    if row is None or row[0].status != "bot":
        return None
    conversation, channel, agent = row
    messages = session.scalars(messages_statement, parameters).all()
    pending = [m for m in messages if m.author == "customer" and m.turn_id is None]
    context = [m for m in messages if not (m.author == "customer" and m.turn_id is None)]
    return _TurnInputs(conversation, channel, agent, pending, context)


async def run_turn(runtime: Runtime, job: Job) -> None:
    """Answer a conversation's unanswered customer messages, together, once.

    The reply parts, their send jobs, the answered marks and the job's completion commit in
    one transaction: a crash before it reruns the turn (the checkpointed history dedupes
    messages by id), a crash after it cannot answer twice.
    """
    from callable_agents.core.conversation.turn.graph import AgentContext
    from callable_agents.core.jobs import complete
    from callable_agents.core.conversation.turn.memory import Memory
    from callable_agents.core.conversation.turn.deps import resolve_turn_deps

    conversation_id = job.payload["conversation_id"]
    loaded = await runtime.db.run(lambda session: _load_turn(session, conversation_id), write=False)
    if loaded is None or not loaded.pending:
        await complete(runtime, job)
        return
    conversation, channel, agent, pending = loaded.conversation, loaded.channel, loaded.agent, loaded.pending
    channel_type = runtime.plugins.channels.get(channel.kind)
    await _announce_turn(runtime, channel_type, channel, conversation, pending)
    deps = await resolve_turn_deps(
        runtime,
        agent,
        capabilities=channel_type.capabilities,
        channel_kind=channel.kind,
        conversation_id=conversation_id,
    )
    graph = await compiled_graph(runtime)
    memory = await Memory.of(runtime)
    batch = sorted([*loaded.context, *pending], key=lambda m: m.id)
    hub = StreamHub.of(runtime)
    final_state: dict[str, Any] = {}
    accepts_images = bool(deps.models) and bool((agent.model_settings or {}).get("accepts_images"))
    inputs = [await _as_graph_message(runtime, m, channel_type, accepts_images) for m in batch]
    # Channels that show replies as they are written get the model's tokens; the others
    # (WhatsApp) get one response, which costs less than a stream of chunks. Decided by the
    # channel, not by who is watching now: a visitor's stream may subscribe a moment after
    # the turn starts, and should still see the rest of the tokens.
    streaming = channel_type.capabilities.streaming
    async for mode, chunk in graph.astream(
        {"messages": inputs},
        {"configurable": {"thread_id": conversation_id}},
        context=AgentContext(workspace=channel.workspace_id, agent=agent.name, channel_kind=channel.kind, deps=deps),
        stream_mode=["messages", "values"] if streaming else ["values"],
        # One checkpoint per turn: a turn that dies midway is rerun whole from its job.
        durability="exit",
    ):
        if mode == "values":
            final_state = chunk
        elif mode == "messages" and hub.has_subscribers(conversation_id):
            token, metadata = chunk
            if metadata.get("langgraph_node") == "reason" and isinstance(token.content, str) and token.content:
                hub.publish(conversation_id, {"type": "token", "text": token.content})
    parts: list[str] = list(final_state.get("reply") or [])
    citations = [
        {key: passage.get(key) for key in ("title", "url", "page", "source_id")}
        for passage in final_state.get("passages") or []
        if passage.get("url")
    ] if final_state.get("outcome") in ("answered", "offline") else []  # a fallback cites nothing
    handed_off = next((effect for effect in deps.effects if effect.get("type") == "handoff"), None)
    delivered_by_storing = channel_type.send is None
    stored: list[Message] = []
    for index, part in enumerate(parts):
        stored.append(
            _outbound(channel, conversation_id, "agent", part, turn_id=job.id, meta={"part": index, "citations": citations if index == len(parts) - 1 else [], "outcome": final_state.get("outcome")})
        )
    for effect in deps.effects:
        if effect.get("type") == "send":
            stored.append(
                _outbound(channel, conversation_id, "agent", effect.get("text") or "", turn_id=job.id, media=effect.get("media") or [], meta={"effect": "send_info"})
            )
    if handed_off is not None:
        notice = handed_off.get("customer_message") or DEFAULT_HANDOFF_NOTICE
        stored.append(_outbound(channel, conversation_id, "system", notice, turn_id=job.id, meta={"effect": "handoff"}))
    if delivered_by_storing:
        for message in stored:
            message.status = "delivered"
    trace = dict(
        workspace_id=channel.workspace_id,
        conversation_id=conversation_id,
        step="turn",
        created_at=utcnow(),
        data={
            "job_id": job.id,
            "answered": [m.id for m in pending],
            "outcome": final_state.get("outcome"),
            "passages": [{k: p.get(k) for k in ("title", "url", "score")} for p in final_state.get("passages") or []],
            "tool_rounds": final_state.get("tool_rounds", 0),
            "effects": [e.get("type") for e in deps.effects],
            "parts": len(parts),
        },
    )

    sends: list[Job] = []

    def store_result(session: Session) -> None:
        if handed_off is not None:
            session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(status="human", handoff_reason=str(handed_off.get("reason") or "")[:2000], updated_at=utcnow())
            )
            if handed_off.get("webhook"):
                enqueue(
                    session,
                    channel.workspace_id,
                    WEBHOOK_JOB,
                    {"conversation_id": conversation_id, "webhook": handed_off["webhook"], "reason": handed_off.get("reason")},
                    lane=f"webhook:{conversation_id}",
                )
        _insert_outbound(session, stored)
        session.execute(_INSERT_TRACE, trace)
        if not delivered_by_storing:
            # Claimed by this worker when the send lane is free: the replies go out right after
            # the commit, in order, without waiting for a claim.
            sends.extend(
                enqueue_many(
                    session, channel.workspace_id, SEND_JOB, [{"message_id": m.id} for m in stored],
                    lane=f"send:{conversation_id}",
                    claim_for=(job.locked_by, runtime.settings.job_lease_seconds) if job.locked_by else None,
                )
            )
        session.execute(_ANSWERED, {"turn_id": job.id, "message_ids": [m.id for m in pending]})
        mark_done(session, job)
        memory.prune_in(session, conversation_id)

    await runtime.db.run(store_result)
    if not memory.prunes_in_transaction:
        await memory.prune(conversation_id)
    for message in stored:
        hub.publish(conversation_id, {"type": "message", "id": message.id, "author": message.author, "text": message.text, "media": message.media, "meta": message.meta})
    if delivered_by_storing:
        for message in stored:
            await _emit_reply_sent(runtime, channel, message)
    elif not sends:
        wake_worker(runtime)
    if handed_off is not None:
        if handed_off.get("webhook"):
            wake_worker(runtime)
        hub.publish(conversation_id, {"type": "status", "status": "human"})
        await runtime.plugins.emit(
            "conversation_handed_off",
            event=HandoffEvent(
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                conversation_id=conversation_id,
                reason=str(handed_off.get("reason") or ""),
            ),
        )
    # The turn's own sends: it holds their messages, conversation and channel already.
    by_id = {message.id: message for message in stored}
    for send in sends:
        message = by_id[send.payload["message_id"]]
        await run_job(runtime, send, handler=functools.partial(_deliver, message=message, conversation=conversation, channel=channel))


_ANSWERED = (
    update(Message.__table__)
    .where(Message.__table__.c.id.in_(bindparam("message_ids", expanding=True)))
    .values(turn_id=bindparam("turn_id"))
)
_INSERT_TRACE = insert(Trace.__table__)
_INSERT_OUTBOUND = insert(Message.__table__).returning(Message.__table__.c.id, sort_by_parameter_order=True)
_OUTBOUND_COLUMNS = (
    "workspace_id", "conversation_id", "channel_id", "direction", "author", "text", "media", "meta", "status", "turn_id",
)


def _insert_outbound(session: Session, messages: list[Message]) -> None:
    """Insert new outbound messages in one statement and give each its id (Core: no unit of work)."""
    if not messages:
        return
    now = utcnow()
    rows = [{**{name: getattr(m, name) for name in _OUTBOUND_COLUMNS}, "created_at": now, "updated_at": now} for m in messages]
    returned = session.execute(_INSERT_OUTBOUND, rows)
    for message, (message_id,) in zip(messages, returned.all(), strict=True):
        message.id = message_id


async def _announce_turn(
    runtime: Runtime, channel_type: Any, channel: Channel, conversation: Conversation, pending: list[Message]
) -> None:
    if channel_type.on_turn_started is None:
        return
    try:
        await channel_type.on_turn_started(
            runtime,
            TurnStarted(
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                conversation_id=conversation.id,
                external_user_id=conversation.external_user_id,
                provider_message_ids=[m.provider_message_id for m in pending if m.provider_message_id],
            ),
        )
    except Exception:  # showing "typing" is a nicety; the turn goes on
        log.warning("channel %s: on_turn_started failed", channel.kind, exc_info=True)


def _outbound(
    channel: Channel,
    conversation_id: str,
    author: str,
    text: str,
    *,
    turn_id: int | None = None,
    media: list[dict[str, Any]] | None = None,
    meta: dict[str, Any] | None = None,
) -> Message:
    return Message(
        workspace_id=channel.workspace_id,
        conversation_id=conversation_id,
        channel_id=channel.id,
        direction="outbound",
        author=author,
        text=text,
        media=media or [],
        meta=meta or {},
        status="pending",
        turn_id=turn_id,
    )


# --------------------------------------------------------------------------- sending


async def send_message(runtime: Runtime, job: Job) -> None:
    """Deliver one stored outbound message through its channel's ``send``.

    Transient channel errors are retried by the job system with backoff; permanent ones are
    recorded on the message (status ``failed`` + the provider's code), which ends the job.
    """
    from callable_agents.core.jobs import PermanentFailure

    message_id = job.payload["message_id"]

    def load(session: Session) -> tuple[Message, Conversation, Channel] | None:
        row = session.execute(
            select(Message, Conversation, Channel)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Channel, Channel.id == Message.channel_id)
            .where(Message.id == message_id)
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    loaded = await runtime.db.run(load, write=False)
    if loaded is None:
        raise PermanentFailure(f"message {message_id} no longer exists")
    await _deliver(runtime, job, *loaded)


async def _deliver(runtime: Runtime, job: Job, message: Message, conversation: Conversation, channel: Channel) -> None:
    """The send job's work once its message, conversation and channel are at hand."""
    from callable_agents.core.contracts.channels import OutboundMessage, SendError
    from callable_agents.core.jobs import RetryLater

    if message.status not in ("pending", "sending"):
        await runtime.db.run(lambda session: mark_done(session, job))  # already sent (a rerun after a crash)
        return
    channel_type = runtime.plugins.channels.get(channel.kind)
    if channel_type.send is None:  # queued before its channel delivered by storing
        await runtime.db.run(lambda session: _mark_sent(session, job, message.id, "delivered", None))
        await _emit_reply_sent(runtime, channel, message)
        return
    outbound = OutboundMessage(
        workspace_id=message.workspace_id,
        channel_id=channel.id,
        conversation_id=conversation.id,
        message_id=message.id,
        to=conversation.external_user_id,
        text=message.text,
        media=list(message.media or []),
    )
    try:
        result = await channel_type.send(runtime, outbound)
    except SendError as exc:
        if exc.transient:
            noted = update(Message).where(Message.id == message.id).values(error_code=exc.code, error_message=str(exc)[:2000])
            await runtime.db.run(lambda session: session.execute(noted))
            raise RetryLater(str(exc), delay=exc.retry_after) from None

        failure = exc

        def record_failure(session: Session) -> None:
            session.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(status="failed", error_code=failure.code, error_message=str(failure)[:2000], updated_at=utcnow())
            )
            if failure.opted_out:
                session.execute(update(Conversation).where(Conversation.id == conversation.id).values(opted_out=True))
            mark_done(session, job)

        await runtime.db.run(record_failure)
        StreamHub.of(runtime).publish(conversation.id, {"type": "failed", "id": message.id, "code": exc.code, "error": str(exc)})
        return
    await runtime.db.run(lambda session: _mark_sent(session, job, message.id, result.status, result.provider_message_id))
    await _emit_reply_sent(runtime, channel, message)


def _mark_sent(session: Session, job: Job, message_id: int, status: str, provider_message_id: str | None) -> None:
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status.in_(("pending", "sending")))
        .values(status=status, provider_message_id=provider_message_id, error_code=None, error_message=None, updated_at=utcnow())
    )
    mark_done(session, job)


async def _emit_reply_sent(runtime: Runtime, channel: Channel, message: Message) -> None:
    await runtime.plugins.emit(
        "reply_sent",
        event=MessageEvent(
            workspace_id=message.workspace_id,
            channel_id=channel.id,
            channel_kind=channel.kind,
            conversation_id=message.conversation_id,
            message_id=message.id,
            author=message.author,
            text=message.text,
            media=list(message.media or []),
        ),
    )


# --------------------------------------------------------------------------- people


async def send_human_reply(runtime: Runtime, workspace_id: str, conversation_id: str, text: str, *, author_name: str = "") -> Message:
    """A person's reply: stored and sent through the same outbound path as the agent's."""
    from callable_agents.core.errors import InvalidInput, NotFound

    if not text.strip():
        raise InvalidInput("text: expected a non-empty reply")
    async with runtime.db.session() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
        )
        if conversation is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        channel = await session.get(Channel, conversation.channel_id)
        assert channel is not None
        message = _outbound(channel, conversation_id, "human", text, meta={"by": author_name} if author_name else {})
        delivered_by_storing = runtime.plugins.channels.get(channel.kind).send is None
        if delivered_by_storing:
            message.status = "delivered"
        session.add(message)
        await session.flush()
        if not delivered_by_storing:
            enqueue(session, workspace_id, SEND_JOB, {"message_id": message.id}, lane=f"send:{conversation_id}")
    StreamHub.of(runtime).publish(conversation_id, {"type": "message", "id": message.id, "author": "human", "text": text, "media": [], "meta": message.meta})
    if delivered_by_storing:
        await _emit_reply_sent(runtime, channel, message)
    else:
        wake_worker(runtime)
    return message


async def hand_off(runtime: Runtime, workspace_id: str, conversation_id: str, reason: str) -> None:
    """A person takes the conversation over (from the inbox): the agent stops answering."""
    await _set_status(runtime, workspace_id, conversation_id, "human", reason)


async def return_to_agent(runtime: Runtime, workspace_id: str, conversation_id: str) -> None:
    """Give a handed-off conversation back to the agent.

    Customer messages a person saw during the handoff are marked answered; the next turn
    carries them and the person's replies into the agent's history.
    """
    await _set_status(runtime, workspace_id, conversation_id, "bot", None)


async def _set_status(runtime: Runtime, workspace_id: str, conversation_id: str, status: str, reason: str | None) -> None:
    from callable_agents.core.errors import NotFound

    async with runtime.db.session() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
        )
        if conversation is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        previous = conversation.status
        conversation.status = status
        conversation.handoff_reason = reason
        if status == "bot" and previous == "human":
            await session.execute(
                update(Message)
                .where(Message.conversation_id == conversation_id, Message.author == "customer", Message.turn_id.is_(None))
                .values(turn_id=HANDLED_BY_PERSON)
            )
        channel_id = conversation.channel_id
    StreamHub.of(runtime).publish(conversation_id, {"type": "status", "status": status})
    if previous != status:
        event = HandoffEvent(workspace_id=workspace_id, channel_id=channel_id, conversation_id=conversation_id, reason=reason or "")
        await runtime.plugins.emit("conversation_handed_off" if status == "human" else "conversation_returned", event=event)


def register_pipeline_jobs(runtime: Runtime) -> None:
    from callable_agents.core.jobs import register_handler, register_intake
    from callable_agents.core.conversation.outbound.webhooks import deliver_webhook

    register_intake(runtime, "inbound_queue", file_queued)
    register_handler(runtime, TURN_JOB, run_turn)
    register_handler(runtime, SEND_JOB, send_message)
    register_handler(runtime, WEBHOOK_JOB, deliver_webhook)
