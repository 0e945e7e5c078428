"""A person in the conversation: their replies from the inbox, taking over, giving it back.

A person's reply is stored and sent through the same outbound path as the agent's
(:mod:`.outbound.send`). While a conversation is handed off the agent is silent; given back,
the next turn carries what the person saw and said into the agent's history.

The inbox acts through :func:`take_over` (the customer is told once, with the channel's
notice), :func:`reply_as_person` (takes over first; outside a channel's reply window only a
template goes out), :func:`give_back`, :func:`close`, :func:`assign`, :func:`add_note`
and :func:`mark_read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.contracts.events import HandoffEvent
from callable_agents.core.conversation.outbound.send import SEND_JOB, emit_reply_sent, new_outbound, send_lane
from callable_agents.core.conversation.streams import StreamHub, wake_workers
from callable_agents.core.conversation.templates import available_templates
from callable_agents.core.conversation.turn.load import HANDLED_BY_PERSON
from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.jobs import enqueue
from callable_agents.core.models import Channel, Conversation, ConversationNote, ConversationRead, Message, User, utcnow
from callable_agents.core.observability.metrics import count_handoff
from callable_agents.core.runtime import Runtime


MAX_NOTE = 10_000
MAX_TEMPLATE_VALUE = 1000  # characters of one template variable's value


async def send_human_reply(
    runtime: Runtime, workspace_id: str, conversation_id: str, text: str, *, author_name: str = "", meta: dict[str, Any] | None = None
) -> Message:
    """A person's reply: stored and sent through the same outbound path as the agent's."""
    if not text.strip():
        raise InvalidInput("text: expected a non-empty reply")
    async with runtime.db.session() as session:
        _, channel = await _load(session, workspace_id, conversation_id)
        stored_meta = dict(meta) if meta is not None else ({"by": author_name} if author_name else {})
        message, delivered_by_storing = await _store_outbound(runtime, session, channel, conversation_id, "human", text, stored_meta)
    StreamHub.of(runtime).publish(conversation_id, {"type": "message", "id": message.id, "author": "human", "text": text, "media": [], "meta": message.meta})
    if delivered_by_storing:
        await emit_reply_sent(runtime, channel, message)
    else:
        wake_workers(runtime)
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
    if previous != status and status in ("human", "bot"):  # closing is neither a handoff nor a return
        if status == "human":
            count_handoff("person")
        event = HandoffEvent(workspace_id=workspace_id, channel_id=channel_id, conversation_id=conversation_id, reason=reason or "")
        await runtime.plugins.emit("conversation_handed_off" if status == "human" else "conversation_returned", event=event)


@dataclass(frozen=True)
class Person:
    """A signed-in member acting in the inbox (or an API caller naming themselves)."""

    user_id: str | None
    name: str


DEFAULT_TAKEOVER_NOTICE = "{name} from our team has joined the conversation."
DEFAULT_TAKEOVER_NOTICE_NAMELESS = "A person from our team has joined the conversation."
DEFAULT_RETURN_NOTICE = "You're chatting with our assistant again."


def notice_text(configured: str | None, default: str, name: str) -> str:
    """The channel's notice (None: ``default``; "": none) with ``{name}`` filled in."""
    template = default if configured is None else configured
    if configured is None and not name:
        template = DEFAULT_TAKEOVER_NOTICE_NAMELESS if default == DEFAULT_TAKEOVER_NOTICE else default
    return template.replace("{name}", name or "our team").strip()


def outside_reply_window(hours: int | None, last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether free text can no longer reach the customer (a channel's service window has closed)."""
    if hours is None:
        return False
    if last_inbound_at is None:
        return True
    return (now or utcnow()) - last_inbound_at > timedelta(hours=hours)


@dataclass(frozen=True)
class PersonReply:
    message_id: int
    took_over: bool


async def _load(session: AsyncSession, workspace_id: str, conversation_id: str) -> tuple[Conversation, Channel]:
    conversation = await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
    )
    if conversation is None:
        raise NotFound(f"conversation {conversation_id!r} not found")
    channel = await session.get(Channel, conversation.channel_id)
    assert channel is not None
    return conversation, channel


async def _store_outbound(
    runtime: Runtime, session: AsyncSession, channel: Channel, conversation_id: str, author: str, text: str, meta: dict[str, Any]
) -> tuple[Message, bool]:
    """Store an outbound message with its send job (or, on a channel that delivers by storing, as delivered)."""
    message = new_outbound(channel, conversation_id, author, text, meta=meta)
    delivered_by_storing = runtime.plugins.channels.get(channel.kind).send is None
    if delivered_by_storing:
        message.status = "delivered"
    session.add(message)
    await session.flush()
    if not delivered_by_storing:
        enqueue(session, channel.workspace_id, SEND_JOB, {"message_id": message.id}, lane=send_lane(conversation_id))
    return message, delivered_by_storing


async def _store_notice(runtime: Runtime, session: AsyncSession, channel: Channel, conversation_id: str, text: str) -> Message | None:
    """A system message telling the customer who they're talking to, sent like any reply."""
    if not text:
        return None
    message, _ = await _store_outbound(runtime, session, channel, conversation_id, "system", text, {"notice": True})
    return message


def _can_write_freely(runtime: Runtime, channel: Channel, conversation: Conversation) -> bool:
    """Whether free text reaches the customer now (no notice goes out as a paid template)."""
    hours = runtime.plugins.channels.get(channel.kind).capabilities.reply_window_hours
    return not outside_reply_window(hours, conversation.last_inbound_at)


async def take_over(runtime: Runtime, workspace_id: str, conversation_id: str, person: Person, reason: str = "") -> bool:
    """A person takes the conversation over: the agent goes silent and the customer is told once.

    Returns False when a person already had it (nothing changes, no second notice). The
    person becomes the assignee when nobody is. Outside the channel's reply window no notice
    goes (it could only go as a template; the person's own template says who is writing).
    """
    async with runtime.db.session() as session:
        conversation, channel = await _load(session, workspace_id, conversation_id)
        if conversation.status == "human":
            return False
        conversation.status = "human"
        conversation.handoff_reason = (reason or f"Taken over by {person.name or 'a person'}")[:2000]
        if conversation.assignee_id is None and person.user_id is not None:
            conversation.assignee_id = person.user_id
        notice = None
        if _can_write_freely(runtime, channel, conversation):
            notice = await _store_notice(
                runtime, session, channel, conversation_id, notice_text(channel.takeover_notice, DEFAULT_TAKEOVER_NOTICE, person.name)
            )
        channel_id, reason_now = channel.id, conversation.handoff_reason
    await _announce(runtime, conversation_id, notice)
    StreamHub.of(runtime).publish(conversation_id, {"type": "status", "status": "human"})
    event = HandoffEvent(workspace_id=workspace_id, channel_id=channel_id, conversation_id=conversation_id, reason=reason_now or "")
    await runtime.plugins.emit("conversation_handed_off", event=event)
    return True


async def give_back(runtime: Runtime, workspace_id: str, conversation_id: str) -> None:
    """Return the conversation to the agent and tell the customer (the channel's return notice)."""
    async with runtime.db.session() as session:
        conversation, channel = await _load(session, workspace_id, conversation_id)
        if conversation.status != "human":
            raise InvalidInput(f"status: only a conversation a person has can be returned to the agent; this one is {conversation.status!r}")
        notice_wanted = notice_text(channel.return_notice, DEFAULT_RETURN_NOTICE, "") if _can_write_freely(runtime, channel, conversation) else ""
    await return_to_agent(runtime, workspace_id, conversation_id)
    async with runtime.db.session() as session:
        _, channel = await _load(session, workspace_id, conversation_id)
        notice = await _store_notice(runtime, session, channel, conversation_id, notice_wanted)
    await _announce(runtime, conversation_id, notice)


async def close(runtime: Runtime, workspace_id: str, conversation_id: str) -> None:
    """Close the conversation: the agent stays silent until the customer writes again."""
    await _set_status(runtime, workspace_id, conversation_id, "closed", None)


async def assign(runtime: Runtime, workspace_id: str, conversation_id: str, user_id: str | None) -> None:
    """Assign the conversation to a member of its workspace (None: to nobody)."""
    async with runtime.db.session() as session:
        conversation, _ = await _load(session, workspace_id, conversation_id)
        if user_id is not None:
            member = await session.scalar(select(User.id).where(User.id == user_id, User.workspace_id == workspace_id))
            if member is None:
                raise InvalidInput(f"assignee: no member {user_id!r} in this workspace")
        conversation.assignee_id = user_id
        conversation.updated_at = utcnow()
    StreamHub.of(runtime).changed()


async def add_note(runtime: Runtime, workspace_id: str, conversation_id: str, person: Person, text: str) -> ConversationNote:
    """An internal note on the conversation: stored for the team, never sent to the customer."""
    text = text.strip()
    if not text:
        raise InvalidInput("text: expected a non-empty note")
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"text: a note is at most {MAX_NOTE} characters, got {len(text)}")
    async with runtime.db.session() as session:
        await _load(session, workspace_id, conversation_id)
        note = ConversationNote(
            workspace_id=workspace_id, conversation_id=conversation_id, author_id=person.user_id, author_name=person.name, text=text
        )
        session.add(note)
        await session.flush()
    StreamHub.of(runtime).changed()
    return note


async def reply_as_person(
    runtime: Runtime,
    workspace_id: str,
    conversation_id: str,
    person: Person,
    text: str,
    *,
    template_id: str | None = None,
    variables: dict[str, str] | None = None,
) -> PersonReply:
    """A person's reply from the inbox, shown to the customer with the person's name.

    A conversation the agent (or nobody) has is taken over first, with its notice. Outside the
    channel's reply window free text is refused: only one of the channel's templates
    (``template_id``) can reach the customer: the channel's configured one, carrying ``text``
    where it takes one, or one of the provider account's approved templates with
    ``variables`` (a value for each of its variables).
    """
    text = text.strip()
    async with runtime.db.sessions() as session:
        conversation, channel = await _load(session, workspace_id, conversation_id)
        channel_type = runtime.plugins.channels.get(channel.kind)
        outside = outside_reply_window(channel_type.capabilities.reply_window_hours, conversation.last_inbound_at)
    templates = await available_templates(runtime, channel) if template_id or outside else []
    meta: dict[str, Any] = {"by": person.name} if person.name else {}
    if person.user_id:
        meta["by_id"] = person.user_id
    if template_id:
        template = next((t for t in templates if t.id == template_id), None)
        if template is None:
            raise InvalidInput(f"template: the channel has no template {template_id!r}")
        if not outside:
            raise InvalidInput("template: the customer wrote within the reply window; send a free-text reply instead")
        meta["template"] = template.id
        if template.configured:
            if variables:
                raise InvalidInput("variables: the channel's own template fills its variables from its config; give only text")
            if template.takes_text and not text:
                raise InvalidInput("text: this template carries your reply; write it")
            text = text or template.label
        else:
            filled = template_values(template.label, template.variables, variables or {})
            meta["template_variables"] = filled
            text = text or f"{template.label}: " + ", ".join(f"{{{{{key}}}}} {value}" for key, value in filled.items())
    elif outside:
        hours = channel_type.capabilities.reply_window_hours
        why = (
            f"text: outside the {hours}-hour reply window (the customer's last message was more than {hours} hours ago), "
            "free text can't reach them; "
        )
        raise InvalidInput(why + ("send one of the channel's approved templates instead" if templates else "the channel has no approved template to send"))
    if not text:
        raise InvalidInput("text: expected a non-empty reply")
    took_over = await take_over(runtime, workspace_id, conversation_id, person)
    message = await send_human_reply(runtime, workspace_id, conversation_id, text, author_name=person.name, meta=meta)
    return PersonReply(message.id, took_over)


def template_values(label: str, wanted: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """The values for an approved template's variables (``wanted``: each with its sample),
    from what the person gave; refuses, naming them, missing, unknown or too long ones."""
    if not isinstance(given, dict) or not all(isinstance(value, str) for value in given.values()):
        raise InvalidInput("variables: expected an object of variable → text")
    values = {str(key): value.strip() for key, value in given.items()}
    unknown = sorted(set(values) - set(wanted))
    if unknown:
        raise InvalidInput(
            f"variables.{unknown[0]}: template {label!r} has no variable {unknown[0]} (it has: {', '.join(wanted) or 'none'})"
        )
    missing = [key for key in wanted if not values.get(key)]
    if missing:
        named = ", ".join(f"{key} (e.g. {wanted[key]!r})" if wanted[key] else key for key in missing)
        raise InvalidInput(f"variables.{missing[0]}: template {label!r} needs a value for variable {named}")
    too_long = [key for key in wanted if len(values[key]) > MAX_TEMPLATE_VALUE]
    if too_long:
        raise InvalidInput(f"variables.{too_long[0]}: at most {MAX_TEMPLATE_VALUE} characters, got {len(values[too_long[0]])}")
    return {key: values[key] for key in wanted}


async def mark_read(runtime: Runtime, workspace_id: str, conversation_id: str, user_id: str, message_id: int) -> None:
    """The person has read the conversation up to ``message_id`` (never moves back)."""
    async with runtime.db.session() as session:
        found = await session.get(ConversationRead, (user_id, conversation_id))
        if found is None:
            session.add(ConversationRead(user_id=user_id, conversation_id=conversation_id, workspace_id=workspace_id, last_read_message_id=message_id))
        elif found.last_read_message_id < message_id:
            found.last_read_message_id = message_id


async def _announce(runtime: Runtime, conversation_id: str, message: Message | None) -> None:
    if message is None:
        return
    StreamHub.of(runtime).publish(
        conversation_id, {"type": "message", "id": message.id, "author": message.author, "text": message.text, "media": [], "meta": message.meta}
    )
    wake_workers(runtime)
