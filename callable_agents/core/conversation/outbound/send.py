"""Delivering stored outbound messages through the channel's ``send``, with retries.

Every reply part, sent item, handoff notice and person's message is a stored ``Message``
with a ``send`` job (or, on channels that deliver by storing, nothing more). The job's
handler is :func:`send_message`; a turn runs its own sends at once through :func:`deliver`,
with the message, conversation and channel it already holds, so the send path reads
nothing again. ``send`` gets an :class:`OutboundMessage` carrying a snapshot of the
conversation (:class:`ConversationInfo`), never a database row.

Transient channel errors are retried by the job system with backoff; permanent ones are
recorded on the message (status ``failed`` + the provider's code), which ends the job.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from callable_agents.core.contracts.channels import ConversationInfo, OutboundMessage, SendError
from callable_agents.core.contracts.events import MessageEvent
from callable_agents.core.conversation.outbound.status import apply_early_statuses, has_early_statuses, publish_applied
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.jobs import PermanentFailure, RetryLater, completion_parameters, completion_statement, mark_done
from callable_agents.core.models import Channel, Conversation, Job, Message, utcnow
from callable_agents.core.observability.pipeline import observed_send
from callable_agents.core.runtime import Runtime

SEND_JOB = "send"


def send_lane(conversation_id: str) -> str:
    """A conversation's sends go out one at a time, in order."""
    return f"send:{conversation_id}"


def new_outbound(
    channel: Channel,
    conversation_id: str,
    author: str,
    text: str,
    *,
    turn_id: int | None = None,
    media: list[dict[str, Any]] | None = None,
    meta: dict[str, Any] | None = None,
) -> Message:
    """An outbound message to store (pending until its send succeeds)."""
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


_INSERT_OUTBOUND = insert(Message.__table__).returning(Message.__table__.c.id, sort_by_parameter_order=True)
_OUTBOUND_COLUMNS = (
    "workspace_id", "conversation_id", "channel_id", "direction", "author", "text", "media", "meta", "status", "turn_id",
)


def insert_outbound(session: Session, messages: list[Message]) -> None:
    """Insert new outbound messages in one statement and give each its id (Core: no unit of work)."""
    if not messages:
        return
    now = utcnow()
    rows = [{**{name: getattr(m, name) for name in _OUTBOUND_COLUMNS}, "created_at": now, "updated_at": now} for m in messages]
    returned = session.execute(_INSERT_OUTBOUND, rows)
    for message, (message_id,) in zip(messages, returned.all(), strict=True):
        message.id = message_id


def conversation_info(conversation: Conversation, channel: Channel) -> ConversationInfo:
    """What a channel's ``send`` knows about the conversation, from rows already at hand."""
    return ConversationInfo(
        external_user_id=conversation.external_user_id,
        channel_kind=channel.kind,
        integration_id=channel.integration_id,
        profile=dict(conversation.profile or {}),
        last_inbound_at=conversation.last_inbound_at,
        opted_out=bool(conversation.opted_out),
        status=conversation.status,
    )


def signed_text(message: Message) -> str:
    """What the customer reads: a person's reply starts with their name (``meta["by"]``), so
    they know who is writing; the agent's and notices go as they are."""
    by = (message.meta or {}).get("by") if message.author == "human" else None
    return f"{by}: {message.text}" if isinstance(by, str) and by.strip() else message.text


def outbound_message(message: Message, conversation: Conversation, channel: Channel) -> OutboundMessage:
    """What ``send`` receives for one stored message."""
    part = (message.meta or {}).get("part")
    location = (message.meta or {}).get("location")
    choices = (message.meta or {}).get("choices")
    chosen = (message.meta or {}).get("template_variables")  # a person chose an approved template
    template = {"id": str((message.meta or {}).get("template")), "variables": dict(chosen)} if isinstance(chosen, dict) else None
    return OutboundMessage(
        workspace_id=message.workspace_id,
        channel_id=channel.id,
        conversation_id=conversation.id,
        message_id=message.id,
        to=conversation.external_user_id,
        text=signed_text(message),
        media=list(message.media or []),
        conversation=conversation_info(conversation, channel),
        part=part if isinstance(part, int) else 0,
        location=dict(location) if isinstance(location, dict) else None,
        choices=dict(choices) if isinstance(choices, dict) else None,
        template=template,
    )


async def send_message(runtime: Runtime, job: Job) -> None:
    """The ``send`` job: deliver one stored outbound message through its channel's ``send``."""
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
    await deliver(runtime, job, *loaded)


async def deliver(runtime: Runtime, job: Job, message: Message, conversation: Conversation, channel: Channel) -> None:
    """The send job's work once its message, conversation and channel are at hand."""
    if message.status not in ("pending", "sending"):
        await runtime.db.run(lambda session: mark_done(session, job))  # already sent (a rerun after a crash)
        return
    channel_type = runtime.plugins.channels.get(channel.kind)
    if channel_type.send is None:  # queued before its channel delivered by storing
        await _record_sent(runtime, job, message.id, "delivered", None)
        await emit_reply_sent(runtime, channel, message)
        return
    try:
        result = await observed_send(channel.kind, message.id, channel_type.send(runtime, outbound_message(message, conversation, channel)))
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
    await _record_sent(runtime, job, message.id, result.status, result.provider_message_id)
    sid, ranks = result.provider_message_id, channel_type.delivery_ranks
    if sid is not None and ranks is not None:
        # A status report that came before this id was recorded waits for it (after the
        # commit above, so a report kept meanwhile is seen here or sees the id itself).
        if await runtime.db.run(lambda session: has_early_statuses(session, channel.id, sid), write=False):
            applied = await runtime.db.run(lambda session: apply_early_statuses(session, channel.id, sid, ranks))
            publish_applied(runtime, applied)
    StreamHub.of(runtime).changed()  # live views (the inbox) show the new delivery status
    await emit_reply_sent(runtime, channel, message)


@functools.cache
def _mark_message_sent() -> Any:
    """The message's status and provider id recorded, if it is still waiting to be sent."""
    messages = Message.__table__
    return (
        update(messages)
        .where(messages.c.id == bindparam("message_id"), messages.c.status.in_(("pending", "sending")))
        .values(
            status=bindparam("sent_status"), provider_message_id=bindparam("provider_message_id"),
            error_code=None, error_message=None, updated_at=bindparam("now"),
        )
    )


@functools.cache
def _sent_and_done() -> Any:
    """PostgreSQL: :func:`_mark_message_sent` and the job's completion in one statement (the
    message's update a data-modifying ``WITH``), atomic as SQLite's transaction of the two,
    in one round trip instead of four."""
    sent = _mark_message_sent().returning(Message.__table__.c.id).cte("sent")
    return completion_statement().add_cte(sent)


async def _record_sent(runtime: Runtime, job: Job, message_id: int, status: str, provider_message_id: str | None) -> None:
    """The message sent (its status and provider id) and its job done, together."""
    parameters = {
        **completion_parameters(job), "message_id": message_id, "sent_status": status,
        "provider_message_id": provider_message_id,
    }
    if runtime.db.is_sqlite:

        def mark_sent(session: Session) -> None:
            session.execute(_mark_message_sent(), parameters)
            session.execute(completion_statement(), parameters)

        await runtime.db.run(mark_sent)
        return
    await runtime.db.run(lambda session: session.execute(_sent_and_done(), parameters), transaction=False)


async def emit_reply_sent(runtime: Runtime, channel: Channel, message: Message) -> None:
    if not runtime.plugins.has_listeners("reply_sent"):
        return  # as for message_received: no event is built for nobody (once per reply part)
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
