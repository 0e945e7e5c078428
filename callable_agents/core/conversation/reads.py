"""Conversation and message reads for channel plugins, as read-only snapshots.

A chat surface (history, a live stream's catch-up, a session's start) reads what is stored
without holding ORM rows: each function is one session with the statements it needs, and
answers frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from callable_agents.core.models import Agent, Conversation, Message
from callable_agents.core.store.public_channels import AgentRecord, agent_record

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime


@dataclass(frozen=True)
class MessageRecord:
    id: int
    author: str
    text: str
    media: Sequence[Mapping[str, Any]]
    meta: Mapping[str, Any]
    status: str
    created_at: datetime | None


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    workspace_id: str
    channel_id: str
    external_user_id: str
    status: str  # bot | human | closed


@dataclass(frozen=True)
class ConversationUpdates:
    """A conversation's status and its messages past a point (see :func:`read_conversation_updates`)."""

    status: str | None
    late: list[MessageRecord]  # ids in (floor, highest]: written out of order
    new: list[MessageRecord]  # ids above highest, oldest first


def _record(message: Message) -> MessageRecord:
    return MessageRecord(
        message.id,
        message.author,
        message.text,
        list(message.media or []),
        dict(message.meta or {}),
        message.status,
        message.created_at,
    )


def _of_user(workspace_id: str, channel_id: str, external_user_id: str) -> Any:
    return (
        Conversation.workspace_id == workspace_id,
        Conversation.channel_id == channel_id,
        Conversation.external_user_id == external_user_id,
    )


async def find_conversation(
    runtime: Runtime, workspace_id: str, channel_id: str, external_user_id: str
) -> ConversationRecord | None:
    """The channel's conversation with this external user, if there is one."""
    async with runtime.db.session() as session:
        row = await session.scalar(select(Conversation).where(*_of_user(workspace_id, channel_id, external_user_id)))
    if row is None:
        return None
    return ConversationRecord(row.id, row.workspace_id, row.channel_id, row.external_user_id, row.status)


async def read_conversation(runtime: Runtime, workspace_id: str, conversation_id: str) -> ConversationRecord | None:
    """The workspace's conversation ``conversation_id``, if it exists."""
    async with runtime.db.sessions() as session:
        row = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
        )
    if row is None:
        return None
    return ConversationRecord(row.id, row.workspace_id, row.channel_id, row.external_user_id, row.status)


async def find_conversation_id(runtime: Runtime, workspace_id: str, channel_id: str, external_user_id: str) -> str | None:
    """The id of the channel's conversation with this external user, if there is one."""
    async with runtime.db.session() as session:
        found: str | None = await session.scalar(
            select(Conversation.id).where(*_of_user(workspace_id, channel_id, external_user_id))
        )
    return found


async def read_session_start(
    runtime: Runtime, agent_id: str, channel_id: str, external_user_id: str
) -> tuple[AgentRecord | None, str | None]:
    """The channel's agent and the status of this user's conversation (None: none yet)."""
    async with runtime.db.session() as session:
        agent = await session.get(Agent, agent_id)
        status: str | None = await session.scalar(
            select(Conversation.status).where(
                Conversation.channel_id == channel_id, Conversation.external_user_id == external_user_id
            )
        )
    return (agent_record(agent) if agent is not None else None), status


async def read_messages(
    runtime: Runtime, workspace_id: str, conversation_id: str, *, after: int, limit: int
) -> list[MessageRecord]:
    """Messages after id ``after`` (oldest first, at most ``limit``); with ``after`` 0 the latest page."""
    query = select(Message).where(Message.workspace_id == workspace_id, Message.conversation_id == conversation_id)
    async with runtime.db.session() as session:
        if after:
            rows = list((await session.scalars(query.where(Message.id > after).order_by(Message.id).limit(limit))).all())
        else:  # the latest page, oldest first
            rows = list((await session.scalars(query.order_by(Message.id.desc()).limit(limit))).all())[::-1]
    return [_record(row) for row in rows]


async def read_conversation_updates(
    runtime: Runtime, workspace_id: str, conversation_id: str, *, floor: int, highest: int, limit: int
) -> ConversationUpdates:
    """The status and the messages a live stream has not seen: ids in (floor, highest] and above highest."""
    of_conversation = select(Message).where(
        Message.workspace_id == workspace_id, Message.conversation_id == conversation_id
    )
    async with runtime.db.session() as session:
        status = await session.scalar(select(Conversation.status).where(Conversation.id == conversation_id))
        late = (
            (await session.scalars(of_conversation.where(Message.id > floor, Message.id <= highest).order_by(Message.id))).all()
            if highest > floor
            else []
        )
        new = (
            await session.scalars(of_conversation.where(Message.id > highest).order_by(Message.id).limit(limit))
        ).all()
    return ConversationUpdates(status, [_record(row) for row in late], [_record(row) for row in new])
