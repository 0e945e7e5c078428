"""The inbox's reads: a workspace's conversations as a list, one conversation in full, and what changed.

The list is newest activity first (``conversations.updated_at``, then ``id``), a keyset page
at a time (:class:`InboxCursor`), each filter served by an index that ends in that order
(see :class:`~callable_agents.core.models.Conversation`). Only the page's rows pay for their
last message and unread count. :func:`read_changes` is the live feed's source: what was
written or changed after a moment, read from the database, so a reconnecting viewer replays
from its last event and a wake-up in :class:`~.streams.StreamHub` needs to carry nothing.

Every function takes the viewer's ``workspace_id`` and filters by it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Text, and_, column, func, or_, select, table, union
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.models import Channel, Conversation, ConversationNote, ConversationRead, Message, Trace, User
from callable_agents.core.store.channels import TEST_CHANNEL_KIND

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

STATUSES = ("bot", "human", "closed")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_SEARCH = 200
PREVIEW_CHARS = 140


@dataclass(frozen=True)
class InboxFilters:
    """What the list shows: by status, channel, assignee, those waiting for a person, a search."""

    status: str | None = None
    channel_id: str | None = None
    assignee_id: str | None = None
    needs_person: bool = False
    search: str = ""

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise InvalidInput(f"status: expected one of {', '.join(STATUSES)}, got {self.status!r}")
        if len(self.search) > MAX_SEARCH:
            raise InvalidInput(f"q: a search is at most {MAX_SEARCH} characters")

    @property
    def any(self) -> bool:
        return bool(self.status or self.channel_id or self.assignee_id or self.needs_person or self.search)


@dataclass(frozen=True)
class InboxCursor:
    """Where a page ends: the last row's ``updated_at`` and ``id`` (opaque in URLs)."""

    updated_at: datetime
    id: str

    def encode(self) -> str:
        raw = f"{self.updated_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> InboxCursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            at, _, conversation_id = raw.partition("|")
            moment = datetime.fromisoformat(at)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("before: expected a cursor from a previous page's next link") from None
        if moment.tzinfo is None or not conversation_id:
            raise InvalidInput("before: expected a cursor from a previous page's next link")
        return cls(moment.astimezone(timezone.utc), conversation_id)


@dataclass(frozen=True)
class InboxRow:
    id: str
    channel_id: str
    channel_name: str
    channel_kind: str
    customer_id: str
    customer_name: str
    status: str
    handoff_reason: str | None
    assignee_id: str | None
    assignee_name: str | None
    opted_out: bool
    updated_at: datetime
    last_inbound_at: datetime | None
    last_message_id: int | None = None
    last_text: str = ""
    last_author: str = ""
    unread: int = 0
    window_closes_at: datetime | None = None  # set on channels with a reply window

    @property
    def cursor(self) -> InboxCursor:
        return InboxCursor(self.updated_at, self.id)


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    next_cursor: InboxCursor | None


def customer_name(external_user_id: str, profile: dict[str, Any] | None) -> str:
    """A customer as a person reads them: the name their app gave, else their id on the channel."""
    profile = profile or {}
    for key in ("ProfileName", "name", "display_name"):
        value = profile.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _window_hours(runtime: Runtime, kind: str) -> int | None:
    channel_type = runtime.plugins.channels.types.get(kind)  # None: its plugin is no longer loaded
    return channel_type.capabilities.reply_window_hours if channel_type else None


PHONE_LIKE = re.compile(r"\+?[\d\s().-]{3,}")


# SQLite's trigram index over messages.text (migration 0008): rowid is the message's id.
MESSAGE_TEXT_SEARCH = table("messages_text_search", column("rowid", Integer), column("text", Text))


def _search_clause(search: str, workspace_id: str, *, sqlite: bool) -> Any:
    """A number-like search matches the customer's number; any other text also a customer's
    name, or text anywhere in one of their messages. Trigram indexes serve each part
    (migration 0008): on PostgreSQL ``pg_trgm`` over the number, the name and the messages'
    text; on SQLite an FTS5 table over the messages' text (the conversations' own columns
    are read). The matching conversations are one ``IN`` set, so the planner may start from
    the matches rather than walk every conversation in the list's order."""
    text = search.strip()
    in_workspace = Conversation.workspace_id == workspace_id
    if PHONE_LIKE.fullmatch(text) and any(ch.isdigit() for ch in text):
        digits = "".join(ch for ch in text if ch.isdigit())
        return Conversation.id.in_(
            select(Conversation.id).where(in_workspace, Conversation.external_user_id.like(f"%{digits}%"))
        )
    # Without an ESCAPE clause when nothing needs one: SQLite's index does not serve a LIKE
    # that has one (it still answers, by reading every row).
    escape = "\\" if any(ch in text for ch in "%_\\") else None
    if escape:
        text = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{text}%"
    by_customer = select(Conversation.id).where(
        in_workspace,
        or_(
            Conversation.external_user_id.ilike(pattern, escape=escape),
            Conversation.profile["ProfileName"].as_string().ilike(pattern, escape=escape),
        ),
    )
    if sqlite:
        indexed = select(MESSAGE_TEXT_SEARCH.c.rowid).where(MESSAGE_TEXT_SEARCH.c.text.like(pattern, escape=escape))
        by_message = select(Message.conversation_id).where(Message.id.in_(indexed), Message.workspace_id == workspace_id)
    else:
        by_message = select(Message.conversation_id).where(
            Message.workspace_id == workspace_id, Message.text.ilike(pattern, escape=escape)
        )
    return Conversation.id.in_(union(by_customer, by_message))


def _filtered(workspace_id: str, filters: InboxFilters, *, sqlite: bool) -> Any:
    # Conversations alone: the keyset order is read straight off the filter's index (a join
    # here lets the planner start from the channel and sort every match).
    query = select(Conversation).where(
        Conversation.workspace_id == workspace_id,
        # The Test panel's conversations are the dashboard's own, not customers'.
        Conversation.channel_id.not_in(
            select(Channel.id).where(Channel.workspace_id == workspace_id, Channel.kind == TEST_CHANNEL_KIND)
        ),
    )
    if filters.status:
        query = query.where(Conversation.status == filters.status)
    if filters.needs_person:
        query = query.where(Conversation.status == "human", Conversation.assignee_id.is_(None))
    if filters.channel_id:
        query = query.where(Conversation.channel_id == filters.channel_id)
    if filters.assignee_id:
        query = query.where(Conversation.assignee_id == filters.assignee_id)
    if filters.search.strip():
        query = query.where(_search_clause(filters.search, workspace_id, sqlite=sqlite))
    return query


async def list_conversations(
    runtime: Runtime,
    workspace_id: str,
    viewer_id: str | None,
    filters: InboxFilters = InboxFilters(),
    *,
    before: InboxCursor | None = None,
    limit: int = PAGE_SIZE,
    only_ids: list[str] | None = None,
) -> InboxPage:
    """A page of the workspace's conversations, newest activity first (``only_ids``: just those, if they match)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit: expected 1 to {MAX_PAGE_SIZE}, got {limit}")
    query = _filtered(workspace_id, filters, sqlite=runtime.db.is_sqlite)
    if before is not None:
        query = query.where(
            Conversation.updated_at <= before.updated_at,
            or_(Conversation.updated_at < before.updated_at, and_(Conversation.updated_at == before.updated_at, Conversation.id < before.id)),
        )
    if only_ids is not None:
        query = query.where(Conversation.id.in_(only_ids))
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
    async with runtime.db.sessions() as session:
        found = list((await session.scalars(query)).all())
        more = len(found) > limit
        found = found[:limit]
        ids = [conversation.id for conversation in found]
        extras = await _page_extras(session, ids, viewer_id) if ids else {}
        channels = {
            channel_id: (name, kind)
            for channel_id, name, kind in (
                await session.execute(select(Channel.id, Channel.name, Channel.kind).where(Channel.id.in_({c.channel_id for c in found})))
            ).all()
        }
        assignee_ids = {c.assignee_id for c in found if c.assignee_id}
        assignees = (
            {user_id: name or email for user_id, name, email in (await session.execute(select(User.id, User.name, User.email).where(User.id.in_(assignee_ids)))).all()}
            if assignee_ids
            else {}
        )
    rows: list[InboxRow] = []
    for conversation in found:
        channel_name, channel_kind = channels.get(conversation.channel_id, ("", ""))
        last_id, last_text, last_author, unread = extras.get(conversation.id, (None, "", "", 0))
        hours = _window_hours(runtime, channel_kind)
        closes = conversation.last_inbound_at + timedelta(hours=hours) if hours is not None and conversation.last_inbound_at else None
        rows.append(
            InboxRow(
                id=conversation.id,
                channel_id=conversation.channel_id,
                channel_name=channel_name,
                channel_kind=channel_kind,
                customer_id=conversation.external_user_id,
                customer_name=customer_name(conversation.external_user_id, conversation.profile),
                status=conversation.status,
                handoff_reason=conversation.handoff_reason,
                assignee_id=conversation.assignee_id,
                assignee_name=assignees.get(conversation.assignee_id) if conversation.assignee_id else None,
                opted_out=bool(conversation.opted_out),
                updated_at=conversation.updated_at,
                last_inbound_at=conversation.last_inbound_at,
                last_message_id=last_id,
                last_text=last_text[:PREVIEW_CHARS],
                last_author=last_author,
                unread=unread,
                window_closes_at=closes,
            )
        )
    next_cursor = rows[-1].cursor if more and rows else None
    return InboxPage(rows, next_cursor)


async def _page_extras(session: AsyncSession, ids: list[str], viewer_id: str | None) -> dict[str, tuple[int | None, str, str, int]]:
    """Each listed conversation's last message and the viewer's unread count (customer messages past their read marker)."""
    last_of_each = select(func.max(Message.id)).where(Message.conversation_id.in_(ids)).group_by(Message.conversation_id)
    last: dict[str, tuple[int, str, str, list[Any]]] = {
        conversation_id: (message_id, text or "", author, media or [])
        for conversation_id, message_id, text, author, media in (
            await session.execute(
                select(Message.conversation_id, Message.id, Message.text, Message.author, Message.media).where(
                    Message.id.in_(last_of_each)
                )
            )
        ).all()
    }
    unread_query = (
        select(Message.conversation_id, func.count())
        .outerjoin(
            ConversationRead,
            and_(ConversationRead.conversation_id == Message.conversation_id, ConversationRead.user_id == (viewer_id or "")),
        )
        .where(
            Message.conversation_id.in_(ids),
            Message.direction == "inbound",
            Message.id > func.coalesce(ConversationRead.last_read_message_id, 0),
        )
        .group_by(Message.conversation_id)
    )
    unread = dict((await session.execute(unread_query)).all())
    out: dict[str, tuple[int | None, str, str, int]] = {}
    for conversation_id in ids:
        message_id, text, author, media = last.get(conversation_id, (None, "", "", []))
        out[conversation_id] = (message_id, text or ("[media]" if media else ""), author, int(unread.get(conversation_id, 0)))
    return out


@dataclass(frozen=True)
class NoteRecord:
    id: int
    author_name: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class TurnTrace:
    """One agent turn's steps (passages and sources, tool calls, outcome, model and tokens)."""

    turn_id: int | None
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ConversationDetail:
    row: InboxRow
    messages: list[Message]
    notes: list[NoteRecord]
    members: list[tuple[str, str]]  # (user id, name or e-mail), for assigning
    more_before: int | None  # the id to page back from, when older messages exist


MESSAGES_SHOWN = 200


async def read_conversation(runtime: Runtime, workspace_id: str, viewer_id: str | None, conversation_id: str) -> ConversationDetail:
    """One conversation for the inbox: its row, its latest messages (oldest first), notes and the members."""
    page = await list_conversations(runtime, workspace_id, viewer_id, only_ids=[conversation_id], limit=1)
    if not page.rows:
        raise NotFound(f"conversation {conversation_id!r} not found")
    async with runtime.db.sessions() as session:
        newest = list(
            (
                await session.scalars(
                    select(Message)
                    .where(Message.workspace_id == workspace_id, Message.conversation_id == conversation_id)
                    .order_by(Message.id.desc())
                    .limit(MESSAGES_SHOWN + 1)
                )
            ).all()
        )
        notes = (
            await session.scalars(
                select(ConversationNote)
                .where(ConversationNote.workspace_id == workspace_id, ConversationNote.conversation_id == conversation_id)
                .order_by(ConversationNote.id)
            )
        ).all()
        members = (await session.execute(select(User.id, User.name, User.email).where(User.workspace_id == workspace_id).order_by(User.name, User.email))).all()
    more = newest[MESSAGES_SHOWN].id if len(newest) > MESSAGES_SHOWN else None
    return ConversationDetail(
        page.rows[0],
        newest[:MESSAGES_SHOWN][::-1],
        [NoteRecord(n.id, n.author_name, n.text, n.created_at) for n in notes],
        [(user_id, name or email) for user_id, name, email in members],
        more,
    )


async def read_turn_trace(runtime: Runtime, workspace_id: str, conversation_id: str, turn_id: int) -> TurnTrace:
    """The trace of the turn that produced a reply: every step stored for it."""
    async with runtime.db.sessions() as session:
        known = await session.scalar(
            select(Conversation.id).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
        )
        if known is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        traces = (
            await session.scalars(
                select(Trace).where(Trace.workspace_id == workspace_id, Trace.conversation_id == conversation_id).order_by(Trace.id)
            )
        ).all()
    steps = [
        {"step": t.step, **(t.data or {}), "duration_ms": t.duration_ms}
        for t in traces
        if (t.data or {}).get("turn_id") == turn_id or (t.data or {}).get("job_id") == turn_id
    ]
    return TurnTrace(turn_id, steps)


@dataclass(frozen=True)
class Changes:
    """What changed in a workspace after a moment: conversations (for the list) and messages."""

    conversation_ids: list[str]
    messages: list[Message]
    high_water: datetime | None


CHANGES_LIMIT = 500


async def _changed_rows(session: AsyncSession, key: Any, workspace: Any, updated_at: Any, workspace_id: str, since: datetime) -> list[Any]:
    """``(key, updated_at)`` of a table's rows of the workspace changed after ``since``, oldest first."""
    statement = select(key, updated_at).where(workspace == workspace_id, updated_at > since).order_by(updated_at).limit(CHANGES_LIMIT)
    return list((await session.execute(statement)).all())


async def read_changes(runtime: Runtime, workspace_id: str, since: datetime, *, conversation_id: str | None = None) -> Changes:
    """Conversations and messages of the workspace written or changed after ``since``.

    Messages only of ``conversation_id`` (the one open), when given. ``high_water`` is the
    latest change read: the next call's ``since`` and the live event's id.
    """
    async with runtime.db.sessions() as session:
        conversations = await _changed_rows(session, Conversation.id, Conversation.workspace_id, Conversation.updated_at, workspace_id, since)
        # Rows, not GROUP BY: grouping makes SQLite walk the messages by conversation instead
        # of reading the few recent ones off (workspace_id, updated_at).
        touched = await _changed_rows(session, Message.conversation_id, Message.workspace_id, Message.updated_at, workspace_id, since)
        messages: list[Message] = []
        if conversation_id is not None:
            messages = list(
                (
                    await session.scalars(
                        select(Message)
                        .where(Message.workspace_id == workspace_id, Message.conversation_id == conversation_id, Message.updated_at > since)
                        .order_by(Message.id)
                        .limit(CHANGES_LIMIT)
                    )
                ).all()
            )
    moments = [at for _, at in conversations] + [at for _, at in touched if at is not None]
    ids = list(dict.fromkeys([cid for cid, _ in conversations] + [cid for cid, _ in touched]))
    return Changes(ids, messages, max(moments) if moments else None)


def feed_stamp(moment: datetime) -> str:
    """A moment as a live event's id: microseconds since the epoch."""
    return str(int(moment.timestamp() * 1_000_000))


def feed_moment(value: str, *, field_name: str = "Last-Event-ID") -> datetime:
    """The moment a live event's id names (what :func:`feed_stamp` wrote)."""
    try:
        micros = int(value)
    except ValueError:
        raise InvalidInput(f"{field_name}: expected the id of an event this stream sent (a number)") from None
    if not 0 <= micros < 10**17:
        raise InvalidInput(f"{field_name}: expected the id of an event this stream sent")
    return datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)
