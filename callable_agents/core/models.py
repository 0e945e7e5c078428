"""The tables (SQLAlchemy 2 declarative). One database: SQLite by default, PostgreSQL in production.

Every table but ``workspaces`` carries ``workspace_id``: the workspace is the isolation
boundary and every data-access function filters by it. Entities that appear in URLs use
random string ids (unguessable webhook paths); high-volume rows (messages, chunks, jobs,
traces) use integer ids, which also give a cheap total order and FAISS ids. On SQLite they
are AUTOINCREMENT so an id is never handed out twice, even after deletes.

Changing a table means a new Alembic revision in ``core/migrations/versions``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy import text as sql_text  # `text` is a column name in this module's models
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    """A random 128-bit id, URL-safe: ``secrets`` so channel webhook paths can't be guessed."""
    return secrets.token_hex(16)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use callable_agents.core.models.utcnow()")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# Integer primary keys that autoincrement on SQLite too (BigInteger alone would not).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}

    if TYPE_CHECKING:
        # Every model here maps one Table (none maps a join or a select), so ``__table__``
        # is a Table, which Core's insert() and update() take. Declared for mypy only, so
        # the mapping itself is untouched.
        __table__: ClassVar[Table]


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def workspace_fk() -> Mapped[str]:
    return mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class Workspace(Timestamped, Base):
    """The isolation boundary. Holds its data key, wrapped by the master key (see vault)."""

    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # Envelope encryption: a random per-workspace data key, wrapped by the master key.
    wrapped_key: Mapped[str | None] = mapped_column(Text, default=None)
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)


class User(Timestamped, Base):
    """A person who signs in to a workspace's dashboard: role ``owner`` or ``member``.

    ``password_hash`` is Argon2id (``core/store/users.py``); None until the person sets one
    through their one-time link.
    """

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="member")
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    last_signed_in_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:  # the hash stays out of logs and tracebacks
        return f"User(id={self.id!r}, workspace_id={self.workspace_id!r}, role={self.role!r})"


class UserLink(Base):
    """A one-time link: create a workspace's owner, or accept an invitation as a member.

    Only a SHA-256 of the link's token is stored; the link works once, until ``expires_at``.
    """

    __tablename__ = "user_links"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    purpose: Mapped[str] = mapped_column(String(20))  # owner | invite
    email: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[str] = mapped_column(String(20), default="member")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class UserSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so
    a copy of the database signs nobody in. Signing out or removing the user deletes it."""

    __tablename__ = "user_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    workspace_id: Mapped[str] = workspace_fk()
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class ApiKey(Timestamped, Base):
    """An admin API key. Only a SHA-256 of the key is stored; ``prefix`` finds the row."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Integration(Timestamped, Base):
    """A provider account (a messaging service, openai, ...): public fields in clear, secrets as vault tokens."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    provider: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    public: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"Integration(id={self.id!r}, provider={self.provider!r}, name={self.name!r}, secret_fields={sorted(self.secrets or {})})"


class Agent(Timestamped, Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), default="chat")  # chat | voice
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    business_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"integration": name|None, "model": str, "temperature": float, "fallback_model": str|None, ...}
    model_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"type": "lookup", "name": "order_status", "config": {...}}, ...]
    tools: Mapped[list[Any]] = mapped_column(default=list)
    knowledge_base_ids: Mapped[list[Any]] = mapped_column(default=list)
    greeting: Mapped[str] = mapped_column(Text, default="")
    fallback_message: Mapped[str] = mapped_column(Text, default="")


class KnowledgeBase(Timestamped, Base):
    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    name: Mapped[str] = mapped_column(String(100))
    # Set by the store: the knowledge base's model, or the loaded plugins' default embeddings.
    embedding_model: Mapped[str] = mapped_column(String(200))
    embedding_dim: Mapped[int | None] = mapped_column(default=None)
    # Bumped on every change to the KB's chunks; a FAISS cache built at an older version is stale.
    index_version: Mapped[int] = mapped_column(default=0)


class Source(Timestamped, Base):
    """One website URL (optionally crawled), uploaded file or pasted text."""

    __tablename__ = "sources"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    knowledge_base_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # url | file | text | plugin-defined
    title: Mapped[str] = mapped_column(String(500), default="")
    location: Mapped[str] = mapped_column(Text, default="")  # URL or file name
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # crawl bounds, mime type, ...
    content: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|indexing|ready|failed
    error: Mapped[str | None] = mapped_column(Text, default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    chunk_count: Mapped[int] = mapped_column(default=0)
    document_count: Mapped[int] = mapped_column(default=0)
    byte_count: Mapped[int] = mapped_column(default=0)
    refresh_interval_seconds: Mapped[int | None] = mapped_column(default=None)
    last_indexed_at: Mapped[datetime | None] = mapped_column(default=None)
    next_refresh_at: Mapped[datetime | None] = mapped_column(default=None)


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_kb_id", "knowledge_base_id", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = workspace_fk()
    knowledge_base_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("knowledge_bases.id", ondelete="CASCADE")
    )
    source_id: Mapped[str] = mapped_column(String(32), ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(default=0)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # title, url, page, heading
    token_count: Mapped[int] = mapped_column(default=0)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)  # float32, L2-normalised
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(Timestamped, Base):
    """One place customers reach an agent (a messaging-app sender, a web chat, ...), for one chat agent."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    kind: Mapped[str] = mapped_column(String(40))  # a registered channel type's name
    name: Mapped[str] = mapped_column(String(100))
    agent_id: Mapped[str] = mapped_column(String(32), ForeignKey("agents.id", ondelete="RESTRICT"), index=True)
    integration_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("integrations.id", ondelete="RESTRICT"), default=None
    )
    slug: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)  # public page
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the channel type's own settings
    # How several customer messages in a row are answered (core/store/reply_policy.py); None: the default.
    replies: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # What the customer is told when a person takes over / gives it back (None: the default
    # text in core/conversation/people.py; "": say nothing). ``{name}``: the person's name.
    takeover_notice: Mapped[str | None] = mapped_column(Text, default=None)
    return_notice: Mapped[str | None] = mapped_column(Text, default=None)


class Conversation(Timestamped, Base):
    """One per (channel, external user). It is the LangGraph thread.

    The inbox lists a workspace's conversations newest activity first (``updated_at``, then
    ``id``), by keyset: one index per filter it offers, each ending in that order.
    """

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_user_id"),
        Index("ix_conversations_inbox", "workspace_id", "updated_at", "id"),
        Index("ix_conversations_inbox_status", "workspace_id", "status", "updated_at", "id"),
        Index("ix_conversations_inbox_channel", "workspace_id", "channel_id", "updated_at", "id"),
        Index("ix_conversations_inbox_assignee", "workspace_id", "assignee_id", "updated_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = workspace_fk()
    channel_id: Mapped[str] = mapped_column(String(32), ForeignKey("channels.id", ondelete="CASCADE"))
    external_user_id: Mapped[str] = mapped_column(String(200))  # the user's id on the channel (e.g. a phone number)
    status: Mapped[str] = mapped_column(String(10), default="bot")  # bot | human | closed
    handoff_reason: Mapped[str | None] = mapped_column(Text, default=None)
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)  # display name, the provider's user id, ...
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    last_inbound_at: Mapped[datetime | None] = mapped_column(default=None)
    # The member the conversation is assigned to in the inbox (None: nobody).
    assignee_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class Message(Timestamped, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # The dedupe key: a retried webhook carries the same MessageSid.
        UniqueConstraint("channel_id", "provider_message_id", name="uq_messages_channel_provider_id"),
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        # The inbox's live feed: a workspace's messages written or changed since a moment.
        Index("ix_messages_workspace_updated", "workspace_id", "updated_at"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = workspace_fk()
    conversation_id: Mapped[str] = mapped_column(String(32), ForeignKey("conversations.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(32), ForeignKey("channels.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(10))  # inbound | outbound
    author: Mapped[str] = mapped_column(String(10))  # customer | agent | human | system
    text: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[Any]] = mapped_column(default=list)  # [{"url":..., "content_type":...}]
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # every provider parameter, citations, ...
    provider_message_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # received | pending | queued | sending | sent | delivered | read | failed | undelivered
    status: Mapped[str] = mapped_column(String(20), default="received")
    error_code: Mapped[str | None] = mapped_column(String(20), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    turn_id: Mapped[int | None] = mapped_column(default=None)  # the inbound job that produced a reply


class ConversationNote(Base):
    """A person's internal note on a conversation, shown in the inbox and never sent to the customer."""

    __tablename__ = "conversation_notes"
    __table_args__ = (Index("ix_conversation_notes_conversation", "conversation_id", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = workspace_fk()
    conversation_id: Mapped[str] = mapped_column(String(32), ForeignKey("conversations.id", ondelete="CASCADE"))
    author_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("users.id", ondelete="SET NULL"), default=None)
    author_name: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationRead(Base):
    """How far a person has read a conversation: customer messages past ``last_read_message_id`` are unread."""

    __tablename__ = "conversation_reads"
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[str] = workspace_fk()
    last_read_message_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)


class QueuedInbound(Base):
    """A customer's message a webhook accepted and the worker has not yet filed.

    A channel whose provider only needs an acknowledgement (a messaging app) appends one narrow
    row here, the cheapest durable write, and answers at once; the worker moves queued
    rows into conversations, messages and turn jobs, oldest first, deleting each row in the
    transaction that files it (:mod:`callable_agents.core.conversation.inbound.queue`). A row that
    cannot be filed keeps its ``error`` and stays for inspection.

    No index besides the key: every append lands on the table's last page.
    """

    __tablename__ = "inbound_queue"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(32), ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(32), ForeignKey("channels.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column()  # the InboundMessage's fields
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class EarlyDeliveryStatus(Base):
    """A provider's status report for a message id no stored message carries yet.

    A provider may call back before the send has recorded the id it answered with (its
    answer was slow, or a Messaging Service reports first). The report is kept here,
    answered at once, and applied when the send records the id
    (:mod:`callable_agents.core.conversation.outbound.status`); one that no send ever claims
    expires. ``rank`` is the status's rank for its channel, so the highest is applied first.
    """

    __tablename__ = "early_delivery_statuses"
    __table_args__ = (
        Index("ix_early_delivery_statuses_message", "channel_id", "provider_message_id"),
        Index("ix_early_delivery_statuses_received_at", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = workspace_fk()
    channel_id: Mapped[str] = mapped_column(String(32), ForeignKey("channels.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(20), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimitHit(Base):
    """One request counted by a shared rate limit (:mod:`callable_agents.core.limits`, used on
    PostgreSQL): its key (a channel's visitor or address, a sign-in address or e-mail), when,
    and when it leaves its window. Not workspace data: the keys are public entry points'."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (
        Index("ix_rate_limit_hits_key", "key", "hit_at"),
        Index("ix_rate_limit_hits_expires_at", "expires_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    hit_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


# A job not yet finished, as SQL. Finished jobs are kept, so they are most of the table and
# grow with every message: on PostgreSQL the claim and the lane checks read live jobs
# through partial indexes that leave them out. A query reaches those only through this very
# term, with its values written in (see live_job): PostgreSQL proves an index's condition
# from the query when it plans, and a bound value proves nothing in a generic plan.
# (SQLite's claim reads by status already, through ix_jobs_claim.)
LIVE_JOB_STATUSES = ("pending", "running")
LIVE_JOB_SQL = "status IN (" + ", ".join(f"'{status}'" for status in LIVE_JOB_STATUSES) + ")"


class Job(Timestamped, Base):
    """A durable unit of work (inbound turn, outbound send, ingestion, ...).

    ``lane`` orders work: at most one job per lane runs at a time, oldest first (lane =
    conversation id for chat turns and sends).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "run_after"),
        # PostgreSQL: live jobs only (LIVE_JOB_SQL), each lane's, and the claim's oldest-first walk.
        Index("ix_jobs_lane", "lane", "id", postgresql_where=sql_text(LIVE_JOB_SQL)),
        Index("ix_jobs_live", "id", postgresql_where=sql_text(LIVE_JOB_SQL)).ddl_if(dialect="postgresql"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = workspace_fk()
    kind: Mapped[str] = mapped_column(String(40))
    lane: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|running|done|failed
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    locked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


def live_job(table: Any) -> ColumnElement[bool]:
    """``LIVE_JOB_SQL`` on ``table`` (``jobs``, an alias of it, or its ``Table``), which a
    query needs among its conditions to use the partial indexes over live jobs."""
    status = table.c.status if hasattr(table, "c") else table.status
    return status.in_([literal_column(f"'{live}'") for live in LIVE_JOB_STATUSES])


class Trace(Base):
    """What happened at each step of a turn, for the dashboard's conversation view."""

    __tablename__ = "traces"
    __table_args__ = (Index("ix_traces_conversation_id", "conversation_id", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = workspace_fk()
    conversation_id: Mapped[str | None] = mapped_column(String(32), default=None)
    step: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


SCOPED_MODELS: tuple[type[Base], ...] = (
    User,
    ApiKey,
    Integration,
    Agent,
    KnowledgeBase,
    Source,
    Chunk,
    Channel,
    Conversation,
    Message,
    ConversationNote,
    ConversationRead,
    Job,
    Trace,
)
